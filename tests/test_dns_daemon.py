"""DNS through the real daemon (uvloop, its logging) under clients that misbehave: issue 9, rows 11 and 14."""

from __future__ import annotations

import socket
import struct
import time

import dns.message
import dns.query
import dns.rcode
import psutil

from conftest import bound_socket, wait_for
from daemonkit import Daemon, DaemonFactory

BIG = "services:\n" + "".join(
    f"  - {{name: big, id: big-{i}, port: {9000 + i}, address: 10.1.0.{i + 1}}}\n" for i in range(60)
)


def trouble(daemon: Daemon) -> list[dict[str, object]]:
    """Log lines that are not plain information: warnings, errors, tracebacks."""
    return [line for line in daemon.logs() if line.get("level") not in ("info", "debug") or "exc" in line]


def test_tcp_clients_that_reset_after_pipelining_log_nothing(start_daemon: DaemonFactory) -> None:
    """Row 14: a client that pipelines queries and resets made a traceback per connection.

    The reset reaches the server while it still works through queries it has read;
    uvloop then raises on the next reply written to the closed connection. Two thousand
    small queries per connection and a reset a moment later hit that window often.
    """
    daemon = start_daemon(files={"big.yaml": BIG})
    host, port = daemon.dns
    query = dns.message.make_query("nosuch.service.internal", "A").to_wire()
    for _ in range(40):
        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        conn.connect((host, port))
        conn.sendall((struct.pack("!H", len(query)) + query) * 2000)
        time.sleep(0.002)
        # SO_LINGER 0: close() sends a reset instead of a FIN.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    reply = daemon.query("_big._tcp.service.internal", "SRV", tcp=True)
    assert len(reply.answer[0]) == 60
    assert trouble(daemon) == []


def test_a_black_holed_upstream_cannot_take_the_zone_down(start_daemon: DaemonFactory) -> None:
    """Row 11: recursors set, the upstream answers nothing, thousands of outside names a second.

    That made ~9,000 upstream sockets, one WARNING per query (12 MB of log in 25 s) and
    in-zone queries timing out. Now forwards in flight are capped (the rest are answered
    SERVFAIL at once), the upstream's failures are logged once per interval, and the
    zone keeps answering.
    """
    hole = bound_socket(socket.SOCK_DGRAM)  # takes queries, never answers
    try:
        daemon = start_daemon(files={"big.yaml": BIG},
                              config={"dns": {"recursors": [f"127.0.0.1:{hole.getsockname()[1]}"]}})
        host, port = daemon.dns
        process = psutil.Process(daemon.proc.pid)
        fds_before = process.num_fds()
        in_zone = dns.message.make_query("big.service.internal", "A", use_edns=0, payload=1232)
        slowest = 0.0
        servfail = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
            flood.setblocking(False)
            for burst in range(10):
                for i in range(500):
                    name = f"n{burst}-{i}.example.com"
                    flood.sendto(dns.message.make_query(name, "A").to_wire(), (host, port))
                started = time.monotonic()
                reply = dns.query.udp(in_zone, host, port=port, timeout=5)
                slowest = max(slowest, time.monotonic() - started)
                assert reply.rcode() == dns.rcode.NOERROR and len(reply.answer[0]) == 60
                while True:
                    try:
                        servfail += flood.recv(512)[3] & 0xF == dns.rcode.SERVFAIL
                    except BlockingIOError:
                        break
            peak_fds = process.num_fds()
        assert slowest < 1.0  # generous: in-zone answers come in milliseconds
        assert servfail > 1000  # the overflow is answered at once, not left to time out
        assert peak_fds - fds_before <= 256 + 20  # server.FORWARDS_IN_FLIGHT upstream sockets at most
        # 5,000 failures within a few seconds: a few lines at most, each counting what it held back.
        wait_for(lambda: any("upstream" in str(line.get("msg")) for line in trouble(daemon)), 10, "the upstream warning")
        assert len(trouble(daemon)) <= 10
    finally:
        hole.close()


def test_dns_bare_names_reaches_the_server(start_daemon: DaemonFactory) -> None:
    """`dns.bare_names: srv` in the config file: bare `web` is outside the zone, `_web._tcp` ours."""
    daemon = start_daemon(config={"dns": {"bare_names": "srv"}}, files={"web.yaml": "name: web\nport: 8080\n"})
    assert daemon.query("web", "A").rcode() == dns.rcode.REFUSED
    assert daemon.srv_ports("_web._tcp") == [8080]
    assert daemon.srv_ports("_web._tcp.service.internal") == [8080]
