"""Exec checks whose commands detach children: the real daemon kills and reaps them all.

A detached child (`setsid`, a double fork into a new session) leaves the process
group the exec probe kills; the daemon, a child subreaper, inherits it and must
kill and reap it. Every leftover is recognised by a `sleep` of a duration no other
process uses, wherever it was re-parented, so the test fails the same way on a
daemon that lets them go to PID 1.
"""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

import psutil
import pytest

from conftest import wait_for
from daemonkit import DaemonFactory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child subreapers are Linux-only")


def leftovers(marker: str) -> list[psutil.Process]:
    """Live processes running `sleep <marker>`, anywhere on the host."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["cmdline"] == ["sleep", marker] and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def zombies_under(pid: int) -> list[psutil.Process]:
    zombies = []
    for process in psutil.Process(pid).children(recursive=True):
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                zombies.append(process)
        except psutil.NoSuchProcess:
            pass  # reaped between the listing and the look: exactly what the test waits for
    return zombies


def test_children_an_exec_check_detaches_are_killed_and_reaped(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    marker = f"{random.randint(600, 900)}.{random.randint(0, 99999):05d}"
    runs = tmp_path / "runs"
    # Each run: a `setsid` child and a double fork into a new session, then exit 0.
    script = f"echo run >> {runs}; setsid sleep {marker} & (setsid sh -c 'sleep {marker} &' &); exit 0"
    check = f"name: job\nport: 9000\nchecks:\n  - exec: [sh, -c, {script!r}]\n    interval: 1s\n    timeout: 500ms\n"
    daemon = start_daemon(files={"job.yaml": check})
    try:
        most = 0
        for count in range(1, 5):
            wait_for(lambda: runs.exists() and len(runs.read_text().splitlines()) >= count, 5, f"run {count}")
            most = max(most, len(leftovers(marker)))
        # Seen at any moment, at most the latest runs' are still waiting for the reaper (two a
        # run; four leaves room for a slow machine); left alone they add up to eight.
        assert most <= 4, f"{most} detached sleeps alive after 4 runs"
        (daemon.services_dir / "job.yaml").unlink()
        wait_for(lambda: daemon.request("GET", "/v1/services/job?status=any").status == 404, 5, "the check removed")
        wait_for(lambda: not leftovers(marker), 5, "every detached sleep killed")
        wait_for(lambda: not zombies_under(daemon.proc.pid), 5, "every one reaped")
        assert daemon.proc.poll() is None
        assert daemon.stop() == 0
    finally:
        for process in leftovers(marker):
            os.kill(process.pid, signal.SIGKILL)
