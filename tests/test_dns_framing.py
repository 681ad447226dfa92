"""What the DNS wire carries: the case asked, EDNS, truncation, TCP framing, malformed packets.

A real DnsServer on 127.0.0.1 port 0 over a real Catalog (tests/dnskit.py); the
tests are its clients (dnspython over UDP and TCP, raw sockets).
"""

from __future__ import annotations

import random
import socket
import struct
import time
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from conftest import wait_for
from dnskit import BASE, TIMEOUT, DnsLoop, Served, many_instances, new_catalog, records, recv_exactly, serve, server_side_connections
from resolver.dns import server as server_module


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


def test_a_cookie_only_query_gets_formerr_with_an_opt(served: Served) -> None:
    """QDCOUNT 0 with an OPT (RFC 7873 5.4): we do no cookies, so FORMERR, but with our OPT
    (RFC 6891 7), or the client may decide that we do not speak EDNS."""
    cookie = dns.edns.CookieOption(bytes(range(8)), b"")
    query = dns.message.make_query("redis.service.internal", "A", use_edns=0, want_dnssec=True, options=[cookie])
    query.question = []
    packet = query.to_wire()
    assert packet[4:6] == b"\x00\x00"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendto(packet, (served.host, served.port))
        over_udp = dns.message.from_wire(sock.recv(65535))
    with socket.create_connection((served.host, served.port), timeout=TIMEOUT) as conn:
        conn.sendall(struct.pack("!H", len(packet)) + packet)
        over_tcp = dns.message.from_wire(recv_exactly(conn, struct.unpack("!H", recv_exactly(conn, 2))[0]))
    for reply in (over_udp, over_tcp):
        assert reply.id == query.id and reply.rcode() == dns.rcode.FORMERR
        assert reply.edns == 0 and reply.payload == 1232 and reply.ednsflags & dns.flags.DO
    # Without an OPT, none comes back.
    plain = dns.message.make_query("redis.service.internal", "A")
    plain.question = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendto(plain.to_wire(), (served.host, served.port))
        assert dns.message.from_wire(sock.recv(65535)).edns == -1


def test_truncated_over_udp_full_over_tcp(tmp_path: Path, loop_thread: DnsLoop) -> None:
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
    padding = [dns.edns.GenericOption(dns.edns.OptionType.make(65001), b"x" * 600)]
    reply = served.udp("redis.service.inTERnal", "A", use_edns=0, options=padding)
    assert reply.flags & dns.flags.TC
    assert reply.edns == 0  # its OPT was read before the cut: the TC reply carries ours (RFC 6891 7)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer == []
    assert reply.question[0].name.to_text() == "redis.service.inTERnal."
    full = served.tcp("redis.service.internal", "A", use_edns=0, options=padding)
    assert not full.flags & dns.flags.TC
    assert records(full.answer, "A") == ["10.0.0.1", "10.0.0.2"]
    # Just under the limit is read whole and answered over UDP.
    fits = [dns.edns.GenericOption(dns.edns.OptionType.make(65001), b"x" * 400)]
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


def test_a_client_that_stops_reading_is_dropped_after_the_idle_timeout(
    tmp_path: Path, loop_thread: DnsLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pipelined queries whose replies are never read must not hold the connection forever (RFC 7766 6.2.3).

    The timeout is cut from 10 s to IDLE so that the test is quick, but not so far that
    a loaded machine filling the buffers takes longer than it; the deadline for the
    drop, well past IDLE yet short of the real 10 s, still fails a server that never drops.
    """
    idle = 1.5
    monkeypatch.setattr(server_module, "TCP_IDLE_TIMEOUT", idle)
    catalog = new_catalog(tmp_path, instances=BASE + many_instances(60))
    served = serve(loop_thread, catalog)
    try:
        query = dns.message.make_query("_big._tcp.service.internal", "SRV").to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn.connect((served.host, served.port))
            # The server's idle timer starts at its accept: seen at all, the connection is young.
            wait_for(lambda: server_side_connections(served) == 1, what="the server to accept")
            conn.setblocking(False)
            # Each 45-byte query asks for a 4 KB reply: the server's send side fills long before ours.
            filling = time.monotonic() + 10
            while time.monotonic() < filling:
                try:
                    conn.send((struct.pack("!H", len(query)) + query) * 100)
                except BlockingIOError:
                    break
                except OSError:
                    break  # a very slow fill: the server gave up on us already, as it should
            wait_for(lambda: server_side_connections(served) == 0, timeout=idle + 6, what="the idle client to be dropped")
    finally:
        loop_thread.run(served.server.stop())
        catalog.store.close()


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
