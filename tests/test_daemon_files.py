"""`pilotfish serve` against hostile and careless files: one file never hurts another, nor the daemon.

A real daemon subprocess, real files (FIFOs, device symlinks, alias bombs, bad tags)
in its services_dir and config, real DNS and HTTP clients.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, bound_socket, wait_for
from daemonkit import Daemon, DaemonFactory

BOMB = 'x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"x-{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
) + "services: []\n"
DEEP = "name: deep\nport: 1\nmeta: " + "[" * 1000 + "]" * 1000 + "\n"
MERGED = "x-base: &base {port: 8080, protocol: http}\nservices:\n  - <<: *base\n    name: web\n"


def file_errors(daemon: Daemon) -> dict[str, list[dict[str, Any]]]:
    return {Path(error["path"]).name: error["problems"] for error in daemon.status()["file_errors"]}


def failures_logged(daemon: Daemon) -> list[dict[str, Any]]:
    """Log lines that say the daemon itself failed, rather than refused a file."""
    return [line for line in daemon.logs() if line.get("level") in ("error", "critical") and "rejected" not in line["msg"]]


def test_serve_starts_reloads_and_keeps_watching_with_hostile_files(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    services = tmp_path / "d" / "services.d"
    services.mkdir(parents=True)
    os.mkfifo(services / "fifo.yaml")
    (services / "zero.yaml").symlink_to("/dev/zero")
    daemon = start_daemon(files={
        "web.yaml": MERGED, "bomb.yaml": BOMB, "deep.yaml": DEEP,
        "stamp.yaml": "name: stamp\nport: 2\nversion: !!timestamp x\n",
    })
    wait_for(lambda: daemon.srv_ports("_web._tcp.service.internal") == [8080], what="the merged file served")
    errors = file_errors(daemon)
    assert set(errors) == {"fifo.yaml", "zero.yaml", "bomb.yaml", "deep.yaml", "stamp.yaml"}
    assert errors["bomb.yaml"][0]["line"] == 5 and "expands past" in errors["bomb.yaml"][0]["message"]
    assert errors["stamp.yaml"][0]["line"] == 3 and errors["fifo.yaml"][0]["message"].startswith("is a FIFO")

    daemon.signal(signal.SIGHUP)
    wait_for(lambda: sum(line["msg"] == "services_dir loaded" for line in daemon.logs()) == 2, what="the SIGHUP rescan")
    assert daemon.proc.poll() is None and set(file_errors(daemon)) == set(errors)

    # While running: a bad file and a good one land in the same batch.
    (services / "a-bad.yaml").write_text("name: bad\nport: !!int abc\n")
    (services / "b-good.yaml").write_text("name: good\nport: 9090\n")
    wait_for(lambda: daemon.srv_ports("_good._tcp.service.internal") == [9090], what="the good file of the batch")
    assert "a-bad.yaml" in file_errors(daemon)
    assert daemon.srv_ports("_web._tcp.service.internal") == [8080]
    assert failures_logged(daemon) == []


@pytest.mark.parametrize(
    "text,line",
    [
        (BOMB.replace("services: []\n", "domain: internal\n"), 5),
        ("domain: !!timestamp x\n", 1),
        ("node: web\ndns: {ttl: !!int abc}\n", 2),
        ("node_health: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n", 1),
        ("limits: {file_size: 1TiB}\n", 1),
        ("cluster: {prefix: \"/p\\n\"}\n", 1),
    ],
    ids=["alias-bomb", "timestamp", "int", "deep", "file-size", "newline"],
)
def test_a_hostile_config_is_refused_cleanly(tmp_path: Path, text: str, line: int) -> None:
    config = tmp_path / "pilotfish.yaml"
    config.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "resolver.cli", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert done.returncode == 1
    assert "config refused" in done.stderr and f"{config}:{line}:" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


class Listener:
    """A TCP port that accepts connections: what a passing TCP check connects to."""

    def __init__(self) -> None:
        self.sock = bound_socket()
        self.port = self.sock.getsockname()[1]


def test_mv_keeps_a_checked_instance_in_dns_and_one_in_maintenance_drained(daemon: Daemon) -> None:
    web, db = Listener(), Listener()
    try:
        (daemon.services_dir / "a.yaml").write_text(
            "services:\n"
            f"  - {{name: web, port: {web.port}, checks: [{{tcp: '127.0.0.1:{web.port}'}}]}}\n"
            f"  - {{name: db, port: {db.port}, checks: [{{tcp: '127.0.0.1:{db.port}'}}]}}\n"
        )
        wait_for(lambda: daemon.srv_ports("_web._tcp.service.internal") == [web.port], what="web passing")
        wait_for(lambda: daemon.srv_ports("_db._tcp.service.internal") == [db.port], what="db passing")
        reply = daemon.write("PUT", f"/v1/services/db-{db.port}/maintenance", {"enable": True, "reason": "resharding"})
        assert reply.status == 200, reply
        assert daemon.srv_ports("_db._tcp.service.internal") == []

        answers: list[list[int]] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                answers.append(daemon.srv_ports("_web._tcp.service.internal"))

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            wait_for(lambda: len(answers) > 20, what="DNS answers before the move")
            (daemon.services_dir / "a.yaml").replace(daemon.services_dir / "b.yaml")
            wait_for(lambda: daemon.status()["files"] == [str(daemon.services_dir / "b.yaml")], what="the move")
            moved_at = len(answers)
            deadline = time.monotonic() + 1.0  # the old code lost the instance for ~0.6 s
            while time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(answers) > moved_at + 10
        finally:
            stop.set()
            poller.join(10)
        assert [ports for ports in answers if ports != [web.port]] == [], "web left DNS during the move"
        [drained] = daemon.get("/v1/services/db?status=any")
        assert (drained["status"], drained["maintenance_reason"]) == ("maintenance", "resharding")
        assert drained["source"] == f"file:{daemon.services_dir / 'b.yaml'}"
        assert daemon.srv_ports("_db._tcp.service.internal") == []
    finally:
        web.sock.close()
        db.sock.close()


def test_limits_apply_on_sighup_and_a_file_over_the_new_cap_keeps_its_instances(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(files={"web.yaml": "name: web\nport: 8080\n# " + "x" * 200 + "\n"})
    wait_for(lambda: daemon.srv_ports("_web._tcp.service.internal") == [8080], what="web")
    config = yaml.safe_load(daemon.config_path.read_text())
    config["limits"] = {"file_size": "128", "check_interval": "5s"}
    daemon.config_path.write_text(yaml.safe_dump(config))
    daemon.signal(signal.SIGHUP)
    errors = wait_for(lambda: file_errors(daemon).get("web.yaml"), what="the file over the new cap")
    assert errors[0]["message"].startswith("is ") and "over the 128 bytes limit (limits.file_size)" in errors[0]["message"]
    assert daemon.srv_ports("_web._tcp.service.internal") == [8080], "what it registered stays"
    reply = daemon.write("POST", "/v1/services", {"name": "api", "port": 9000, "checks": [{"tcp": "127.0.0.1:9000", "interval": "2s"}]})
    assert reply.status == 400 and "shorter than the 5s minimum" in reply.body["error"]["message"]
