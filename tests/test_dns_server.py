"""The DNS server end to end: name forms, rcodes, EDNS, truncation, TCP framing, robustness.

A real DnsServer on 127.0.0.1 port 0 over a real Catalog (tests/dnskit.py); the
tests are its clients (dnspython over UDP and TCP, raw sockets for the malformed
packets, dig when installed).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dnskit import TIMEOUT, DnsLoop, Served, instance, new_catalog, records, serve
from registry.catalog import Catalog
from registry.model import Instance, NodeIdentity, Source
from registry.store import Store


# -- name forms --------------------------------------------------------------


def test_srv_answer_has_weights_ports_targets_and_glue(served: Served) -> None:
    reply = served.udp("_redis._tcp.service.internal", "SRV")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    # Weights as CoreDNS scales them: share of the priority's total (1 + 3), in percent.
    assert records(reply.answer, "SRV") == [
        "1 25 6379 node1.node.internal.",
        "1 75 6380 0a000002.addr.internal.",
    ]
    glue = {rrset.name.to_text(): [r.to_text() for r in rrset] for rrset in reply.additional}
    assert glue == {"node1.node.internal.": ["10.0.0.1"], "0a000002.addr.internal.": ["10.0.0.2"]}


BOTH_REDIS = ["1 25 6379 node1.node.internal.", "1 75 6380 0a000002.addr.internal."]
BOTH_GLUE = {"node1.node.internal.": ["10.0.0.1"], "0a000002.addr.internal.": ["10.0.0.2"]}


@pytest.mark.parametrize(
    ("name", "srv", "glue"),
    [
        ("redis.service.internal", BOTH_REDIS, BOTH_GLUE),
        ("REDIS.Service.Internal", BOTH_REDIS, BOTH_GLUE),
        ("replica.redis.service.internal", ["1 100 6380 0a000002.addr.internal."], {"0a000002.addr.internal.": ["10.0.0.2"]}),
        ("primary.redis.service.internal", ["1 100 6379 node1.node.internal."], {"node1.node.internal.": ["10.0.0.1"]}),
        ("redis", BOTH_REDIS, BOTH_GLUE),
    ],
)
def test_plain_service_names_answer_srv_as_consul_does(
    served: Served, name: str, srv: list[str], glue: dict[str, list[str]]
) -> None:
    """`<service>.service` and `<tag>.<service>.service` SRV: targets and their addresses, as `_<service>._tcp`."""
    reply = served.udp(name, "SRV")
    assert reply.rcode() == dns.rcode.NOERROR
    assert records(reply.answer, "SRV") == srv
    # Names compare without case: the glue's suffix may point at the question's spelling.
    assert {rrset.name.to_text().lower(): [r.to_text() for r in rrset] for rrset in reply.additional} == glue
    # The owner name is the one asked, case and all (0x20).
    assert [rrset.name.to_text() for rrset in reply.answer] == [name + "."]


def test_every_srv_target_resolves(served: Served) -> None:
    for target, address in [("node1.node.internal", "10.0.0.1"), ("0a000002.addr.internal", "10.0.0.2")]:
        assert records(served.udp(target, "A").answer, "A") == [address]


@pytest.mark.parametrize(
    ("name", "rdtype", "expected"),
    [
        ("redis.service.internal", "A", ["10.0.0.1", "10.0.0.2"]),
        ("primary.redis.service.internal", "A", ["10.0.0.1"]),
        ("web.service.internal", "AAAA", ["fd00::80"]),
        ("node1.node.internal", "A", ["10.0.0.1"]),
        ("0a000003.addr.internal", "A", ["10.0.0.3"]),
        ("fd000000000000000000000000000080.addr.internal", "AAAA", ["fd00::80"]),
        ("_redis._replica.service.internal", "SRV", ["1 100 6380 0a000002.addr.internal."]),
        ("_redis._udp.service.internal", "SRV", ["1 25 6379 node1.node.internal.", "1 75 6380 0a000002.addr.internal."]),
        ("redis.service.internal", "TXT", ['"team=platform"', '"tier=cache"']),
        ("redis", "A", ["10.0.0.1", "10.0.0.2"]),
        ("_redis._tcp", "SRV", ["1 25 6379 node1.node.internal.", "1 75 6380 0a000002.addr.internal."]),
        ("internal", "SOA", ["node1.node.internal. hostmaster.internal. 2 3600 600 86400 5"]),
        ("internal", "NS", ["node1.node.internal."]),
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
        ("db.service.internal", "SRV", dns.rcode.NOERROR),
        ("primary.db.service.internal", "SRV", dns.rcode.NXDOMAIN),
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


# -- listening --------------------------------------------------------------------


def test_ipv6_listener(tmp_path: Path, loop_thread: DnsLoop) -> None:
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


@pytest.mark.skipif(shutil.which("dig") is None,
                    reason="dig is not installed (apt-get install bind9-dnsutils; .ci/run installs it where apt works)")
def test_dig(served: Served) -> None:
    out = subprocess.run(
        ["dig", f"@{served.host}", "-p", str(served.port), "+short", "+time=2", "+tries=1", "SRV", "_redis._tcp"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout
    assert sorted(out.split("\n")[:2]) == ["1 25 6379 node1.node.internal.", "1 75 6380 0a000002.addr.internal."]
    tcp = subprocess.run(
        ["dig", f"@{served.host}", "-p", str(served.port), "+tcp", "+time=2", "+tries=1", "A", "Redis.Service.Internal"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout
    assert "status: NOERROR" in tcp and "flags: qr aa rd" in tcp
    assert "Redis.Service.Internal.\t5\tIN\tA\t10.0.0.1" in tcp


def test_readme_dig_example_is_what_the_server_answers(tmp_path: Path, loop_thread: DnsLoop) -> None:
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
