"""`pilotfish watch` as a person runs it: a process printing changes, stopped by Ctrl-C.

The watch runs as a subprocess (SIGINT is what Ctrl-C sends to it) against a real
daemon; its output is read line by line in a thread so that every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Iterator

import pytest

from clientkit import registration, restart_on_same_ports
from conftest import REPO
from daemonkit import Daemon, DaemonFactory
from resolver.cli import main
from resolver.cli_common import EXIT_UNREACHABLE

REDIS = "name: redis\nport: 6379\ntags: [primary]\n"


class Watcher:
    """A `pilotfish watch ...` process and its stdout and stderr, line by line."""

    def __init__(self, daemon: Daemon, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "resolver.cli", "watch", "--http", daemon.http_url, *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = self._follow(self.proc.stdout)
        self.err = self._follow(self.proc.stderr)
        self.stderr_seen: list[str] = []

    @staticmethod
    def _follow(stream: IO[str]) -> queue.Queue[str]:
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            for line in stream:
                lines.put(line.rstrip("\n"))

        threading.Thread(target=pump, daemon=True).start()
        return lines

    def line(self, timeout: float = 10.0) -> str:
        try:
            return self.out.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout}s; stderr: {self.stderr_lines()}") from None

    def err_line(self, containing: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.err.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.stderr_seen.append(line)
            if containing in line:
                return line
        raise AssertionError(f"no {containing!r} on stderr within {timeout}s: {self.stderr_seen}")

    def stderr_lines(self) -> list[str]:
        while not self.err.empty():
            self.stderr_seen.append(self.err.get())
        return self.stderr_seen

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    started: list[Watcher] = []
    yield started
    for watcher in started:
        watcher.close()


def test_watch_prints_changes_survives_a_restart_and_stops_on_ctrl_c(
    start_daemon: DaemonFactory, watchers: list[Watcher]
) -> None:
    daemon = start_daemon(files={"redis.yaml": REDIS})
    watcher = Watcher(daemon, "--wait", "5")
    watchers.append(watcher)
    assert watcher.line().split(" ", 1)[1].startswith("watching every service at index ")
    assert watcher.line().split(" ", 1)[1] == "+ redis redis-6379@testnode redis://127.0.0.1:6379 passing primary"
    registration(daemon.services_dir / "web.yaml", "name: web\nport: 9100\n")
    assert watcher.line().split(" ", 1)[1] == "+ web web-9100@testnode tcp://127.0.0.1:9100 passing -"

    assert daemon.stop() == 0
    assert "retrying in" in watcher.err_line(f"no answer from {daemon.http_url}")
    daemon = restart_on_same_ports(start_daemon, daemon)
    watcher.err_line("reconnected")
    (daemon.services_dir / "web.yaml").unlink()
    assert watcher.line().split(" ", 1)[1] == "- web web-9100@testnode tcp://127.0.0.1:9100"

    assert watcher.interrupt() == 0
    assert not any("Traceback" in line for line in watcher.stderr_lines()), watcher.stderr_lines()


def test_watch_json_one_object_a_line(start_daemon: DaemonFactory, watchers: list[Watcher]) -> None:
    daemon = start_daemon(files={"redis.yaml": REDIS})
    watcher = Watcher(daemon, "redis", "--json")
    watchers.append(watcher)
    first = json.loads(watcher.line())
    assert (first["event"], first["name"], first["instances"]) == ("watching", "redis", 1)
    added = json.loads(watcher.line())
    assert added["event"] == "added" and added["instance"]["id"] == "redis-6379" and added["index"] == first["index"]
    registration(daemon.services_dir / "redis.yaml", REDIS.replace("primary", "replica"))
    changed = json.loads(watcher.line())
    assert changed["event"] == "changed" and changed["changed"] == {"tags": [["primary"], ["replica"]]}
    assert changed["index"] > first["index"] and changed["instance"]["tags"] == ["replica"]
    assert watcher.interrupt() == 0


def test_watch_into_a_closed_pipe_ends_quietly(start_daemon: DaemonFactory) -> None:
    # `pilotfish watch | head -2`: once the reader is gone, the next change ends the watch, exit 0.
    # A bare pipe read here, not Watcher: closing a stream a thread is reading would block.
    daemon = start_daemon(files={"redis.yaml": REDIS})
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "resolver.cli", "watch", "--http", daemon.http_url, "redis"],
        stdin=subprocess.DEVNULL, stdout=write_end, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
    )
    os.close(write_end)
    try:
        seen = b""
        deadline = time.monotonic() + 10
        while seen.count(b"\n") < 2:
            assert time.monotonic() < deadline, seen
            if select.select([read_end], [], [], 0.1)[0]:
                seen += os.read(read_end, 4096)
        os.close(read_end)
        registration(daemon.services_dir / "redis.yaml", REDIS.replace("primary", "replica"))
        assert proc.wait(10) == 0
        assert proc.stderr is not None and proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_watch_without_a_daemon_is_exit_3(capsys: pytest.CaptureFixture[str], daemon: Daemon) -> None:
    url = daemon.http_url
    assert daemon.stop() == 0
    assert main(["watch", "--http", url]) == EXIT_UNREACHABLE
    assert "no pilotfish daemon" in capsys.readouterr().err
