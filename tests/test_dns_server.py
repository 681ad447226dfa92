"""The DNS server end to end: a real DnsServer on 127.0.0.1 port 0 over a real Catalog and Store.

The server runs on its own event loop in a thread, as it would beside the daemon's
other parts; the tests are its clients (dnspython over UDP and TCP, raw sockets for
the malformed packets, dig when installed). The catalog is written from the test
thread, its one writer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Coroutine, Iterator, Sequence, TypeVar

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import psutil
import pytest

from registry.catalog import Catalog
from registry.endpoints import parse_address
from registry.model import CheckKind, CheckSpec, Instance, NodeIdentity, Source
from registry.store import Store
from resolver.config import default_address
from resolver.dns import batchio
from resolver.dns import server as server_module
from resolver.dns.server import DnsServer, DnsStats

T = TypeVar("T")
NODE = NodeIdentity("alpha", "10.0.0.1")
TIMEOUT = 2.0


class LoopThread:
    """An event loop in a thread; `run(coro)` runs a coroutine on it and returns its result.

    `batched_udp` is the UDP path the servers started on it use.
    """

    def __init__(self, batched_udp: bool) -> None:
        self.batched_udp = batched_udp
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dns-test-loop")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


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
    return Instance(id=id, name=name, node=fields.pop("node", "alpha"), address=address, port=port, **fields)


BASE = [
    instance("redis-6379", "redis", "10.0.0.1", 6379, address_is_node=True, tags=("primary",),
             meta={"team": "platform", "tier": "cache"}),
    instance("redis-6380", "redis", "10.0.0.2", 6380, tags=("replica",), weight=3),
    instance("web-80", "web", "fd00::80", 80),
    # A check that never ran leaves its instance critical: the service exists, nothing answers.
    instance("db-5432", "db", "10.0.0.3", 5432, checks=(CheckSpec("db-tcp", CheckKind.TCP, "10.0.0.3:5432"),)),
]


@pytest.fixture(params=["batched", "plain"])
def loop_thread(request: pytest.FixtureRequest) -> Iterator[LoopThread]:
    """The server's loop; every test runs with both UDP paths: recvmmsg batches and recvfrom."""
    if request.param == "batched" and not batchio.available():
        pytest.skip("recvmmsg/sendmmsg need 64-bit Linux")
    runner = LoopThread(batched_udp=request.param == "batched")
    yield runner
    runner.close()


