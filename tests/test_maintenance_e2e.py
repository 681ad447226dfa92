"""Maintenance through the real daemon, its DNS and the CLI, in real time set short (seconds)."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any, Iterator

import pytest
import yaml

from conftest import REPO, bound_socket, holds_for, wait_for
from daemonkit import Daemon, DaemonFactory


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "resolver.cli", "--http", daemon.http_url, *args],
                          capture_output=True, text=True, cwd=REPO, timeout=30)


def state(daemon: Daemon) -> str:
    return str(daemon.get("/v1/node")["state"])


def moves(daemon: Daemon) -> list[tuple[str, str, str]]:
    events = daemon.get("/v1/events?kind=node")["events"]
    return [(e["detail"]["from"], e["detail"]["to"], e["detail"]["trigger"]) for e in reversed(events)]


@pytest.fixture
def db_port() -> Iterator[int]:
    """A listening TCP port the db instance's check connects to: the service, up all along."""
    with bound_socket() as sock:
        yield int(sock.getsockname()[1])


def db_file(port: int) -> dict[str, str]:
    return {"db.yaml": f"name: db\nport: {port}\nchecks:\n  - tcp: 127.0.0.1:{port}\n    interval: 1s\n    rise: 2\n"}


def test_a_planned_window_drains_ahead_goes_offline_ends_by_itself_and_recovers(
    start_daemon: DaemonFactory, db_port: int
) -> None:
    daemon = start_daemon(files=db_file(db_port))
    wait_for(lambda: daemon.srv_ports("_db._tcp") == [db_port], 10, "db in DNS")
    planned = cli(daemon, "maint", "plan", "--start", "+3s", "--end", "+5s", "--drain-ahead", "1500ms",
                  "--reason", "kernel upgrade")
    assert planned.returncode == 0, planned.stderr
    assert "node testnode: online" in planned.stdout and "planned" in planned.stdout
    assert daemon.srv_ports("_db._tcp") == [db_port]  # announced, still served
    [window] = daemon.get("/v1/node")["windows"]
    assert window["phase"] == "planned" and window["reason"] == "kernel upgrade"
    wait_for(lambda: state(daemon) == "draining", 5, "draining ahead")
    assert daemon.srv_ports("_db._tcp") == []
    assert daemon.get("/v1/services/db") == []
    wait_for(lambda: state(daemon) == "offline", 5, "offline at the start")
    wait_for(lambda: state(daemon) in ("recovering", "online"), 5, "ended by itself")
    wait_for(lambda: state(daemon) == "online", 10, "recovered")
    assert daemon.srv_ports("_db._tcp") == [db_port]
    assert moves(daemon) == [
        ("online", "draining", "schedule"), ("draining", "offline", "schedule"),
        ("offline", "recovering", "schedule"), ("recovering", "online", "health"),
    ]
    assert daemon.get("/v1/maintenance")["windows"] == []


def test_a_draining_node_is_offline_after_its_timeout(start_daemon: DaemonFactory, db_port: int) -> None:
    daemon = start_daemon(files=db_file(db_port))
    wait_for(lambda: daemon.srv_ports("_db._tcp") == [db_port], 10, "db in DNS")
    drained = cli(daemon, "maint", "drain", "--timeout", "1s", "--reason", "rack move")
    assert drained.returncode == 0, drained.stderr
    assert drained.stdout.startswith("node testnode: draining (rack move)")
    assert daemon.srv_ports("_db._tcp") == []  # at once
    wait_for(lambda: state(daemon) == "offline", 5, "offline")
    assert moves(daemon) == [("online", "draining", "api"), ("draining", "offline", "timeout")]
    assert cli(daemon, "maint", "done").returncode == 1  # nothing drains any more
    assert cli(daemon, "maint", "off").returncode == 0
    wait_for(lambda: daemon.srv_ports("_db._tcp") == [db_port], 10, "back after its checks passed")


