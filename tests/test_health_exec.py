"""Exec and systemd checks: real commands, their exit codes, their output and their timeout kill."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import psutil
import pytest

from conftest import eventually
from healthkit import SLACK, register, run_checks, wait_status
from registry.catalog import Catalog
from registry.health.outcome import OUTPUT_LIMIT
from registry.model import Status

# Long enough for a Python interpreter to start on a loaded machine; the test of the
# timeout itself sets a short one (KILL_AFTER) on a command that cannot finish.
INTERVAL, TIMEOUT = 1.0, 1.0
WITHIN = INTERVAL + TIMEOUT + SLACK
KILL_AFTER = 0.3


def exec_body(instance_id: str, port: int, argv: list[str], **check: object) -> dict[str, object]:
    spec: dict[str, object] = {"exec": argv, "interval": "1s", "timeout": f"{int(TIMEOUT * 1000)}ms"}
    spec.update(check)
    return {"id": instance_id, "name": "job", "port": port, "checks": [spec]}


def output_of(catalog: Catalog, instance_id: str) -> str:
    entry = catalog.current.entry(instance_id)
    assert entry is not None
    return entry.checks[0].output


def test_exit_codes_map_to_passing_warning_critical(tmp_path: Path, catalog: Catalog) -> None:
    code_file = tmp_path / "code"
    code_file.write_text("0")
    script = f"import sys; code = int(open({str(code_file)!r}).read()); print('exit', code); sys.exit(code)"

    async def checks_running() -> None:
        register(catalog, exec_body("job-1", 9000, [sys.executable, "-c", script]))
        await wait_status(catalog, "job-1", Status.PASSING, TIMEOUT + SLACK)
        assert output_of(catalog, "job-1") == "exit 0"
        for code, status in [("1", Status.WARNING), ("2", Status.CRITICAL), ("0", Status.PASSING), ("7", Status.CRITICAL)]:
            code_file.write_text(code)
            await wait_status(catalog, "job-1", status, WITHIN)
            assert output_of(catalog, "job-1") == f"exit {code}"

    run_checks(catalog, checks_running, exec_from_api=True)


def test_timeout_kills_the_whole_process_group(tmp_path: Path, catalog: Catalog) -> None:
    # The check forks a long sleep and waits on it: both must die at the timeout.
    pid_file, argv = forking(tmp_path, "wait")

    async def checks_running() -> int:
        register(catalog, exec_body("slow", 9001, argv, interval="10s", timeout=f"{int(KILL_AFTER * 1000)}ms"))
        await eventually(lambda: pid_file.exists() and pid_file.read_text().strip() != "", 2, "child started")
        await wait_status(catalog, "slow", Status.CRITICAL, KILL_AFTER + SLACK)
        await eventually(lambda: "timed out" in output_of(catalog, "slow"), KILL_AFTER + SLACK, "timeout output")
        return await killed(pid_file)

    run_checks(catalog, checks_running, exec_from_api=True)


def forking(tmp_path: Path, then: str) -> tuple[Path, list[str]]:
    """A command that leaves `sleep 60` running in the background, then does `then`; the file its pid goes to."""
    pid_file = tmp_path / "child.pid"
    return pid_file, ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; {then}"]


async def killed(pid_file: Path) -> int:
    """Wait for the child whose pid is in `pid_file` to be gone; its pid."""
    child = int(pid_file.read_text())
    await eventually(lambda: not _alive(child), 1.0, f"child {child} killed")
    return child


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_output_is_truncated_and_missing_program_is_critical(tmp_path: Path, catalog: Catalog) -> None:
    async def checks_running() -> None:
        register(catalog, exec_body("chatty", 9002, [sys.executable, "-c", "print('x' * 200000)"]))
        register(catalog, exec_body("missing", 9003, [str(tmp_path / "no-such-program")]))
        await wait_status(catalog, "chatty", Status.PASSING, TIMEOUT + SLACK)
        output = output_of(catalog, "chatty")
        assert len(output) <= OUTPUT_LIMIT and output.endswith("[truncated]")
        await eventually(lambda: "cannot run" in output_of(catalog, "missing"), TIMEOUT + SLACK, "missing program")
        await wait_status(catalog, "missing", Status.CRITICAL, 0)

    run_checks(catalog, checks_running, exec_from_api=True)


@pytest.mark.parametrize(("answer", "code", "status"), [("active", 0, Status.PASSING), ("inactive", 3, Status.CRITICAL)])
def test_systemd_asks_systemctl_is_active(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch, answer: str, code: int, status: Status
) -> None:
    # A stand-in systemctl first on PATH: the host running the tests has no systemd as PID 1.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(f'#!/bin/sh\n[ "$1" = is-active ] && [ "$2" = -- ] && [ "$3" = redis.service ] || exit 4\necho {answer}\nexit {code}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    async def checks_running() -> None:
        body = {"id": "redis-1", "name": "redis", "port": 6379, "checks": [{"systemd": "redis.service", "interval": "1s"}]}
        register(catalog, body)
        await eventually(lambda: answer in output_of(catalog, "redis-1"), TIMEOUT + SLACK, "systemctl answer")
        await wait_status(catalog, "redis-1", status, 0)
        assert output_of(catalog, "redis-1") == f"unit redis.service: {answer}"

    run_checks(catalog, checks_running)


def test_command_that_exits_is_judged_at_once_and_its_leftovers_killed(tmp_path: Path, catalog: Catalog) -> None:
    pid_file, argv = forking(tmp_path, "echo started; exit 1")

    async def checks_running() -> None:
        register(catalog, exec_body("forks", 9004, argv, interval="10s", timeout="5s"))
        await wait_status(catalog, "forks", Status.WARNING, 0.5)
        assert output_of(catalog, "forks") == "started"
        await killed(pid_file)

    run_checks(catalog, checks_running, exec_from_api=True)
