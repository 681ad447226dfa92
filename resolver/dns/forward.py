"""Relay queries for names outside the zone to the configured upstream resolvers.

Each upstream is tried in order with a short timeout; the first reply whose ID and
question match ours is relayed with the client's ID. A fresh random ID goes upstream
so that a reply cannot be forged by guessing the client's. UDP clients are forwarded
over UDP (a truncated reply is relayed as is, and the client retries over TCP); TCP
clients over TCP.

Recursion is for this host: only loopback clients may use it, and those in the
networks of `dns.recursion_allow`; everyone else gets REFUSED (an open resolver is
an amplifier anyone can aim). How many queries may wait on upstreams at once is the
server's cap; a failing upstream is logged at most once per interval, with a count.

This module must never answer from the catalog, and never cache: the upstream's TTLs
belong to the upstream.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import secrets
from typing import Callable, Sequence

from registry.endpoints import Endpoint
from registry.ratelog import LogThrottle

log = logging.getLogger(__name__)

UPSTREAM_TIMEOUT = 2.0


class _OneReply(asyncio.DatagramProtocol):
    def __init__(self, want_id: bytes, question: bytes) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._want_id = want_id
        self._question = question

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        # Anything that is not the reply to our query (late, spoofed) is ignored.
        if data[:2] == self._want_id and data[12 : 12 + len(self._question)].lower() == self._question.lower():
            if not self.reply.done():
                self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


class RecursionPolicy:
    """Who may have names outside the zone forwarded: loopback, and the allowed networks."""

    def __init__(self, allowed: Sequence[str]) -> None:
        self._networks = [ipaddress.ip_network(text, strict=False) for text in allowed]
        # Asked once per forwarded query; a client's answer is kept (bounded).
        self.allows: Callable[[str], bool] = functools.lru_cache(maxsize=4096)(self._allows)

    def _allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        return address.is_loopback or any(address in network for network in self._networks)


class Forwarder:
    """Upstream resolvers, tried in the order configured."""

    def __init__(self, recursors: Sequence[Endpoint], timeout: float = UPSTREAM_TIMEOUT) -> None:
        self.upstreams = [(recursor.host, recursor.port) for recursor in recursors]
        self._timeout = timeout
        self._failures = LogThrottle(log)

    async def forward(self, query: bytes, question: bytes, tcp: bool) -> bytes | None:
        """The upstream's reply with the client's ID, or None when every upstream failed."""
        upstream_id = secrets.token_bytes(2)
        outgoing = upstream_id + query[2:]
        for host, port in self.upstreams:
            try:
                if tcp:
                    reply = await asyncio.wait_for(self._tcp(host, port, outgoing), self._timeout)
                else:
                    reply = await self._udp(host, port, outgoing, upstream_id, question)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
                self._failures.log((host, port), logging.WARNING, "dns: upstream %s:%d failed: %r", host, port, error)
                continue
            if reply[:2] == upstream_id:
                return query[:2] + reply[2:]
        return None

    async def _udp(self, host: str, port: int, outgoing: bytes, upstream_id: bytes, question: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _OneReply(upstream_id, question), remote_addr=(host, port)
        )
        try:
            transport.sendto(outgoing)
            return await asyncio.wait_for(protocol.reply, self._timeout)
        finally:
            transport.close()

    async def _tcp(self, host: str, port: int, outgoing: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(len(outgoing).to_bytes(2, "big") + outgoing)
            await writer.drain()
            length = int.from_bytes(await reader.readexactly(2), "big")
            return await reader.readexactly(length)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
