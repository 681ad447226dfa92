"""The DNS server: UDP and TCP framing around `Responder`, and nothing else.

UDP sockets are read directly through `loop.add_reader`, draining several datagrams
per wake-up: on 64-bit Linux in batches through `recvmmsg`/`sendmmsg` (see batchio),
elsewhere with `recvfrom`/`sendto`. This skips the protocol layer of asyncio's
datagram transport, whose 256 KiB read buffer makes glibc map and unmap memory for
every packet (148k -> 33k queries per second where it was measured), and it behaves
the same under uvloop (the daemon's loop on Linux) and the default loop. Plain reads
are `wire.MAX_UDP_QUERY + 1` bytes, small enough for Python's own allocator. TCP
uses two-byte length framing, several queries per connection, an idle timeout, and
caps on open connections (see connections.py).

What a client can make us spend is bounded: UDP replies stay within the client's size
and 1232 bytes (wire.py), answers per client network with `dns.rate_limit`
(ratelimit.py), forwarded queries in flight (relay.FORWARDS_IN_FLIGHT), TCP connections.
Nothing a client sends may end in a traceback: errors of a connection or a datagram
end that connection or that datagram, quietly.

Nothing here decides an answer or logs per query; counters are plain integers read
by /metrics at scrape time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from typing import Any, Callable, Coroutine, Sequence

from registry.endpoints import Endpoint
from registry.ratelog import LogThrottle
from registry.snapshot import Snapshot
from resolver.dns import batchio, ratelimit, wire
from resolver.dns.answers import BareNames
from resolver.dns.connections import DEFAULT_TOTAL, TcpConnections
from resolver.dns.forward import Forwarder, RecursionPolicy
from resolver.dns.ratelimit import RateLimiter
from resolver.dns.relay import Relay
from resolver.dns.responder import Forward, PacketEntry, Responder
from resolver.dns.stats import DnsStats

__all__ = ["DnsServer", "DnsStats"]

log = logging.getLogger(__name__)

UDP_BATCH = 64  # datagrams per recvmmsg call; per wake-up on the plain path
UDP_ROUNDS = 4  # recvmmsg calls per wake-up before yielding to the loop
RECV_SIZE = wire.MAX_UDP_QUERY + 1  # one byte more, so that a query cut short shows
UDP_RCVBUF = 4 * 1024 * 1024  # absorbs bursts; the kernel caps it at rmem_max
TCP_IDLE_TIMEOUT = 10.0
BIND_ATTEMPTS = 20
# Python 3.11 builds a slice object for every `data[2:]`; these are built once.
AFTER_ID = slice(2, None)
ID_BYTES = slice(None, 2)


class DnsServer:
    """Serves the current snapshot on UDP and TCP at every `listen` address."""

    def __init__(
        self,
        get_snapshot: Callable[[], Snapshot],
        listen: Sequence[Endpoint],
        ttl: float = 5.0,
        recursors: Sequence[Endpoint] = (),
        stats: DnsStats | None = None,
        batched_udp: bool | None = None,
        recursion_allow: Sequence[str] = (),
        rate_limit: float | None = None,
        tcp_connections: int = DEFAULT_TOTAL,
        bare_names: BareNames = BareNames.ALL,
        prefer_local: bool = False,
    ) -> None:
        """`batched_udp`: recvmmsg/sendmmsg when true, recvfrom/sendto when false, by platform when None.

        `recursion_allow`: networks (CIDR) besides loopback whose names outside the zone
        are forwarded; `rate_limit`: UDP answers a second per client network, None for
        no limit; `tcp_connections`: open TCP connections at most; `bare_names`: which
        names outside the domain are answered as under it.
        """
        self.stats = stats if stats is not None else DnsStats()
        self._batched = batchio.available() if batched_udp is None else batched_udp
        self._listen = list(listen)
        self._responder = Responder(get_snapshot, ttl, bool(recursors), self.stats, bare_names, prefer_local)
        self._relay = Relay(Forwarder(recursors), RecursionPolicy(recursion_allow), self.stats) if recursors else None
        self._limiter = RateLimiter(rate_limit) if rate_limit is not None else None
        self._connections = TcpConnections(tcp_connections)
        self._complaints = LogThrottle(log)
        self._udp_sockets: list[socket.socket] = []
        self._tcp_servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._turn = 0  # advances per UDP batch, mixed into the choice of rotation
        self.bound_udp: list[Endpoint] = []
        self.bound_tcp: list[Endpoint] = []

    async def start(self) -> None:
        try:
            for endpoint in self._listen:
                host, port = endpoint.host, endpoint.port
                for attempt in range(BIND_ATTEMPTS):
                    try:
                        await self._bind(host, port)
                        break
                    except OSError:
                        # Port 0: UDP's ephemeral port may be taken on TCP; draw another.
                        if port != 0 or attempt == BIND_ATTEMPTS - 1:
                            raise
        except BaseException:
            await self.stop()
            raise
        log.info("dns: listening on udp %s, tcp %s", ", ".join(map(str, self.bound_udp)), ", ".join(map(str, self.bound_tcp)))

    async def _bind(self, host: str, port: int) -> None:
        """UDP and TCP on one host:port; port 0 takes UDP's ephemeral port for TCP too."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            udp.setblocking(False)
            if family == socket.AF_INET6:
                # As asyncio does for TCP: "[::]" and "0.0.0.0" can then be listed side by side.
                udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            except OSError:
                pass
            udp.bind((host, port))
            port = udp.getsockname()[1]
            server = await asyncio.start_server(self._serve_tcp, host, port, family=family, reuse_address=True)
        except BaseException:
            udp.close()
            raise
        if self._batched:
            loop.add_reader(udp.fileno(), self._read_udp_batches, udp, batchio.UdpBatch(family, UDP_BATCH))
        else:
            loop.add_reader(udp.fileno(), self._read_udp, udp)
        self._udp_sockets.append(udp)
        self._tcp_servers.append(server)
        self.bound_udp.append(Endpoint(host, port))
        self.bound_tcp.append(Endpoint(host, server.sockets[0].getsockname()[1]))

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for udp in self._udp_sockets:
            loop.remove_reader(udp.fileno())
            udp.close()
        self._udp_sockets.clear()
        for server in self._tcp_servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._tcp_servers:
            await server.wait_closed()
        self._tcp_servers.clear()

    # -- UDP -----------------------------------------------------------------

    def _read_udp(self, udp: socket.socket) -> None:
        # The hot loop: everything it needs is in locals, a cache hit makes no call
        # but the two socket ones. The snapshot cannot change within one batch.
        get, counts, turn = self._wake_up()
        recvfrom, sendto, size = udp.recvfrom, udp.sendto, RECV_SIZE
        after_id, id_bytes = AFTER_ID, ID_BYTES
        # The fallback path checks the rate limit inline (one test of a local when off);
        # the batched path, the one that must stay fastest, has a reader of its own.
        limiter, now = self._limiter, time.monotonic()
        for _ in range(UDP_BATCH):
            try:
                data, addr = recvfrom(size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # An ICMP error from an earlier reply surfaces here; the socket is fine.
                continue
            if limiter is not None:
                verdict = self._verdict(limiter, _packed_host(udp.family, addr[0]), now)
                if verdict != ratelimit.ANSWER:
                    slipped = self._slipped(data) if verdict == ratelimit.SLIP else None
                    if slipped is not None:
                        try:
                            sendto(slipped, addr)
                        except OSError:
                            pass
                    continue
            hit = get(data[after_id])
            if hit is not None:
                counts[hit[1]] += 1
                reply = data[id_bytes] + hit[hit[0][data[1] ^ turn]]
            else:
                reply = self._miss(udp, data, functools.partial(tuple, addr))  # the address as it is
                if reply is None:
                    continue
            try:
                sendto(reply, addr)
            except OSError:
                pass  # a full send buffer drops the reply, as the network could have

    def _read_udp_batches(self, udp: socket.socket, batch: batchio.UdpBatch) -> None:
        # The batched hot loop: per datagram a dict look-up, then the reply after its ID
        # copied into the datagram's slot and its length set (the ID goes out straight
        # from the receive buffer); one system call each way per batch. With
        # `dns.rate_limit` the batch's verdicts come first, in a pass of their own, so
        # that a server without a limit pays one test of a local per datagram for it.
        get, counts, turn = self._wake_up()
        limiter = self._limiter
        fd = udp.fileno()
        slots, lengths, out, out_lengths = batch.slots, batch.lengths, batch.out, batch.out_lengths
        for _ in range(UDP_ROUNDS):
            count = self._receive(batch, fd)
            if not count:
                return
            data = batch.received(count)
            verdicts = None if limiter is None else self._verdicts(limiter, batch, count)
            first = 0  # the first slot whose reply is not sent yet
            for i, start, key, id_low, length, at, reply_length in slots[:count]:
                end = start + lengths[length]
                hit = get(data[key:end]) if verdicts is None or verdicts[i] == ratelimit.ANSWER else None
                if hit is None:
                    whole = self._unanswered(udp, data[start:end], batch, i, verdicts)
                    if whole is None:
                        batch.send(fd, first, i)
                        first = i + 1
                        continue
                    reply = whole[2:]
                else:
                    counts[hit[1]] += 1
                    reply = hit[hit[0][data[id_low] ^ turn]]
                size = len(reply)
                out[at : at + size] = reply
                out_lengths[reply_length] = size
            batch.send(fd, first, count)

    def _verdicts(self, limiter: RateLimiter, batch: batchio.UdpBatch, count: int) -> list[int]:
        """The rate limiter's verdict for each of the `count` datagrams in `batch`."""
        senders, now = batch.senders(count), time.monotonic()
        address_at, address_size = batch.address_at, batch.address_size
        return [
            self._verdict(limiter, senders[at : at + address_size], now)
            for at in range(address_at, count * batchio.NAME, batchio.NAME)
        ]

    def _unanswered(
        self, udp: socket.socket, data: bytes, batch: batchio.UdpBatch, slot: int, verdicts: list[int] | None
    ) -> bytes | None:
        """The whole reply to a datagram the packet cache did not answer: a miss, or a rate-limited one."""
        if verdicts is None or verdicts[slot] == ratelimit.ANSWER:
            return self._miss(udp, data, functools.partial(batch.sender, slot))
        return self._slipped(data) if verdicts[slot] == ratelimit.SLIP else None

    def _receive(self, batch: batchio.UdpBatch, fd: int) -> int:
        """Datagrams waiting on `fd` read into `batch`; 0 when none (or reading failed)."""
        try:
            return batch.receive(fd)
        except OSError as error:
            # Nothing a client sends should get here; if it does, the socket stays served.
            self._complaints.log("udp-read", logging.WARNING, "dns: reading UDP failed: %r", error)
            return 0

    def _verdict(self, limiter: RateLimiter, address: bytes, now: float) -> int:
        """The rate limiter's verdict for one datagram from `address` (packed)."""
        network = ratelimit.network_of(address)
        if network is None:
            return ratelimit.ANSWER
        verdict = limiter.verdict(network, now)
        if verdict != ratelimit.ANSWER:
            self.stats.rate_limited += 1
        return verdict

    def _slipped(self, data: bytes) -> bytes | None:
        """The tiny TC reply a rate-limited client gets instead of its answer: the question, no records."""
        try:
            query = wire.parse_query(data, whole=False)
        except (wire.Drop, wire.FormError):
            return None
        return wire.error_reply(data, 0, query.question, query.edns_payload is not None, do=query.edns_do, tc=True)

    def _wake_up(self) -> tuple[Callable[[bytes], PacketEntry | None], list[int], int]:
        """What a UDP reader keeps in locals for one wake-up: the packet cache's `get`,
        the counters, and this wake-up's turn (see responder.picker)."""
        self._turn = (self._turn + 1) & 0xFF
        return self._responder.packet_cache().get, self.stats.counts, self._turn

    def _miss(self, udp: socket.socket, data: bytes, sender: Callable[[], tuple[Any, ...]]) -> bytes | None:
        """A query the packet cache did not hold: its whole reply, or None when none goes
        out now (dropped, or forwarded and sent later to `sender()`)."""
        reply = self._responder.answer(data, tcp=False)
        if isinstance(reply, Forward):
            addr = sender()
            assert self._relay is not None  # the responder forwards only when recursors are set
            refusal = self._relay.refusal(data, reply.query, str(addr[0]))
            if refusal is not None:
                return refusal
            self._spawn(self._forward_udp(udp, data, reply.query, addr))
            return None
        if reply is not None and len(reply) > wire.MAX_UDP_REPLY:
            # Never happens by construction (wire.py compiles within the limit); a send
            # buffer slot holds no more, so it is checked where it costs nothing.
            return None
        return reply

    async def _forward_udp(self, udp: socket.socket, data: bytes, query: wire.Query, addr: tuple[Any, ...]) -> None:
        assert self._relay is not None
        reply = await self._relay.relay(data, query, tcp=False)
        if udp.fileno() >= 0:
            try:
                udp.sendto(reply, addr)
            except OSError:
                pass

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        """A forward's task is done: its error, if any, is one line at most every 10 s,
        not asyncio's "exception was never retrieved" traceback."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._complaints.log("forward-task", logging.WARNING, "dns: forwarding failed: %r", task.exception())

    # -- TCP -----------------------------------------------------------------

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        transport = writer.transport
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self.stats.tcp_evicted += self._connections.admit(transport, client)
        try:
            while True:
                # The idle timeout covers a client that connects and never sends a byte.
                length = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT), "big")
                if length > wire.MAX_QUERY:
                    # Dropped unread: nothing this long is a query we answer (wire.MAX_QUERY).
                    self.stats.malformed += 1
                    break
                data = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_TIMEOUT)
                self._connections.active(transport)
                reply = self._responder.answer(data, tcp=True)
                if isinstance(reply, Forward):
                    assert self._relay is not None
                    refusal = self._relay.refusal(data, reply.query, client)
                    reply = refusal if refusal is not None else await self._relay.relay(data, reply.query, tcp=True)
                if reply is None:
                    # Unanswerable bytes on a stream: the framing can no longer be trusted.
                    break
                if transport.is_closing():
                    # The client reset the connection with queries still buffered: no one
                    # to answer (uvloop raises on a write to a closed transport).
                    break
                writer.write(len(reply).to_bytes(2, "big") + reply)
                # A client that stops reading is as idle as one that stops asking.
                await asyncio.wait_for(writer.drain(), TCP_IDLE_TIMEOUT)
        except (asyncio.IncompleteReadError, TimeoutError, OSError, asyncio.CancelledError):
            pass  # ConnectionResetError and its kind are OSErrors: the client's doing
        except Exception as error:
            # Whatever else a client may provoke ends its connection with one line, at most every 10 s.
            self._complaints.log("tcp", logging.WARNING, "dns: TCP connection from %s ended: %r", client, error)
        finally:
            self._tasks.discard(task)
            self._connections.remove(transport)
            if transport.get_write_buffer_size():
                # Replies nobody reads would keep a graceful close waiting forever.
                transport.abort()
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, asyncio.CancelledError):
                pass


def _packed_host(family: int, host: str) -> bytes:
    """A sender's address as the rate limiter keys it (the plain path's addresses are text)."""
    return socket.inet_pton(family, host.partition("%")[0])

