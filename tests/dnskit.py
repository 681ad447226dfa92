"""A real DnsServer on 127.0.0.1 port 0 over a real Catalog, for the test_dns_* suites (a plugin conftest loads).

The server runs on its own event loop in a thread (`loop_thread`, once per UDP path:
recvmmsg batches and plain recvfrom), as it would beside the daemon's other parts;
the tests are its clients (dnspython over UDP and TCP, raw sockets). The catalog is
written from the test thread, its one writer.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import dns.message
import dns.query
import dns.rdatatype
import dns.rrset
import psutil
import pytest

from conftest import NODE, LoopThread
from registry.catalog import Catalog
from registry.endpoints import parse_address
from registry.model import CheckKind, CheckSpec, Instance, Source
from registry.store import Store
from resolver.config import default_address
from resolver.dns import batchio
from resolver.dns.server import DnsServer, DnsStats

TIMEOUT = 2.0


@dataclass
class Served:
    catalog: Catalog
    server: DnsServer
    host: str
    port: int

    def udp(self, name: str, rdtype: str = "A", **kwargs: Any) -> dns.message.Message:
        return dns.query.udp(dns.message.make_query(name, rdtype, **kwargs), self.host, port=self.port, timeout=TIMEOUT)

    def tcp(self, name: str, rdtype: str = "A", **kwargs: Any) -> dns.message.Message:
        return dns.query.tcp(dns.message.make_query(name, rdtype, **kwargs), self.host, port=self.port, timeout=TIMEOUT)


def instance(id: str, name: str, address: str = "10.0.0.1", port: int = 6379, **fields: Any) -> Instance:
    return Instance(id=id, name=name, node=fields.pop("node", NODE.node), address=address, port=port, **fields)


BASE = [
    instance("redis-6379", "redis", "10.0.0.1", 6379, address_is_node=True, tags=("primary",),
             meta={"team": "platform", "tier": "cache"}),
    instance("redis-6380", "redis", "10.0.0.2", 6380, tags=("replica",), weight=3),
    instance("web-80", "web", "fd00::80", 80),
    # A check that never ran leaves its instance critical: the service exists, nothing answers.
    instance("db-5432", "db", "10.0.0.3", 5432, checks=(CheckSpec("db-tcp", CheckKind.TCP, "10.0.0.3:5432"),)),
]


def many_instances(count: int) -> list[Instance]:
    return [instance(f"big-{i}", "big", f"10.1.{i // 250}.{i % 250 + 1}", 9000 + i) for i in range(count)]


class DnsLoop(LoopThread):
    """The servers' loop, and the UDP path the servers started on it use."""

    def __init__(self, batched_udp: bool) -> None:
        super().__init__("dns-test-loop")
        self.batched_udp = batched_udp


@pytest.fixture(params=["batched", "plain"])
def loop_thread(request: pytest.FixtureRequest) -> Iterator[DnsLoop]:
    """The server's loop; every test runs with both UDP paths: recvmmsg batches and recvfrom."""
    if request.param == "batched" and not batchio.available():
        pytest.skip("recvmmsg/sendmmsg need 64-bit Linux")
    runner = DnsLoop(batched_udp=request.param == "batched")
    yield runner
    runner.close()


def serve(loop_thread: DnsLoop, catalog: Catalog, listen: Sequence[str] = ("127.0.0.1:0",),
          recursors: Sequence[str] = (), **options: Any) -> Served:
    """A started DnsServer; `options` are DnsServer's (recursion_allow, rate_limit, tcp_connections)."""
    server = DnsServer(lambda: catalog.current, [parse_address(text) for text in listen], ttl=5,
                       recursors=[parse_address(text, 53) for text in recursors], stats=DnsStats(),
                       batched_udp=loop_thread.batched_udp, **options)
    loop_thread.run(server.start())
    bound = server.bound_udp[0]
    return Served(catalog, server, bound.host, bound.port)


def new_catalog(path: Path, domain: str = "internal", instances: Sequence[Instance] = BASE) -> Catalog:
    catalog = Catalog(Store(path / "pilotfish.db"), NODE, domain)
    file = str(path / "services.yaml")
    catalog.apply_file(file, [replace(i, source=Source.file(file)) for i in instances])
    return catalog


@pytest.fixture
def served(tmp_path: Path, loop_thread: DnsLoop) -> Iterator[Served]:
    catalog = new_catalog(tmp_path)
    running = serve(loop_thread, catalog)
    yield running
    loop_thread.run(running.server.stop())
    catalog.store.close()


def records(section: list[dns.rrset.RRset], rdtype: str) -> list[str]:
    wanted = dns.rdatatype.from_text(rdtype)
    return sorted(rdata.to_text() for rrset in section if rrset.rdtype == wanted for rdata in rrset)


def outside_address() -> str:
    """A non-loopback address of this host, to send from: loopback clients are exempt from some limits."""
    address = default_address()
    if ipaddress.ip_address(address).is_loopback:
        pytest.skip("no non-loopback IPv4 address on this host to send from")
    return address


def server_side_connections(served: Served) -> int:
    """TCP sockets of this process accepted on the DNS port (the server runs in a thread here)."""
    return sum(
        1 for c in psutil.Process().net_connections("tcp")
        if c.laddr and c.laddr.port == served.port and c.raddr and c.status != psutil.CONN_LISTEN
    )


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data
