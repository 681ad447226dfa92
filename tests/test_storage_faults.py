"""Storage fails loudly and specifically, end to end: the real daemon on a database
that is damaged, full or read-only.

Each fault is made for real: garbage over the header or over a page of the event
log, SQLite's page cap (`limits.database_size`) or a small tmpfs for a full disk,
and a file the daemon cannot open for writing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from daemonkit import Daemon, DaemonFactory, launch
from test_store import damage_events


def start_refused(daemon: Daemon) -> tuple[int, list[str]]:
    """Start the stopped `daemon` again, expecting it to refuse: (exit code, new log lines)."""
    offset = daemon.log_path.stat().st_size
    proc = launch(daemon.config_path, daemon.log_path)
    try:
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = daemon.log_path.read_bytes()[offset:].decode().splitlines()
    return code, lines


def one_refusal(lines: list[str], database: Path) -> dict[str, Any]:
    assert len(lines) == 1, lines
    line = json.loads(lines[0])
    assert line["level"] == "error" and line["msg"] == "cannot start"
    assert line["file"] == str(database) and "Traceback" not in lines[0] and "exc" not in line
    return dict(line)


def test_a_damaged_database_header_is_one_json_line_and_exit_1(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    assert daemon.stop() == 0
    database = daemon.state_dir / "pilotfish.db"
    with database.open("r+b") as db:
        db.write(b"\x00garbage where SQLite keeps its header\x00")
    code, lines = start_refused(daemon)
    assert code == 1
    line = one_refusal(lines, database)
    assert line["fault"] == "storage_corrupt"
    # How to recover, and what that costs.
    assert "move" in line["error"] and "API registrations" in line["error"] and "event log" in line["error"]


def test_a_damaged_event_log_page_is_refused_at_start(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    assert daemon.stop() == 0
    database = daemon.state_dir / "pilotfish.db"
    damage_events(database)
    code, lines = start_refused(daemon)
    assert code == 1
    assert one_refusal(lines, database)["fault"] == "storage_corrupt"


def register_until_refused(daemon: Daemon) -> tuple[list[str], dict[str, Any], str]:
    """Register instances (each of a service of its own) until the daemon refuses one:
    (names registered, the refusal's error object, the refused name)."""
    registered: list[str] = []
    for n in range(2000):
        name = f"svc{n}"
        reply = daemon.write("POST", "/v1/services", {"name": name, "port": 1000 + n, "meta": {"pad": "x" * 3000}})
        if reply.status != 201:
            assert reply.status == 507, reply
            return registered, reply.body["error"], name
        registered.append(name)
    raise AssertionError("the database never filled up")


def assert_served_exactly(daemon: Daemon, names: list[str], refused: str) -> None:
    served = daemon.get("/v1/services")
    assert sorted(served) == sorted(names)
    assert daemon.request("GET", f"/v1/services/{refused}").status == 404
    assert not daemon.srv_ports(f"_{refused}._tcp")


def test_a_full_database_answers_507_and_keeps_nothing_half_written(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(config={"limits": {"database_size": "256KiB"}})
    registered, error, refused = register_until_refused(daemon)
    assert len(registered) >= 5
    assert error["code"] == "storage_full" and "limits.database_size" in error["message"]
    assert error["file"] == str(daemon.state_dir / "pilotfish.db")
    # The catalog, the snapshot and SQLite agree: the refused registration is nowhere,
    # now and after a restart; lookups and the other writes' outcomes stand.
    assert_served_exactly(daemon, registered, refused)
    assert daemon.get("/healthz")["status"] == "ok"
    assert daemon.stop() == 0
    config = yaml.safe_load(daemon.config_path.read_text())
    config["limits"]["database_size"] = "64MiB"
    daemon.config_path.write_text(yaml.safe_dump(config))
    again = start_daemon.restart(daemon)
    assert_served_exactly(again, registered, refused)
    assert again.write("POST", "/v1/services", {"name": refused, "port": 9}).status == 201


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a disk that really fills up. Mounting needs root."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a small filesystem, and mounting one needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        # Lazily: the daemon under test may still be exiting.
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_answers_507_and_keeps_nothing_half_written(
    start_daemon: DaemonFactory, small_disk: Path
) -> None:
    daemon = start_daemon(config={"state_dir": str(small_disk)})
    registered, error, refused = register_until_refused(daemon)
    assert len(registered) >= 5
    assert error["code"] == "storage_full" and "full" in error["message"]
    assert_served_exactly(daemon, registered, refused)
    assert daemon.get("/healthz")["status"] == "ok"


def test_a_read_only_database_serves_lookups_and_answers_503(
    start_daemon: DaemonFactory, make_read_only: Callable[[Path], None]
) -> None:
    daemon = start_daemon()
    assert daemon.write("POST", "/v1/services", {"name": "web", "port": 8080}).status == 201
    assert daemon.stop() == 0
    database = daemon.state_dir / "pilotfish.db"
    make_read_only(database)
    again = start_daemon.restart(daemon)
    assert [i["id"] for i in again.get("/v1/services/web")] == ["web-8080"]
    assert again.srv_ports("_web._tcp") == [8080]
    reply = again.write("POST", "/v1/services", {"name": "api", "port": 9090})
    assert reply.status == 503 and reply.body["error"]["code"] == "storage_read_only"
    assert again.request("GET", "/v1/services/api").status == 404
    warnings = [line for line in again.logs() if line.get("msg", "").startswith("database is read-only")]
    assert len(warnings) == 1 and warnings[0]["file"] == str(database)


def test_a_state_directory_that_cannot_be_written_is_one_json_line_and_exit_1(
    start_daemon: DaemonFactory, make_read_only: Callable[[Path], None]
) -> None:
    # SQLite must create pilotfish.db-wal and -shm beside the file: without them it
    # cannot even read a WAL database, so this is refused at start, not served.
    daemon = start_daemon()
    assert daemon.stop() == 0
    make_read_only(daemon.state_dir)
    code, lines = start_refused(daemon)
    assert code == 1
    line = one_refusal(lines, daemon.state_dir / "pilotfish.db")
    assert line["fault"] in ("storage_read_only", "storage_unavailable")
    assert f"{daemon.state_dir} writable" in line["error"] or f"can write {daemon.state_dir}" in line["error"]
