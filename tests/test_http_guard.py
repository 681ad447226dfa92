"""The HTTP API holds its ground: slow senders are cut off, connections are capped,
blocking queries keep their place, and nothing a client sends logs a traceback.

Every test runs the real daemon and talks to it over raw sockets, because what is
under test is what a misbehaving client does on the wire.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import yaml

from conftest import wait_for
from daemonkit import Daemon, DaemonFactory

# Short deadlines so that each test takes seconds; the sweep runs at a quarter of them.
FAST = {"http": {"header_timeout": "1s", "body_timeout": "1s"}}
# How long a test waits for the daemon to act on a 1 s deadline on a busy machine.
CUT_WITHIN = 8.0


def http_address(daemon: Daemon) -> tuple[str, int]:
    host, _, port = daemon.http_url.removeprefix("http://").rpartition(":")
    return host, int(port)


def connect(daemon: Daemon) -> socket.socket:
    sock = socket.create_connection(http_address(daemon), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def dribble(sock: socket.socket, head: bytes, drip: bytes, within: float) -> tuple[bytes, float]:
    """Send `head`, then `drip` a byte every 0.1 s until the server closes the
    connection; (what the server sent, seconds it took). Fails after `within`."""
    sock.sendall(head)
    started = time.monotonic()
    received = b""
    sock.settimeout(0.1)
    for byte in drip * 1000:
        if time.monotonic() - started > within:
            raise AssertionError(f"the server still reads after {within}s; it sent {received!r}")
        try:
            chunk = sock.recv(4096)
            if not chunk:
                return received, time.monotonic() - started
            received += chunk
        except TimeoutError:
            pass
        except ConnectionResetError:
            return received, time.monotonic() - started
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return received + _drain(sock), time.monotonic() - started
    raise AssertionError("ran out of bytes to send")


def _drain(sock: socket.socket) -> bytes:
    sock.settimeout(1)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except OSError:
        pass
    return data


def error_of(raw: bytes) -> tuple[int, dict[str, Any]]:
    """(status, error object) of a raw HTTP response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"]


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0)
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def tracebacks(daemon: Daemon) -> list[dict[str, Any]]:
    return [line for line in daemon.logs() if "exc" in line or "Traceback" in str(line.get("msg", ""))]