def serve(loop_thread: LoopThread, catalog: Catalog, listen: Sequence[str] = ("127.0.0.1:0",),
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
def served(tmp_path: Path, loop_thread: LoopThread) -> Iterator[Served]:
    catalog = new_catalog(tmp_path)
    running = serve(loop_thread, catalog)
    yield running
    loop_thread.run(running.server.stop())
    catalog.store.close()


def records(section: list[dns.rrset.RRset], rdtype: str) -> list[str]:
    wanted = dns.rdatatype.from_text(rdtype)
    return sorted(rdata.to_text() for rrset in section if rrset.rdtype == wanted for rdata in rrset)


# -- name forms --------------------------------------------------------------


def test_srv_answer_has_weights_ports_targets_and_glue(served: Served) -> None:
    reply = served.udp("_redis._tcp.service.internal", "SRV")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    # Weights as CoreDNS scales them: share of the priority's total (1 + 3), in percent.
    assert records(reply.answer, "SRV") == [
        "1 25 6379 alpha.node.internal.",
        "1 75 6380 0a000002.addr.internal.",
    ]
    glue = {rrset.name.to_text(): [r.to_text() for r in rrset] for rrset in reply.additional}
    assert glue == {"alpha.node.internal.": ["10.0.0.1"], "0a000002.addr.internal.": ["10.0.0.2"]}


def test_every_srv_target_resolves(served: Served) -> None:
    for target, address in [("alpha.node.internal", "10.0.0.1"), ("0a000002.addr.internal", "10.0.0.2")]:
        assert records(served.udp(target, "A").answer, "A") == [address]


@pytest.mark.parametrize(
    ("name", "rdtype", "expected"),
    [
        ("redis.service.internal", "A", ["10.0.0.1", "10.0.0.2"]),
        ("primary.redis.service.internal", "A", ["10.0.0.1"]),
        ("web.service.internal", "AAAA", ["fd00::80"]),
        ("alpha.node.internal", "A", ["10.0.0.1"]),
        ("0a000003.addr.internal", "A", ["10.0.0.3"]),
        ("fd000000000000000000000000000080.addr.internal", "AAAA", ["fd00::80"]),
        ("_redis._replica.service.internal", "SRV", ["1 100 6380 0a000002.addr.internal."]),
        ("_redis._udp.service.internal", "SRV", ["1 25 6379 alpha.node.internal.", "1 75 6380 0a000002.addr.internal."]),
        ("redis.service.internal", "TXT", ['"team=platform"', '"tier=cache"']),
        ("redis", "A", ["10.0.0.1", "10.0.0.2"]),
        ("_redis._tcp", "SRV", ["1 25 6379 alpha.node.internal.", "1 75 6380 0a000002.addr.internal."]),
        ("internal", "SOA", ["alpha.node.internal. hostmaster.internal. 2 3600 600 86400 5"]),
        ("internal", "NS", ["alpha.node.internal."]),
    ],
)
def test_name_forms(served: Served, name: str, rdtype: str, expected: list[str]) -> None:
    reply = served.udp(name, rdtype)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert records(reply.answer, rdtype) == expected


# -- rcodes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rdtype", "rcode"),
    [
        ("nosuch.service.internal", "A", dns.rcode.NXDOMAIN),
        ("nosuch.redis.service.internal", "A", dns.rcode.NXDOMAIN),
        ("_redis._nosuchtag.service.internal", "SRV", dns.rcode.NXDOMAIN),
        ("beta.node.internal", "A", dns.rcode.NXDOMAIN),
        ("zz.addr.internal", "A", dns.rcode.NXDOMAIN),
        ("what.internal", "A", dns.rcode.NXDOMAIN),
        ("redis.service.internal", "AAAA", dns.rcode.NOERROR),
        ("redis.service.internal", "SRV", dns.rcode.NOERROR),
        ("_redis._tcp.service.internal", "A", dns.rcode.NOERROR),
        ("web.service.internal", "TXT", dns.rcode.NOERROR),
        ("internal", "A", dns.rcode.NOERROR),
        ("db.service.internal", "A", dns.rcode.NOERROR),
        ("_db._tcp.service.internal", "SRV", dns.rcode.NOERROR),
        # Empty non-terminals above the SRV names exist (RFC 8020): `_redis._tcp...` is below them.
        ("_tcp.service.internal", "A", dns.rcode.NOERROR),
        ("_UDP.service.internal", "SRV", dns.rcode.NOERROR),
        ("_replica.service.internal", "A", dns.rcode.NOERROR),
        ("_nosuchtag.service.internal", "A", dns.rcode.NXDOMAIN),
    ],
)
def test_negative_answers_carry_the_soa(served: Served, name: str, rdtype: str, rcode: int) -> None:
    """NXDOMAIN for unknown names, NODATA for known ones (RFC 2308): empty answer, SOA in authority."""
    reply = served.udp(name, rdtype)
    assert reply.rcode() == rcode
    assert reply.flags & dns.flags.AA
    assert reply.answer == []
    [soa] = reply.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "internal."
    # The negative TTL is the SOA minimum (RFC 2308 section 5).
    assert soa.ttl == soa[0].minimum == 5


def test_all_critical_service_is_nodata_not_nxdomain(served: Served) -> None:
    reply = served.udp("_db._tcp.service.internal", "SRV")
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer == []


@pytest.mark.parametrize("name", ["example.com", "nosuch", "_nosuch._tcp", "service.internal.example"])
def test_outside_the_zone_is_refused_without_recursion(served: Served, name: str) -> None:
    reply = served.udp(name, "A")
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.flags & dns.flags.RA
    assert reply.flags & dns.flags.RD  # copied from the query
    assert not reply.flags & dns.flags.AA


def test_any_is_answered_minimally(served: Served) -> None:
    """RFC 8482: ANY gets a subset, here the addresses, never every type of the name."""
    reply = served.udp("redis.service.internal", "ANY")
    assert reply.rcode() == dns.rcode.NOERROR
    assert {rrset.rdtype for rrset in reply.answer} == {dns.rdatatype.A}
    assert records(served.udp("_redis._tcp.service.internal", "ANY").answer, "SRV")


@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR"])
def test_zone_transfers_are_refused(served: Served, rdtype: str) -> None:
    """We offer no transfers (RFC 5936 2.2.1): REFUSED, never a NOERROR without the SOA a transfer starts with."""
    for ask in (served.tcp, served.udp):
        reply = ask("internal", rdtype)
        assert reply.rcode() == dns.rcode.REFUSED
        assert reply.answer == [] and not reply.flags & dns.flags.AA


