"""Health through the real daemon: checks, TTL reports and maintenance seen in DNS and HTTP.

Every service checked here is a real listener on 127.0.0.1 port 0 in the test
process (a bare listening socket for TCP, http.server in a thread for HTTP); every
deadline is the check's interval + timeout + a slack that a loaded machine needs
(a wait returns as soon as the change shows).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from conftest import REPO, wait_for
from daemonkit import Daemon, DaemonFactory

INTERVAL, TIMEOUT, SLACK = 1.0, 1.0, 1.0
WITHIN = INTERVAL + TIMEOUT + SLACK
CHECK_TIMING = {"interval": "1s", "timeout": "1s"}
# Long enough for the reports and lookups made inside it to finish on a loaded machine.
TTL = 2.0


class Listener:
    """A TCP port that accepts connections (the kernel completes them) until closed."""

    def __init__(self) -> None:
        self.port = 0
        self.sock: socket.socket | None = None

    def up(self) -> "Listener":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(1024)
        self.port, self.sock = sock.getsockname()[1], sock
        return self

    def down(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Web:
    """http.server in a thread whose answer is switched by `status` (0: hang until released)."""

    def __init__(self) -> None:
        self.status = 200
        self.port = 0
        self.release = threading.Event()
        self.up()

    def up(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if outer.status == 0:
                    outer.release.wait(5)
                    return
                self.send_response(outer.status)
                if outer.status == 302:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.block_on_close = True  # close() joins the handler threads
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
        self.release.clear()


@pytest.fixture
def listener() -> Iterator[Listener]:
    service = Listener().up()
    yield service
    service.down()


@pytest.fixture
def web() -> Iterator[Web]:
    server = Web()
    yield server
    server.close()


@pytest.fixture
def daemon(start_daemon: DaemonFactory) -> Daemon:
    return start_daemon()


def statuses(daemon: Daemon, name: str) -> dict[str, str]:
    return {i["id"]: i["status"] for i in daemon.get(f"/v1/services/{name}?status=any")}


def healthy_ids(daemon: Daemon, name: str) -> list[str]:
    reply = daemon.request("GET", f"/v1/services/{name}")
    return sorted(i["id"] for i in reply.body) if reply.status == 200 else []


def register(daemon: Daemon, body: dict[str, Any]) -> None:
    reply = daemon.write("POST", "/v1/services", body)
    assert reply.status == 201, reply


def test_tcp_check_going_down_and_up_drains_and_restores_dns_and_http(daemon: Daemon, listener: Listener) -> None:
    register(daemon, {"id": "redis-1", "name": "redis", "port": listener.port,
                      "checks": [{"tcp": f"127.0.0.1:{listener.port}", **CHECK_TIMING}]})
    wait_for(lambda: daemon.srv_ports("_redis._tcp.service.internal") == [listener.port], WITHIN, "redis answered")
    assert healthy_ids(daemon, "redis") == ["redis-1"]
    listener.down()
    wait_for(lambda: daemon.srv_ports("_redis._tcp.service.internal") == [], WITHIN, "redis drained from DNS")
    assert healthy_ids(daemon, "redis") == []
    assert statuses(daemon, "redis") == {"redis-1": "critical"}
    listener.up()
    wait_for(lambda: daemon.srv_ports("_redis._tcp.service.internal") == [listener.port], WITHIN, "redis back in DNS")
    assert healthy_ids(daemon, "redis") == ["redis-1"]
    events = daemon.get("/v1/events?kind=health")["events"]
    assert [e["detail"]["to"] for e in reversed(events)] == ["passing", "critical", "passing"]


def test_http_check_500_hang_redirect_and_down_drain_until_it_answers_200(daemon: Daemon, web: Web) -> None:
    # One server per failure, all failing at once: each drains within one deadline.
    servers = {500: web, 0: Web(), 302: Web()}
    names = {500: "web", 0: "hang", 302: "moved"}
    outputs = {500: "500", 0: "timed out", 302: "302"}
    try:
        for status, server in servers.items():
            register(daemon, {"id": f"{names[status]}-1", "name": names[status], "port": server.port, "protocol": "http",
                              "checks": [{"http": f"http://127.0.0.1:{server.port}/health", **CHECK_TIMING}]})
        for status, server in servers.items():
            wait_for(lambda: daemon.srv_ports(f"_{names[status]}._tcp") == [server.port], WITHIN, f"{names[status]} answered")
            server.status = status
        for status, server in servers.items():
            wait_for(lambda: daemon.srv_ports(f"_{names[status]}._tcp") == [], WITHIN, f"drained on {outputs[status]}")
            instance = daemon.get(f"/v1/services/{names[status]}?status=critical")[0]
            assert outputs[status] in instance["check_states"][0]["output"]
        for status, server in servers.items():
            server.status = 200
            server.release.set()
        for status, server in servers.items():
            wait_for(lambda: daemon.srv_ports(f"_{names[status]}._tcp") == [server.port], WITHIN, f"back after {outputs[status]}")
            assert healthy_ids(daemon, names[status]) == [f"{names[status]}-1"]
    finally:
        for server in (servers[0], servers[302]):
            server.close()
    web.release.clear()
    web.close()
    wait_for(lambda: healthy_ids(daemon, "web") == [], WITHIN, "web drained when down")
    web.up()
    wait_for(lambda: daemon.srv_ports("_web._tcp") == [web.port], WITHIN, "web back up")


def test_ttl_check_reported_over_http_and_expiring(daemon: Daemon) -> None:
    register(daemon, {"id": "worker-1", "name": "worker", "port": 7000, "checks": [{"ttl": f"{TTL:g}s", "id": "worker-ttl"}]})
    assert statuses(daemon, "worker") == {"worker-1": "critical"}
    reply = daemon.write("PUT", "/v1/checks/worker-ttl/pass", {"note": "all jobs done"})
    assert reply.status == 200 and reply.body["status"] == "passing", reply
    assert reply.body["check_states"][0]["output"] == "all jobs done"
    assert daemon.srv_ports("_worker._tcp") == [7000]
    reply = daemon.write("PUT", "/v1/checks/worker-ttl/warn?note=backlog")
    assert reply.status == 200 and reply.body["status"] == "warning", reply
    daemon.write("PUT", "/v1/checks/worker-ttl/pass")
    wait_for(lambda: statuses(daemon, "worker") == {"worker-1": "critical"}, TTL + SLACK, "TTL expired")
    assert daemon.srv_ports("_worker._tcp") == []
    assert daemon.write("PUT", "/v1/checks/nope/pass").status == 404
    assert daemon.write("PUT", "/v1/checks/worker-ttl/maybe").status == 404


def test_node_maintenance_over_http_and_cli(daemon: Daemon) -> None:
    register(daemon, {"id": "redis-1", "name": "redis", "port": 6379})
    assert daemon.srv_ports("_redis._tcp") == [6379]
    node = daemon.get("/v1/node")
    assert node["state"] == "online" and node["name"] == "testnode"
    assert set(node["figures"]) == {"cpu", "memory", "disk"}
    assert node["instances"]["passing"] == 1
    reply = daemon.write("PUT", "/v1/node/maintenance", {"enable": True, "reason": "kernel upgrade"})
    assert reply.status == 200 and reply.body["state"] == "maintenance" and reply.body["reason"] == "kernel upgrade"
    assert daemon.srv_ports("_redis._tcp") == []
    assert healthy_ids(daemon, "redis") == []
    refused = daemon.write("PUT", "/v1/node/maintenance", {"enable": True})
    assert refused.status == 409 and refused.body["error"]["code"] == "invalid_transition", refused
    assert daemon.write("PUT", "/v1/node/maintenance", {"reason": "no flag"}).status == 400
    off = subprocess.run(
        [sys.executable, "-m", "resolver.cli", "--http", daemon.http_url, "maint", "off"],
        capture_output=True, text=True, cwd=REPO, timeout=30,
    )
    assert off.returncode == 0, off.stderr
    assert daemon.get("/v1/node")["state"] == "online"
    assert daemon.srv_ports("_redis._tcp") == [6379]
    on = subprocess.run(
        [sys.executable, "-m", "resolver.cli", "--http", daemon.http_url, "maint", "on", "--reason", "disk swap"],
        capture_output=True, text=True, cwd=REPO, timeout=30,
    )
    assert on.returncode == 0, on.stderr
    assert daemon.get("/v1/node")["reason"] == "disk swap"
    assert daemon.srv_ports("_redis._tcp") == []
    kinds = [(e["detail"]["from"], e["detail"]["to"]) for e in reversed(daemon.get("/v1/events?kind=node")["events"])]
    assert kinds == [("online", "maintenance"), ("maintenance", "online"), ("online", "maintenance")]


def test_instance_maintenance_drains_one_instance(daemon: Daemon) -> None:
    register(daemon, {"id": "redis-1", "name": "redis", "port": 6379})
    register(daemon, {"id": "redis-2", "name": "redis", "port": 6380})
    assert daemon.srv_ports("_redis._tcp") == [6379, 6380]
    reply = daemon.write("PUT", "/v1/services/redis-1/maintenance", {"enable": True, "reason": "resharding"})
    assert reply.status == 200 and reply.body["status"] == "maintenance" and reply.body["maintenance_reason"] == "resharding"
    assert daemon.srv_ports("_redis._tcp") == [6380]
    assert healthy_ids(daemon, "redis") == ["redis-2"]
    assert daemon.write("PUT", "/v1/services/redis-1/maintenance", {"enable": False}).status == 200
    assert daemon.srv_ports("_redis._tcp") == [6379, 6380]
    assert daemon.write("PUT", "/v1/services/nope/maintenance", {"enable": True}).status == 404
