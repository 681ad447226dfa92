"""Exec checks: run a command (argv, never a shell) and read its exit code.

Exit 0 is passing, 1 warning, anything else critical (the Nagios convention Consul
uses). The command runs in its own session so that at its timeout (the runner
cancels the probe) the whole process group is killed: a check script that forked
`sleep 600` must not leave it behind. Output (stdout and stderr together) is kept
to OUTPUT_LIMIT bytes; the rest is read and dropped so a chatty command cannot
block on a full pipe.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Sequence

from registry.health.outcome import OUTPUT_LIMIT, Outcome, truncate
from registry.model import CheckSpec, Status

_CHUNK = 65536


async def run_command(argv: Sequence[str]) -> tuple[int, str]:
    """Run `argv` to completion; returns (exit code, output). Cancelling kills its group."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    kept = bytearray()
    try:
        assert process.stdout is not None
        while chunk := await process.stdout.read(_CHUNK):
            if len(kept) <= OUTPUT_LIMIT:
                kept += chunk[: OUTPUT_LIMIT + 1 - len(kept)]
        code = await process.wait()
    finally:
        if process.returncode is None:
            _kill_group(process.pid)
            # Reap it, or it stays a zombie; SIGKILL makes this quick.
            await asyncio.shield(process.wait())
    return code, truncate(kept.decode("utf-8", "replace").strip())


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
        return Outcome(Status.CRITICAL, f"cannot run {spec.argv[0]}: {exc.strerror or exc}")
    return Outcome(status_for_exit(code), output or f"exit code {code}")