def test_non_query_opcode_is_notimp(served: Served) -> None:
    query = dns.message.make_query("redis.service.internal", "A")
    query.set_opcode(dns.opcode.NOTIFY)
    reply = dns.query.udp(query, served.host, port=served.port, timeout=TIMEOUT)
    assert reply.rcode() == dns.rcode.NOTIMP


# -- 0x20, EDNS, truncation, TCP -------------------------------------------------


def test_owner_names_keep_the_case_asked(served: Served) -> None:
    for _ in range(2):  # the second answer comes from the per-packet cache
        reply = served.udp("_ReDiS._TcP.sErViCe.InTeRnAl", "SRV")
        assert reply.rcode() == dns.rcode.NOERROR
        assert {rrset.name.to_text() for rrset in reply.answer} == {"_ReDiS._TcP.sErViCe.InTeRnAl."}
        assert reply.question[0].name.to_text() == "_ReDiS._TcP.sErViCe.InTeRnAl."
    other = served.udp("REDIS.service.internal", "A")
    assert other.answer[0].name.to_text() == "REDIS.service.internal."
    assert [rrset.name.to_text() for rrset in served.udp("redis.service.internal", "A").answer] == [
        "redis.service.internal."
    ]


def test_edns_opt_is_echoed_with_our_payload_size(served: Served) -> None:
    reply = served.udp("redis.service.internal", "A", use_edns=0, payload=4096)
    assert reply.edns == 0
    assert reply.payload == 1232
    plain = served.udp("redis.service.internal", "A")
    assert plain.edns == -1


@pytest.mark.parametrize("name", ["redis.service.internal", "nosuch.service.internal", "example.com"])
def test_the_do_bit_is_copied_into_the_reply(served: Served, name: str) -> None:
    """RFC 3225 section 3; a query without DO, asked right after, must not get the DO reply from a cache."""
    for want_dnssec in (True, False, True):
        reply = served.udp(name, "A", use_edns=0, want_dnssec=want_dnssec)
        assert reply.edns == 0
        assert bool(reply.ednsflags & dns.flags.DO) == want_dnssec


def test_unknown_edns_version_is_badvers(served: Served) -> None:
    reply = served.udp("redis.service.internal", "A", use_edns=1)
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0


def many_instances(count: int) -> list[Instance]:
    return [instance(f"big-{i}", "big", f"10.1.{i // 250}.{i % 250 + 1}", 9000 + i) for i in range(count)]


def test_truncated_over_udp_full_over_tcp(tmp_path: Path, loop_thread: LoopThread) -> None:
    catalog = new_catalog(tmp_path, instances=BASE + many_instances(60))
    served = serve(loop_thread, catalog)
    try:
        small = served.udp("_big._tcp.service.internal", "SRV")
        assert small.flags & dns.flags.TC
        assert small.answer == []
        full = served.tcp("_big._tcp.service.internal", "SRV")
        assert not full.flags & dns.flags.TC
        assert len(records(full.answer, "SRV")) == 60
        assert len(records(full.additional, "A")) == 60
        # EDNS raises the limit to what the client says: 1232 bytes still cannot hold 60 SRV records.
        medium = served.udp("_big._tcp.service.internal", "SRV", use_edns=0, payload=1232)
        assert medium.flags & dns.flags.TC and medium.edns == 0
        # However large the client's buffer, a UDP reply stops at 1232 bytes (issue 9, row 13).
        large = served.udp("_big._tcp.service.internal", "SRV", use_edns=0, payload=8192)
        assert large.flags & dns.flags.TC and large.answer == []
        # 60 addresses do not fit 512 bytes either.
        assert served.udp("big.service.internal", "A").flags & dns.flags.TC
        assert len(records(served.tcp("big.service.internal", "A").answer, "A")) == 60
    finally:
        loop_thread.run(served.server.stop())
        catalog.store.close()


def test_a_long_udp_query_is_sent_to_tcp(served: Served) -> None:
    # 600 bytes of EDNS option: longer than any UDP query is read (wire.MAX_UDP_QUERY).
    padding = [dns.edns.GenericOption(65001, b"x" * 600)]
    reply = served.udp("redis.service.inTERnal", "A", use_edns=0, options=padding)
    assert reply.flags & dns.flags.TC
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer == []
    assert reply.question[0].name.to_text() == "redis.service.inTERnal."
    full = served.tcp("redis.service.internal", "A", use_edns=0, options=padding)
    assert not full.flags & dns.flags.TC
    assert records(full.answer, "A") == ["10.0.0.1", "10.0.0.2"]
    # Just under the limit is read whole and answered over UDP.
    fits = [dns.edns.GenericOption(65001, b"x" * 400)]
    assert records(served.udp("redis.service.internal", "A", use_edns=0, options=fits).answer, "A") == ["10.0.0.1", "10.0.0.2"]


