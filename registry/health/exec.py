"""Exec checks: run a command (argv, never a shell) and read its exit code.

Exit 0 is passing, 1 warning, anything else critical (the Nagios convention Consul
uses). The command runs in its own session so that at its timeout (the runner
cancels the probe), and once it has exited, the whole process group is killed: a
check script that forked `sleep 600` must not leave it behind. A child that left
the group (`setsid`, a daemon's double fork) is the orphan reaper's
(registry/health/orphans.py), which is why every process the daemon starts goes
through `run_command` and is listed in `CHILDREN` until it is reaped. Output
(stdout and stderr together) is kept to OUTPUT_LIMIT bytes; the rest is read and
dropped so a chatty command cannot block on a full pipe.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Sequence

from registry.health.outcome import OUTPUT_LIMIT, Outcome, truncate
from registry.model import CheckSpec, Status

_CHUNK = 65536
_DRAIN_GRACE = 0.05


class Children:
    """The processes `run_command` started and asyncio has not yet reaped.

    The orphan reaper kills every other child of the daemon, so it must know
    these, and also when a spawn is under way (its pid not known yet): `started`
    counts spawns begun, so a listing taken while one began is thrown away.
    """

    def __init__(self) -> None:
        self.pids: set[int] = set()
        self.spawning = 0
        self.started = 0


CHILDREN = Children()


async def run_command(argv: Sequence[str]) -> tuple[int, str]:
    """Run `argv` to completion; returns (exit code, output). Cancelling kills its group.

    The check is over when the command exits, not when its output closes: a
    leftover child holding the pipe (`daemon &`) neither delays the result nor
    outlives the check, as the group is killed once the command has exited. The
    output pipe is ours rather than asyncio's because Python 3.11's
    `Process.wait()` also waits for the subprocess pipes to close.
    """
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    CHILDREN.spawning += 1
    CHILDREN.started += 1
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=write_fd, stderr=write_fd, start_new_session=True
        )
        CHILDREN.pids.add(process.pid)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        CHILDREN.spawning -= 1
        os.close(write_fd)
    pipe = os.fdopen(read_fd, "rb", 0)
    kept = bytearray()
    reader: asyncio.Future[None] | None = None
    transport: asyncio.BaseTransport | None = None
    try:
        stream = asyncio.StreamReader(loop=loop)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream, loop=loop), pipe)
        reader = asyncio.ensure_future(_read_into(stream, kept))
        code = await process.wait()
        # Output written just before exit is still in the pipe: give it a moment.
        await asyncio.wait([reader], timeout=_DRAIN_GRACE)
    finally:
        if reader is not None:
            reader.cancel()
        _kill_group(process.pid)
        try:
            await _reap(process)
        finally:
            CHILDREN.pids.discard(process.pid)
        if reader is not None:
            await asyncio.gather(reader, return_exceptions=True)
        if transport is not None:
            transport.close()
        else:
            pipe.close()
    return code, truncate(kept.decode("utf-8", "replace").strip())


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Wait for a killed process to be reaped, even through a second cancellation.

    Leaving it unreaped would leave a zombie and an open transport; after SIGKILL
    this takes a moment, and a pending cancellation is passed on afterwards.
    """
    cancelled = False
    while process.returncode is None:
        try:
            await asyncio.shield(process.wait())
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


async def _read_into(stream: asyncio.StreamReader, kept: bytearray) -> None:
    """Keep the first OUTPUT_LIMIT bytes; read and drop the rest so the writer never blocks."""
    while chunk := await stream.read(_CHUNK):
        if len(kept) <= OUTPUT_LIMIT:
            kept += chunk[: OUTPUT_LIMIT + 1 - len(kept)]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def status_for_exit(code: int) -> Status:
    if code == 0:
        return Status.PASSING
    if code == 1:
        return Status.WARNING
    return Status.CRITICAL


async def probe_exec(spec: CheckSpec) -> Outcome:
    try:
        code, output = await run_command(spec.argv)
    except OSError as exc:
        # A missing program and a daemon out of descriptors (EMFILE at os.pipe) alike:
        # the check could not run, which is critical, and the errno says why.
        return Outcome(Status.CRITICAL, f"cannot run {spec.argv[0]}: {exc.strerror or exc}")
    return Outcome(status_for_exit(code), output or f"exit code {code}")
