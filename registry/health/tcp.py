"""TCP checks: the target is healthy when a connection to it can be opened.

Never sends a byte: a connect is all the check promises, and some services log
or choke on garbage. The socket is closed with an RST (SO_LINGER 0), as HAProxy's
tcp checks do, so that thousands of checks do not leave ports in TIME_WAIT.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
import struct

from registry.health.outcome import Outcome
from registry.model import CheckSpec, Status

_LINGER_RESET = struct.pack("ii", 1, 0)


def split_target(target: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` (validated by the schema) into its parts."""
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


@functools.lru_cache(maxsize=65536)
def _literal_family(host: str) -> int | None:
    """AF_INET/AF_INET6 for an IP literal, None for a name; cached, as every check repeats it."""
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        return None
    return socket.AF_INET6 if version == 6 else socket.AF_INET


async def _resolve(host: str, port: int) -> tuple[int, tuple[str, int]]:
    """Address family and socket address; IP literals skip getaddrinfo (a thread hop)."""
    family = _literal_family(host)
    if family is not None:
        return family, (host, port)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, _, _, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


async def probe_tcp(spec: CheckSpec) -> Outcome:
    host, port = split_target(spec.target)
    try:
        family, address = await _resolve(host, port)
    except OSError as exc:
        return Outcome(Status.CRITICAL, f"TCP {spec.target}: cannot resolve {host}: {exc}")
    try:
        # Creating the socket fails too (EMFILE when the daemon is out of descriptors):
        # that is this check's critical result like any failed connect.
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        return Outcome(Status.CRITICAL, f"TCP {spec.target}: cannot open a socket: {_reason(exc)}")
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        await asyncio.get_running_loop().sock_connect(sock, address)
    except OSError as exc:
        return Outcome(Status.CRITICAL, f"TCP connect {spec.target}: {_reason(exc)}")
    finally:
        sock.close()
    return Outcome(Status.PASSING, f"TCP connect {spec.target}: success")


def _reason(exc: OSError) -> str:
    # asyncio words every connect failure "Connect call failed"; the errno says what happened.
    return os.strerror(exc.errno) if exc.errno else str(exc)