def test_tcp_serves_several_queries_per_connection(served: Served) -> None:
    names = ["redis.service.internal", "_redis._tcp.service.internal", "nosuch.service.internal"]
    with socket.create_connection((served.host, served.port), timeout=TIMEOUT) as conn:
        # Pipelined: every query is sent before any reply is read.
        for i, name in enumerate(names):
            wire = dns.message.make_query(name, "SRV" if name.startswith("_") else "A", id=100 + i).to_wire()
            conn.sendall(struct.pack("!H", len(wire)) + wire)
        replies = []
        for _ in names:
            length = struct.unpack("!H", recv_exactly(conn, 2))[0]
            replies.append(dns.message.from_wire(recv_exactly(conn, length)))
    assert [r.id for r in replies] == [100, 101, 102]
    assert [r.rcode() for r in replies] == [dns.rcode.NOERROR, dns.rcode.NOERROR, dns.rcode.NXDOMAIN]


def test_idle_tcp_connections_are_closed(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "TCP_IDLE_TIMEOUT", 0.2)
    with socket.create_connection((served.host, served.port), timeout=TIMEOUT) as conn:
        started = time.monotonic()
        assert conn.recv(2) == b""  # closed by the server, not by our timeout
        assert time.monotonic() - started < TIMEOUT


def server_side_connections(served: Served) -> int:
    """TCP sockets of this process accepted on the DNS port (the server runs in a thread here)."""
    return sum(
        1 for c in psutil.Process().net_connections("tcp")
        if c.laddr and c.laddr.port == served.port and c.raddr and c.status != psutil.CONN_LISTEN
    )


