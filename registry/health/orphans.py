"""The orphan reaper: kill and reap the processes exec checks leave behind.

A check command that detaches a child (`setsid sleep 600 &`, a daemon's double
fork) moves it out of the process group that the exec probe kills, and once the
command exits the child is re-parented. With the daemon a child subreaper
(`become_subreaper`, Linux only) it is re-parented to the daemon instead of to
PID 1, so the reaper can see it: every child of the daemon that `run_command`
did not start (`CHILDREN`) is such an orphan, and it is killed and then reaped.

It must never steal an exit status asyncio (or uvloop) is waiting for: it only
ever waits for a pid of its own choosing, never `waitpid(-1)`, and a listing of
children taken while a spawn was under way (its pid not yet in `CHILDREN`) is
thrown away. Only the daemon enables it: in any other process (a test run) the
other children are not orphans.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import time

import psutil

from registry.background import cancel_and_wait
from registry.health.exec import CHILDREN

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
# A sweep runs soon after an exec check (nudged), and at least this often to reap
# what the previous one killed and whatever it missed.
SWEEP_EVERY = 5.0
# Two sweeps are at least this far apart, however often checks nudge.
SWEEP_GAP = 0.2
# Killing leftovers is worth a line in the log, but a check that leaves one behind
# on every run must not write one a run: at most one line this often, with a count.
LOG_EVERY = 60.0


def become_subreaper() -> bool:
    """Make orphaned descendants this process's children (Linux prctl); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _child_pids() -> list[int]:
    """Pids of this process's children (a /proc walk, run in a thread)."""
    return [child.pid for child in psutil.Process().children()]


class OrphanReaper:
    """Kills and reaps children the daemon did not start; one task, started and stopped by the runner."""

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._killing: set[int] = set()
        self.killed = 0
        self._unlogged = 0
        self._logged_at = -LOG_EVERY
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pilotfish-orphan-reaper")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.sweep()

    def nudge(self) -> None:
        """An exec check finished: whatever it detached is now an orphan to look for."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), SWEEP_EVERY)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                if await self.sweep():
                    self._wake.set()  # killed ones to reap, or a listing thrown away: look again
                self._failing = False
            except Exception:  # out of descriptors, a /proc oddity: retried, never the end of reaping
                if not self._failing:
                    log.exception("looking for orphaned check processes failed; retrying")
                    self._failing = True
            await asyncio.sleep(SWEEP_GAP)

    async def sweep(self) -> bool:
        """Kill every child not started by `run_command` and reap those that died; True if any remain."""
        started = CHILDREN.started
        listed = await asyncio.to_thread(_child_pids)
        if CHILDREN.spawning or CHILDREN.started != started:
            return True  # a new child may be in the listing before its pid is in CHILDREN
        remaining = False
        for pid in listed:
            if pid in CHILDREN.pids:
                continue
            if pid not in self._killing:
                self._kill(pid)
            try:
                reaped, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                reaped = pid  # not our child any more: nothing left to wait for
            if reaped == 0:
                remaining = True
            else:
                self._killing.discard(pid)
        self._log_kills()
        return remaining

    def _kill(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self._killing.add(pid)
        self.killed += 1
        self._unlogged += 1

    def _log_kills(self) -> None:
        now = time.monotonic()
        if self._unlogged and now - self._logged_at >= LOG_EVERY:
            log.warning(
                "killed processes that exec checks left running (detached children)",
                extra={"killed": self._unlogged, "killed_total": self.killed},
            )
            self._unlogged = 0
            self._logged_at = now
