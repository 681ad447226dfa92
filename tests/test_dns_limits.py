"""What a client can make the DNS server spend (issue 9): reply sizes, rate limits, TCP connections.

A real DnsServer on 127.0.0.1 port 0 over a real Catalog (tests/dnskit.py).
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path
from typing import Any

import dns.flags
import dns.message

from dnskit import BASE, TIMEOUT, DnsLoop, Served, instance, many_instances, new_catalog, outside_address, records, recv_exactly, serve, server_side_connections


def collect(sock: socket.socket, quiet: float = 0.5) -> list[bytes]:
    """Every datagram arriving on `sock` until none came for `quiet` seconds."""
    replies = []
    sock.settimeout(quiet)
    while True:
        try:
            replies.append(sock.recv(65535))
        except TimeoutError:
            return replies


def test_udp_replies_never_exceed_the_clients_size_or_1232(tmp_path: Path, loop_thread: DnsLoop) -> None:
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


def test_rate_limit_answers_a_budget_then_slips_and_drops(tmp_path: Path, loop_thread: DnsLoop) -> None:
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


def test_tcp_connections_are_capped_overall_and_per_client(tmp_path: Path, loop_thread: DnsLoop) -> None:
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