def test_a_client_that_stops_reading_is_dropped_after_the_idle_timeout(
    tmp_path: Path, loop_thread: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pipelined queries whose replies are never read must not hold the connection forever (RFC 7766 6.2.3)."""
    monkeypatch.setattr(server_module, "TCP_IDLE_TIMEOUT", 0.3)
    catalog = new_catalog(tmp_path, instances=BASE + many_instances(60))
    served = serve(loop_thread, catalog)
    try:
        query = dns.message.make_query("_big._tcp.service.internal", "SRV").to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn.connect((served.host, served.port))
            conn.setblocking(False)
            deadline = time.monotonic() + 10
            # Each 45-byte query asks for a 4 KB reply: the server's send side fills long before ours.
            while time.monotonic() < deadline:
                try:
                    conn.send((struct.pack("!H", len(query)) + query) * 100)
                except BlockingIOError:
                    break
            assert server_side_connections(served) == 1
            while server_side_connections(served) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server_side_connections(served) == 0
    finally:
        loop_thread.run(served.server.stop())
        catalog.store.close()


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


# -- robustness ------------------------------------------------------------------


def garbage(rng: random.Random, good: bytes) -> bytes:
    """One of several kinds of broken packet."""
    kind = rng.randrange(7)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 12))  # shorter than a header
    if kind == 1:
        return rng.randbytes(rng.randrange(12, 600))  # noise
    if kind == 2:
        return good[: rng.randrange(12, len(good))]  # cut short
    if kind == 3:
        return good[:4] + b"\x00\x02" + good[6:]  # two questions announced
    if kind == 4:
        return good[:12] + b"\xc0\x0c" + good[-4:]  # pointer loop in the question
    if kind == 5:
        return good[:10] + b"\x00\x05" + good[12:]  # five additional records that are not there
    return rng.randbytes(5000)  # oversized


def test_200_malformed_packets_then_a_correct_answer(served: Served) -> None:
    rng = random.Random(20)
    good = dns.message.make_query("redis.service.internal", "A").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        for _ in range(200):
            sock.sendto(garbage(rng, good), (served.host, served.port))
        final = dns.message.make_query("redis.service.internal", "A", id=4242)
        sock.sendto(final.to_wire(), (served.host, served.port))
        formerr = 0
        while True:
            data = sock.recv(65535)
            if data[:2] == b"\x10\x92":  # id 4242: the correct query comes last
                reply = dns.message.from_wire(data)
                break
            formerr += data[3] & 0x0F == dns.rcode.FORMERR
    assert formerr > 0
    assert served.server.stats.malformed >= 100
    assert records(reply.answer, "A") == ["10.0.0.1", "10.0.0.2"]
    # Over TCP: a readable header gets FORMERR; bytes that are no DNS at all close that connection only.
    with socket.create_connection((served.host, served.port), timeout=TIMEOUT) as conn:
        two_questions = good[:4] + b"\x00\x02" + good[6:]
        conn.sendall(struct.pack("!H", len(two_questions)) + two_questions)
        length = struct.unpack("!H", recv_exactly(conn, 2))[0]
        assert dns.message.from_wire(recv_exactly(conn, length)).rcode() == dns.rcode.FORMERR
        conn.sendall(b"\x00\x03abc")
        assert conn.recv(2) == b""
    assert records(served.tcp("redis.service.internal", "A").answer, "A") == ["10.0.0.1", "10.0.0.2"]


# -- snapshots, rotation, counters -------------------------------------------------


def test_answer_changes_with_one_snapshot_swap(served: Served) -> None:
    assert records(served.udp("redis.service.internal", "A").answer, "A") == ["10.0.0.1", "10.0.0.2"]
    before = served.catalog.current.index
    served.catalog.register(instance("redis-7000", "redis", "10.0.0.9", 7000))
    assert served.catalog.current.index == before + 1
    # The very next query sees the new snapshot: no TTL, no cache to wait for.
    assert records(served.udp("redis.service.internal", "A").answer, "A") == ["10.0.0.1", "10.0.0.2", "10.0.0.9"]
    served.catalog.deregister("redis-7000")
    assert records(served.udp("redis.service.internal", "A").answer, "A") == ["10.0.0.1", "10.0.0.2"]
    served.catalog.remove_file(next(iter(served.catalog.files())))
    assert served.udp("redis.service.internal", "A").rcode() == dns.rcode.NXDOMAIN


def test_repeated_queries_rotate_the_answer(served: Served) -> None:
    # Random IDs, as resolvers send them: a shuffled order (one order 40 times: p = 2**-39).
    firsts = {served.udp("redis.service.internal", "A").answer[0][0].to_text() for _ in range(40)}
    assert firsts == {"10.0.0.1", "10.0.0.2"}
    # A client that reuses one ID still sees both orders.
    same_id = [served.udp("redis.service.internal", "A", id=7).answer[0][0].to_text() for _ in range(8)]
    assert set(same_id) == {"10.0.0.1", "10.0.0.2"}
    srv_firsts = {served.tcp("_redis._tcp.service.internal", "SRV").answer[0][0].port for _ in range(6)}
    assert srv_firsts == {6379, 6380}


def test_stats_count_queries_by_type_and_rcode(served: Served) -> None:
    for _ in range(3):
        served.udp("_redis._tcp.service.internal", "SRV")
    served.udp("nosuch.service.internal", "A")
    served.tcp("example.com", "A")
    queries = served.server.stats.queries
    assert queries[("SRV", "NOERROR")] == 3
    assert queries[("A", "NXDOMAIN")] == 1
    assert queries[("A", "REFUSED")] == 1


# -- listening and forwarding --------------------------------------------------------


def test_ipv6_listener(tmp_path: Path, loop_thread: LoopThread) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    (tmp_path / "up").mkdir()
    upstream_catalog = new_catalog(tmp_path / "up", domain="upstream",
                                   instances=[instance("api-80", "api", "192.0.2.7", 80)])
    upstream = serve(loop_thread, upstream_catalog)
    catalog = new_catalog(tmp_path)
    served = serve(loop_thread, catalog, listen=("[::1]:0", "127.0.0.1:0"), recursors=(f"127.0.0.1:{upstream.port}",))
    try:
        assert served.server.bound_udp[0].host == "::1"
        assert served.server.bound_tcp[0] == served.server.bound_udp[0]
        assert records(served.udp("redis.service.internal", "A").answer, "A") == ["10.0.0.1", "10.0.0.2"]
        assert records(served.tcp("redis.service.internal", "A").answer, "A") == ["10.0.0.1", "10.0.0.2"]
        # A forwarded answer is sent later, to the IPv6 sender's address as it was received.
        assert records(served.udp("api.service.upstream", "A").answer, "A") == ["192.0.2.7"]
    finally:
        loop_thread.run(served.server.stop())
        loop_thread.run(upstream.server.stop())
        catalog.store.close()
        upstream_catalog.store.close()


def test_recursors_forward_names_outside_the_zone(tmp_path: Path, loop_thread: LoopThread) -> None:
    (tmp_path / "up").mkdir()
    upstream_catalog = new_catalog(tmp_path / "up", domain="upstream",
                                   instances=[instance("api-80", "api", "192.0.2.7", 80)])
    upstream = serve(loop_thread, upstream_catalog)
    catalog = new_catalog(tmp_path)
    # The first recursor is dead: the next one answers.
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    served = serve(loop_thread, catalog, recursors=(f"127.0.0.1:{dead_port}", f"127.0.0.1:{upstream.port}"))
    try:
        for ask in (served.udp, served.tcp):
            reply = ask("api.service.upstream", "A")
            assert reply.rcode() == dns.rcode.NOERROR
            assert records(reply.answer, "A") == ["192.0.2.7"]
            assert ask("nosuch.service.upstream", "A").rcode() == dns.rcode.NXDOMAIN
            # Our own zone is still answered by us, with recursion now available.
            own = ask("redis.service.internal", "A")
            assert records(own.answer, "A") == ["10.0.0.1", "10.0.0.2"] and own.flags & dns.flags.RA
        assert served.server.stats.queries[("A", "NXDOMAIN")] == 2
    finally:
        loop_thread.run(served.server.stop())
        loop_thread.run(upstream.server.stop())
        catalog.store.close()
        upstream_catalog.store.close()


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed")
def test_dig(served: Served) -> None:
    out = subprocess.run(
        ["dig", f"@{served.host}", "-p", str(served.port), "+short", "+time=2", "+tries=1", "SRV", "_redis._tcp"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout
    assert sorted(out.split("\n")[:2]) == ["1 25 6379 alpha.node.internal.", "1 75 6380 0a000002.addr.internal."]
    tcp = subprocess.run(
        ["dig", f"@{served.host}", "-p", str(served.port), "+tcp", "+time=2", "+tries=1", "A", "Redis.Service.Internal"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout
    assert "status: NOERROR" in tcp and "flags: qr aa rd" in tcp
    assert "Redis.Service.Internal.\t5\tIN\tA\t10.0.0.1" in tcp


def test_readme_dig_example_is_what_the_server_answers(tmp_path: Path, loop_thread: LoopThread) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("\n## DNS\n", 1)[1].split("\n## ", 1)[0]
    shown = section.split("$ dig", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    expected = sorted(" ".join(line.split()) for line in shown)
    catalog = Catalog(Store(tmp_path / "p.db"), NodeIdentity("web1", "10.0.0.5"))
    catalog.apply_file("redis.yaml", [
        Instance("redis-primary", "redis", "web1", "10.0.0.5", 6379, address_is_node=True, source=Source.file("redis.yaml")),
        Instance("redis-replica", "redis", "web1", "10.0.0.6", 6380, source=Source.file("redis.yaml")),
    ])
    served = serve(loop_thread, catalog)
    try:
        reply = served.udp("_redis._tcp.service.internal", "SRV")
        got = sorted(
            f"{rrset.name} {rrset.ttl} IN {dns.rdatatype.to_text(rrset.rdtype)} {rdata}"
            for rrset in reply.answer + reply.additional
            for rdata in rrset
        )
        assert got == expected
    finally:
        loop_thread.run(served.server.stop())
        catalog.store.close()


def test_servfail_when_no_recursor_answers(tmp_path: Path, loop_thread: LoopThread) -> None:
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    catalog = new_catalog(tmp_path)
    served = serve(loop_thread, catalog, recursors=(f"127.0.0.1:{dead_port}",))
    try:
        for ask in (served.udp, served.tcp):
            reply = ask("example.com", "A")
            assert reply.rcode() == dns.rcode.SERVFAIL and reply.flags & dns.flags.RA
        assert served.server.stats.queries[("A", "SERVFAIL")] == 2
    finally:
        loop_thread.run(served.server.stop())
        catalog.store.close()


# -- what a client can make us spend (issue 9) ----------------------------------------


def outside_address() -> str:
    """A non-loopback address of this host, to send from: loopback clients are exempt from some limits."""
    address = default_address()
    if ipaddress.ip_address(address).is_loopback:
        pytest.skip("no non-loopback IPv4 address on this host to send from")
    return address


def collect(sock: socket.socket, quiet: float = 0.5) -> list[bytes]:
    """Every datagram arriving on `sock` until none came for `quiet` seconds."""
    replies = []
    sock.settimeout(quiet)
    while True:
        try:
            replies.append(sock.recv(65535))
        except TimeoutError:
            return replies


def test_udp_replies_never_exceed_the_clients_size_or_1232(tmp_path: Path, loop_thread: LoopThread) -> None:
    """Issue 9, row 13: UDP answers reached 3,410 bytes (x62 amplification); now min(client size, 1232)."""
    texts = {f"key{i}": "v" * 200 for i in range(16)}
    catalog = new_catalog(tmp_path, instances=BASE + many_instances(60) + [instance("m-1", "meta", "10.0.0.9", 7000, meta=texts)])
    served = serve(loop_thread, catalog)
    questions = [("_big._tcp.service.internal", "SRV"), ("big.service.internal", "A"),
                 ("meta.service.internal", "TXT"), ("big.service.internal", "ANY")]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            for name, rdtype in questions:
                full = served.tcp(name, rdtype)
                assert not full.flags & dns.flags.TC and full.answer
                for payload in (None, 0, 511, 512, 700, 1231, 1232, 1400, 4096, 65535):
                    kwargs: dict[str, Any] = {} if payload is None else {"use_edns": 0, "payload": payload}
                    sock.sendto(dns.message.make_query(name, rdtype, **kwargs).to_wire(), (served.host, served.port))
                    data = sock.recv(65535)
                    assert len(data) <= min(max(payload or 512, 512), 1232), (name, rdtype, payload, len(data))
                    reply = dns.message.from_wire(data)
                    if reply.flags & dns.flags.TC:
                        assert reply.answer == []
                    else:  # 60 addresses fit 1232 bytes, not 512
                        assert (name, payload) == ("big.service.internal", max(payload or 0, 1232))
                        assert records(reply.answer, "A") == records(full.answer, "A")
    finally:
        loop_thread.run(served.server.stop())
        catalog.store.close()


def test_rate_limit_answers_a_budget_then_slips_and_drops(tmp_path: Path, loop_thread: LoopThread) -> None:
    """Issue 9, row 13: `dns.rate_limit` answers per second per client /24, then BIND's slip:
    every second limited answer is a tiny TC reply, the rest are dropped. Loopback is exempt."""
    here = outside_address()
    catalog = new_catalog(tmp_path)
    served = serve(loop_thread, catalog, listen=(f"{here}:0", "127.0.0.1:0"), rate_limit=5)
    try:
        outside_port, loopback_port = (b.port for b in served.server.bound_udp)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((here, 0))
            started = time.monotonic()
            for i in range(60):
                sock.sendto(dns.message.make_query("redis.service.internal", "A", id=i).to_wire(), (here, outside_port))
            elapsed = time.monotonic() - started
            replies = [dns.message.from_wire(data) for data in collect(sock)]
        answered = [r for r in replies if not r.flags & dns.flags.TC]
        slipped = [r for r in replies if r.flags & dns.flags.TC]
        assert 5 <= len(answered) <= 5 + 5 * elapsed + 1
        assert all(records(r.answer, "A") == ["10.0.0.1", "10.0.0.2"] for r in answered)
        limited = 60 - len(answered)
        assert limited // 2 - 1 <= len(slipped) <= limited // 2 + 1
        assert all(r.answer == [] and r.question[0].name.to_text() == "redis.service.internal." for r in slipped)
        assert served.server.stats.rate_limited == limited
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(60):
                sock.sendto(dns.message.make_query("redis.service.internal", "A", id=i).to_wire(),
                            ("127.0.0.1", loopback_port))
            from_loopback = [dns.message.from_wire(data) for data in collect(sock)]
        assert len(from_loopback) == 60 and not any(r.flags & dns.flags.TC for r in from_loopback)
    finally:
        loop_thread.run(served.server.stop())
        catalog.store.close()


def test_only_loopback_and_allowed_networks_may_recurse(tmp_path: Path, loop_thread: LoopThread) -> None:
    """Issue 9, row 11: any client could have us forward; now loopback and `dns.recursion_allow` only."""
    here = outside_address()
    (tmp_path / "up").mkdir()
    upstream_catalog = new_catalog(tmp_path / "up", domain="upstream",
                                   instances=[instance("api-80", "api", "192.0.2.7", 80)])
    upstream = serve(loop_thread, upstream_catalog)
    catalog = new_catalog(tmp_path)
    recursors = (f"127.0.0.1:{upstream.port}",)
    closed = serve(loop_thread, catalog, listen=(f"{here}:0", "127.0.0.1:0"), recursors=recursors)
    allowing = serve(loop_thread, catalog, listen=(f"{here}:0",), recursors=recursors,
                     recursion_allow=[f"{here}/32"])
    try:
        outside, loopback = (b.port for b in closed.server.bound_udp)
        for send in (dns.query.udp, dns.query.tcp):
            def ask(name: str, port: int, source: str) -> dns.message.Message:
                return send(dns.message.make_query(name, "A"), source, port=port, timeout=TIMEOUT, source=source)

            refused = ask("api.service.upstream", outside, here)
            assert refused.rcode() == dns.rcode.REFUSED and refused.answer == []
            assert records(ask("redis.service.internal", outside, here).answer, "A") == ["10.0.0.1", "10.0.0.2"]
            assert records(ask("api.service.upstream", loopback, "127.0.0.1").answer, "A") == ["192.0.2.7"]
            allowed = allowing.server.bound_udp[0].port
            assert records(ask("api.service.upstream", allowed, here).answer, "A") == ["192.0.2.7"]
        assert closed.server.stats.recursion_refused == 2
    finally:
        for running in (closed, allowing, upstream):
            loop_thread.run(running.server.stop())
        catalog.store.close()
        upstream_catalog.store.close()


class LoudUpstream:
    """An upstream resolver that answers every UDP query with some 3,000 bytes (one big TXT)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="loud-upstream")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "TXT",
                                                    *[f'"{i:03} {"x" * 246}"' for i in range(12)]))
            self.sock.sendto(reply.to_wire(max_size=65535), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_forwarded_udp_replies_are_clamped_to_the_clients_size(tmp_path: Path, loop_thread: LoopThread) -> None:
    """Issue 9, row 11: an upstream's large reply must not go out through us to a small-buffer client."""
    upstream = LoudUpstream()
    catalog = new_catalog(tmp_path)
    served = serve(loop_thread, catalog, recursors=(f"127.0.0.1:{upstream.port}",))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            for kwargs, limit in (({}, 512), ({"use_edns": 0, "payload": 4096}, 1232)):
                sock.sendto(dns.message.make_query("example.com", "TXT", **kwargs).to_wire(), (served.host, served.port))
                data = sock.recv(65535)
                assert len(data) <= limit
                reply = dns.message.from_wire(data)
                assert reply.flags & dns.flags.TC and reply.question[0].name.to_text() == "example.com."
    finally:
        loop_thread.run(served.server.stop())
        catalog.store.close()
        upstream.close()


def connect_from(source: str, served: Served) -> socket.socket:
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.bind((source, 0))
    conn.connect((served.host, served.port))
    conn.settimeout(TIMEOUT)
    return conn


def tcp_ask(conn: socket.socket, name: str = "redis.service.internal") -> dns.message.Message:
    wire = dns.message.make_query(name, "A").to_wire()
    conn.sendall(struct.pack("!H", len(wire)) + wire)
    length = struct.unpack("!H", recv_exactly(conn, 2))[0]
    return dns.message.from_wire(recv_exactly(conn, length))


def closed_by_server(conn: socket.socket) -> bool:
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True


def test_tcp_connections_are_capped_overall_and_per_client(tmp_path: Path, loop_thread: LoopThread) -> None:
    """Issue 9, row 12: 17k held DNS TCP connections were all held open.

    At a cap, the connection quiet the longest (of that client, or overall) is
    closed to make room: 32 overall here, 32 // 16 = 2 per client address.
    """
    catalog = new_catalog(tmp_path)
    served = serve(loop_thread, catalog, tcp_connections=32)
    opened: list[socket.socket] = []
    try:
        # Per client: a third connection from 127.0.0.2 closes that client's quietest one.
        first, second = connect_from("127.0.0.2", served), connect_from("127.0.0.2", served)
        opened += [first, second]
        tcp_ask(first)  # `second` is now the quiet one
        third = connect_from("127.0.0.2", served)
        opened.append(third)
        assert records(tcp_ask(third).answer, "A") == ["10.0.0.1", "10.0.0.2"]
        assert closed_by_server(second)
        assert records(tcp_ask(first).answer, "A") == ["10.0.0.1", "10.0.0.2"]
        # Overall: 30 more from 15 other addresses fill the 32; one more closes the quietest, `first`... 
        for host in range(3, 18):
            opened += [connect_from(f"127.0.0.{host}", served) for _ in range(2)]
        tcp_ask(third)
        for conn in opened[3:]:
            tcp_ask(conn)  # every one has asked since `first` did
        newcomer = connect_from("127.0.0.99", served)
        opened.append(newcomer)
        assert records(tcp_ask(newcomer).answer, "A") == ["10.0.0.1", "10.0.0.2"]
        assert closed_by_server(first)
        assert 30 <= server_side_connections(served) <= 32
        assert served.server.stats.tcp_evicted == 2
    finally:
        for conn in opened:
            conn.close()
        loop_thread.run(served.server.stop())
        catalog.store.close()


def test_tcp_length_past_the_largest_query_closes_at_once(served: Served) -> None:
    """A 64 KiB length prefix is not read: nothing that long is a query we answer."""
    with socket.create_connection((served.host, served.port), timeout=TIMEOUT) as conn:
        conn.sendall(b"\xff\xff" + b"x" * 100)
        assert closed_by_server(conn)
    assert served.server.stats.malformed == 1