def test_headers_sent_byte_by_byte_are_cut_off_with_408(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(config=FAST)
    with connect(daemon) as sock:
        raw, took = dribble(sock, b"GET /v1/services HTTP/1.1\r\nHost: x\r\n", b"X-Slow: yes\r\n", CUT_WITHIN)
    status, error = error_of(raw)
    assert (status, error["code"]) == (408, "request_timeout")
    assert took >= 0.5
    assert daemon.get("/healthz")["status"] == "ok"


def test_a_connection_that_never_sends_is_closed(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(config=FAST)
    with connect(daemon) as sock:
        wait_for(lambda: closed_by_server(sock), CUT_WITHIN, "the silent connection to be closed")


def test_a_body_sent_byte_by_byte_is_cut_off_with_408(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(config=FAST)
    head = b"POST /v1/services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
    with connect(daemon) as sock:
        raw, _ = dribble(sock, head, b'{"name": "slow", "port": 1, "meta": {"a": "' + b"x" * 3000, CUT_WITHIN)
    status, error = error_of(raw)
    assert (status, error["code"]) == (408, "request_timeout")
    assert daemon.request("GET", "/v1/services/slow").status == 404
    assert not tracebacks(daemon)


def test_the_connection_cap_closes_idle_and_slow_connections_for_newcomers(start_daemon: DaemonFactory) -> None:
    # The default header timeout (10 s) is far longer than this test: only the cap acts.
    daemon = start_daemon(config={"http": {"max_connections": 8}})
    held = [connect(daemon) for _ in range(40)]
    for sock in held[::2]:
        sock.sendall(b"GET /v1/services HTTP/1.1\r\nHost: x\r\n")  # half a request, then nothing
    try:
        started = time.monotonic()
        assert daemon.get("/healthz")["status"] == "ok"
        assert time.monotonic() - started < 5
        # At most 8 connections stay open, ours included: the 40 held went, oldest first.
        wait_for(lambda: sum(closed_by_server(s) for s in held) >= 40 - 7, CUT_WITHIN, "the cap to close connections")
        assert closed_by_server(held[0])
    finally:
        for sock in held:
            sock.close()


def blocking_get(daemon: Daemon, path: str, replies: list[tuple[int, Any]], timeout: float = 60) -> None:
    try:
        with urllib.request.urlopen(daemon.http_url + path, timeout=timeout) as response:
            replies.append((response.status, json.loads(response.read())))
    except urllib.error.HTTPError as exc:
        with exc:
            replies.append((exc.code, json.loads(exc.read())))


def test_blocking_queries_are_never_cut_and_cannot_take_every_connection(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(config={"http": {"max_connections": 8, "header_timeout": "1s", "body_timeout": "1s"}})
    index = int(daemon.get("/v1/status")["index"])
    path = f"/v1/services?index={index}&wait=60s"
    replies: list[tuple[int, Any]] = []
    # Three quarters of 8: six blocking queries may wait at once.
    waiters = [threading.Thread(target=blocking_get, args=(daemon, path, replies)) for _ in range(6)]
    for waiter in waiters:
        waiter.start()
    wait_for(lambda: _waiting(daemon) == 6, 10, "six blocking queries to wait")
    seventh: list[tuple[int, Any]] = []
    blocking_get(daemon, path, seventh, timeout=10)
    assert seventh[0][0] == 503 and seventh[0][1]["error"]["code"] == "too_many_waiting"
    # Slow and idle clients come and go, each past the 1 s header deadline...
    idle = [connect(daemon) for _ in range(12)]
    wait_for(lambda: all(closed_by_server(s) for s in idle), CUT_WITHIN, "idle connections to be closed")
    for sock in idle:
        sock.close()
    # ...lookups still find room, and the six waiters are still there, uncut.
    assert daemon.get("/healthz")["status"] == "ok"
    assert not replies
    assert daemon.write("POST", "/v1/services", {"name": "web", "port": 8080}).status == 201
    for waiter in waiters:
        waiter.join(10)
    assert [status for status, _ in replies] == [200] * 6
    assert all("web" in body for _, body in replies)


def _waiting(daemon: Daemon) -> int:
    return int(daemon.status()["http"]["blocking_queries"])


def test_malformed_headers_answer_400_json_and_log_one_line_not_a_traceback(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    started = time.monotonic()
    for _ in range(100):
        with connect(daemon) as sock:
            sock.sendall(b"GET /v1/services HTTP/1.1\r\nHost: x\r\nBad Header\x01: y\r\n\r\n")
            raw = _drain(sock)
        status, error = error_of(raw)
        assert (status, error["code"]) == (400, "bad_request")
    assert daemon.get("/healthz")["status"] == "ok"
    assert not tracebacks(daemon)
    malformed = [line for line in daemon.logs() if "malformed" in str(line.get("msg"))]
    # One line at once, then at most one per 10 s carrying the count of the rest.
    assert 1 <= len(malformed) <= 2 + (time.monotonic() - started) // 10
    assert malformed[0]["level"] == "warning" and malformed[0]["suppressed"] == 0


def test_a_broken_chunked_body_answers_400_without_a_traceback(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    with connect(daemon) as sock:
        sock.sendall(
            b"POST /v1/services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
        )
        raw = _drain(sock)
    status, error = error_of(raw)
    assert (status, error["code"]) == (400, "bad_request")
    assert not tracebacks(daemon)


def test_a_client_that_leaves_mid_body_logs_nothing(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    with connect(daemon) as sock:
        sock.sendall(b"POST /v1/services HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"name\":")
    # The handler waiting for the rest of the body sees the connection go: counted as
    # nginx's 499 (client closed request), answered to no one, logged nowhere.
    gone = 'pilotfish_http_requests_total{method="POST",route="/v1/services",status="499"} 1.0'
    wait_for(lambda: gone in daemon.text("/metrics"), 5, "the request to be counted as 499")
    assert not tracebacks(daemon)



def test_the_limits_apply_on_sighup_without_a_restart(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    assert daemon.status()["http"]["max_connections"] == 512
    config = yaml.safe_load(daemon.config_path.read_text())
    config["http"].update(max_connections=16, header_timeout="1s")
    daemon.config_path.write_text(yaml.safe_dump(config))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: daemon.status()["http"]["max_connections"] == 16, 10, "the reload")
    with connect(daemon) as sock:
        raw, _ = dribble(sock, b"GET /healthz HTTP/1.1\r\n", b"X: y\r\n", CUT_WITHIN)
    assert error_of(raw)[0] == 408


def test_keep_alive_connections_idle_after_consul_reads_make_room_for_newcomers(start_daemon: DaemonFactory) -> None:
    """A Consul read ends like any other: its kept-alive connection counts as idle, so the
    cap closes it for a newcomer instead of refusing the newcomer as if it were at work."""
    daemon = start_daemon(config={"http": {"max_connections": 4}})
    held = [connect(daemon) for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(b"GET /v1/catalog/services HTTP/1.1\r\nHost: x\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 200"), head
        assert daemon.get("/healthz")["status"] == "ok"
        wait_for(lambda: any(closed_by_server(s) for s in held), CUT_WITHIN, "an idle Consul connection to be closed")
    finally:
        for sock in held:
            sock.close()