def test_a_cancelled_window_changes_nothing(start_daemon: DaemonFactory, db_port: int) -> None:
    daemon = start_daemon(files=db_file(db_port))
    wait_for(lambda: daemon.srv_ports("_db._tcp") == [db_port], 10, "db in DNS")
    planned = daemon.write("PUT", "/v1/node/maintenance", {"enable": True, "kind": "planned", "start": "+2s",
                                                           "end": "+3s", "drain_ahead": "1s"})
    assert planned.status == 200, planned
    window_id = planned.body["window"]["id"]
    assert daemon.write("DELETE", f"/v1/maintenance/{window_id}").status == 200
    # Through every time the window had, and past it.
    holds_for(lambda: daemon.srv_ports("_db._tcp") == [db_port] and state(daemon) == "online", 3.5,
              "a cancelled window must not drain the node")
    assert moves(daemon) == []
    assert daemon.write("DELETE", f"/v1/maintenance/{window_id}").status == 404


def test_a_restart_mid_window_keeps_it(start_daemon: DaemonFactory, db_port: int) -> None:
    daemon = start_daemon(files=db_file(db_port))
    wait_for(lambda: daemon.srv_ports("_db._tcp") == [db_port], 10, "db in DNS")
    reply = daemon.write("PUT", "/v1/node/maintenance", {"enable": True, "kind": "planned", "start": "+1s",
                                                         "end": "+8s", "drain_ahead": "0s", "reason": "firmware"})
    assert reply.status == 200, reply
    wait_for(lambda: state(daemon) == "offline", 5, "offline")
    assert daemon.stop() == 0
    restarted = start_daemon.restart(daemon)
    # The first answer after the restart already leaves the node out.
    assert restarted.srv_ports("_db._tcp") == []
    node = restarted.get("/v1/node")
    assert (node["state"], node["reason"], node["maintenance"]["window"]) == ("offline", "firmware", reply.body["window"]["id"])
    wait_for(lambda: state(restarted) == "online", 15, "ended by itself after the restart")
    assert restarted.srv_ports("_db._tcp") == [db_port]


def test_an_overlapping_window_is_refused(daemon: Daemon) -> None:
    assert cli(daemon, "maint", "plan", "--start", "+1h", "--end", "+2h").returncode == 0
    refused = cli(daemon, "maint", "plan", "--start", "+90m", "--end", "+3h")
    assert refused.returncode == 1 and "holds node testnode" in refused.stderr
    reply = daemon.write("PUT", "/v1/node/maintenance", {"enable": True, "kind": "planned", "start": "+90m", "end": "+3h"})
    assert reply.status == 409 and reply.body["error"]["code"] == "window_overlap"
    listed = cli(daemon, "maint", "ls")
    assert listed.returncode == 0 and listed.stdout.splitlines()[0].split()[:4] == ["ID", "TARGET", "KIND", "PHASE"]
    window_id = listed.stdout.splitlines()[1].split()[0]
    assert cli(daemon, "maint", "change", window_id, "--end", "+1h30m").returncode == 0
    assert cli(daemon, "maint", "plan", "--start", "+100m", "--end", "+3h", "--drain-ahead", "5m").returncode == 0
    assert len(daemon.get("/v1/maintenance")["windows"]) == 2
    cancelled = cli(daemon, "maint", "cancel", window_id)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"cancelled window {window_id}"
    assert cli(daemon, "maint", "cancel", window_id).returncode == 1
    assert cli(daemon, "maint", "cancel").returncode == 2  # which one?
    assert len(daemon.get("/v1/maintenance")["windows"]) == 1


def test_retention_applies_on_sighup(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    for n in range(150):
        assert daemon.write("POST", "/v1/services", {"name": "web", "id": f"web-{n}", "port": 9000 + n}).status == 201
    assert daemon.get("/v1/events?kind=prune")["events"] == []
    config: dict[str, Any] = yaml.safe_load(daemon.config_path.read_text())
    config["events"] = {"max_rows": 100}
    daemon.config_path.write_text(yaml.safe_dump(config))
    daemon.signal(signal.SIGHUP)
    [pruned] = wait_for(lambda: daemon.get("/v1/events?kind=prune")["events"], 10, "pruned after the reload")
    assert pruned["detail"]["max_rows"] == 100 and pruned["detail"]["deleted"] >= 50
    assert len(daemon.get("/v1/events?limit=1000")["events"]) <= 101
