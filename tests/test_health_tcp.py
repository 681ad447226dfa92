"""TCP checks against a real listener that goes down and comes back; rise and fall counted exactly."""

from __future__ import annotations

import asyncio

from conftest import eventually, run, started, status_of
from healthkit import SLACK, TcpService, output_of, register, wait_status
from registry.catalog import Catalog
from registry.health.runner import HealthRunner
from registry.model import Status

INTERVAL, TIMEOUT = 1.0, 0.2


def tcp_body(instance_id: str, port: int, **check: object) -> dict[str, object]:
    spec: dict[str, object] = {"tcp": f"127.0.0.1:{port}", "interval": f"{int(INTERVAL * 1000)}ms", "timeout": f"{int(TIMEOUT * 1000)}ms"}
    spec.update(check)
    return {"id": instance_id, "name": "redis", "port": port, "checks": [spec]}


def test_tcp_down_and_up_within_interval_plus_timeout(catalog: Catalog) -> None:
    async def scenario() -> None:
        service = await TcpService().up()
        async with started(HealthRunner(catalog)):
            try:
                register(catalog, tcp_body("redis-1", service.port))
                # First run is immediate on registration.
                await wait_status(catalog, "redis-1", Status.PASSING, TIMEOUT + SLACK)
                assert catalog.current.answerable("redis")
                await service.down()
                await wait_status(catalog, "redis-1", Status.CRITICAL, INTERVAL + TIMEOUT + SLACK)
                assert not catalog.current.answerable("redis")
                entry = catalog.current.entry("redis-1")
                assert entry is not None and "TCP connect" in entry.checks[0].output
                await service.up()
                await wait_status(catalog, "redis-1", Status.PASSING, INTERVAL + TIMEOUT + SLACK)
            finally:
                await service.down()
        events = [e for e in catalog.store.events(kind="health") if e.subject == "redis-1"]
        assert [e.detail["to"] for e in reversed(events)] == ["passing", "critical", "passing"]
        assert "success" in events[0].detail["output"]

    run(scenario())


def test_unreachable_port_starts_critical(catalog: Catalog) -> None:
    async def scenario() -> None:
        service = await TcpService().up()
        port = service.port
        await service.down()
        async with started(HealthRunner(catalog)):
            register(catalog, tcp_body("gone", port))
            await eventually(lambda: "refused" in output_of(catalog, "gone").lower(), TIMEOUT + SLACK)
            assert status_of(catalog, "gone") is Status.CRITICAL

    run(scenario())


def test_rise_and_fall_are_counted_exactly(catalog: Catalog) -> None:
    """fall=3: critical on exactly the 3rd failed run; rise=2: passing on exactly the 2nd good run."""

    async def scenario() -> None:
        service = await TcpService().up()
        runs: list[tuple[Status, str]] = []

        def observe(check_id: str, started: float, took: float) -> None:
            entry = catalog.entry("redis-1")
            assert entry is not None
            runs.append((entry.status, entry.checks[0].output))

        async with started(HealthRunner(catalog, observer=observe)):
            try:
                register(catalog, tcp_body("redis-1", service.port, rise=2, fall=3))
                await wait_status(catalog, "redis-1", Status.PASSING, TIMEOUT + SLACK)
                await service.down()
                await wait_status(catalog, "redis-1", Status.CRITICAL, 3 * (INTERVAL + TIMEOUT) + SLACK)
                await service.up()
                await wait_status(catalog, "redis-1", Status.PASSING, 2 * (INTERVAL + TIMEOUT) + SLACK)
            finally:
                await service.down()
        failed = next(i for i, (_, output) in enumerate(runs) if "refused" in output)
        assert [status for status, _ in runs[failed : failed + 3]] == [Status.PASSING, Status.PASSING, Status.CRITICAL]
        assert runs[failed][1].endswith("(1/3 failures before critical)")
        assert runs[failed + 1][1].endswith("(2/3 failures before critical)")
        back = next(i for i, (_, output) in enumerate(runs) if i > failed and "success" in output)
        assert back == failed + 3
        assert [status for status, _ in runs[back : back + 2]] == [Status.CRITICAL, Status.PASSING]
        assert runs[back][1].endswith("(1/2 passes before passing)")
        assert runs[-1] == (Status.PASSING, runs[back + 1][1])

    run(scenario())


def test_removed_instance_stops_being_checked(catalog: Catalog) -> None:
    async def scenario() -> None:
        service = await TcpService().up()
        runs: list[str] = []
        async with started(HealthRunner(catalog, observer=lambda check_id, started, took: runs.append(check_id))) as runner:
            try:
                register(catalog, tcp_body("redis-1", service.port))
                await eventually(lambda: len(runs) >= 1, TIMEOUT + SLACK)
                assert runner.scheduled() == 1
                catalog.deregister("redis-1")
                assert runner.scheduled() == 0
                seen = len(runs)
                await asyncio.sleep(INTERVAL + TIMEOUT)  # nothing may happen: a bounded wait for an absence
                assert len(runs) == seen
            finally:
                await service.down()
        assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    run(scenario())
