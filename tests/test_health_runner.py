"""The runner's schedule: deregister_after, the concurrency bound, following catalog changes, a clean stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from conftest import NODE, eventually, run, started, status_of
from healthkit import SLACK, TcpService, register, serve_handler, wait_status
from registry.catalog import Catalog
from registry.health.runner import HealthRunner
from registry.model import Status
from registry.schema import load_file


def test_deregister_after_removes_a_critical_instance_and_logs_it(catalog: Catalog) -> None:
    async def scenario() -> None:
        service = await TcpService().up()
        runner = HealthRunner(catalog)
        await runner.start()
        check = {"tcp": f"127.0.0.1:{service.port}", "interval": "1s", "timeout": "100ms", "deregister_after": "300ms"}
        try:
            register(catalog, {"id": "flaky", "name": "flaky", "port": service.port, "checks": [check]})
            await wait_status(catalog, "flaky", Status.PASSING, 0.1 + SLACK)
            await service.down()
            await wait_status(catalog, "flaky", Status.CRITICAL, 1.0 + 0.1 + SLACK)
            took = await wait_status(catalog, "flaky", None, 0.3 + 0.2 + SLACK)
            assert took >= 0.25
            assert runner.scheduled() == 0
        finally:
            await runner.stop()
        gone = catalog.store.events(kind="deregistration")[0]
        assert gone.subject == "api:flaky"
        assert "critical for more than 0.3s" in gone.detail["reason"]
        assert catalog.store.registrations() == []  # an API instance is removed for good

    run(scenario())


def test_file_instance_is_checked_again_when_its_file_changes(tmp_path: Path, catalog: Catalog) -> None:
    async def scenario() -> None:
        first, second = await TcpService().up(), await TcpService().up()
        runner = HealthRunner(catalog)
        await runner.start()
        path = tmp_path / "web.yaml"
        try:
            for service in (first, second):
                path.write_text(
                    f"name: web\nport: 8080\nchecks:\n  - tcp: 127.0.0.1:{service.port}\n    interval: 10s\n    timeout: 200ms\n"
                )
                catalog.apply_file(str(path), load_file(path, NODE))
                await wait_status(catalog, "web-8080", Status.PASSING, 0.2 + SLACK)
                await first.down()
            # The changed check (new target) ran at once, although the interval is 10 s.
            entry = catalog.current.entry("web-8080")
            assert entry is not None and str(second.port) in entry.checks[0].output
            assert runner.scheduled() == 1
            catalog.remove_file(str(path))
            assert runner.scheduled() == 0
        finally:
            await runner.stop()
            await second.down()

    run(scenario())


# Each answer leaves the check 0.6 s of its timeout for a loaded machine; three in a row
# still outlast one timeout.
ANSWER_TAKES, CHECK_TIMEOUT = 0.4, 1.0


def test_concurrency_bound_holds_and_timeouts_count_from_the_slot(catalog: Catalog) -> None:
    in_flight, peak = 0, 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(ANSWER_TAKES)
        in_flight -= 1
        return web.Response(text="ok")

    async def scenario() -> None:
        web_runner, url = await serve_handler("/", slow)
        async with started(HealthRunner(catalog, concurrency=2)):
            try:
                with catalog.batch():
                    for n in range(6):
                        check = {"http": url, "interval": "10s", "timeout": f"{int(CHECK_TIMEOUT * 1000)}ms"}
                        register(catalog, {"id": f"web-{n}", "name": "web", "port": 8000 + n, "checks": [check]})
                # Six requests two at a time take three answers' time, longer than the timeout; each
                # still passes, since its timeout counts from its slot.
                await eventually(lambda: all(status_of(catalog, f"web-{n}") is Status.PASSING for n in range(6)),
                                 3 * ANSWER_TAKES + CHECK_TIMEOUT + SLACK)
                assert peak == 2
            finally:
                await web_runner.cleanup()

    run(scenario())


def test_stop_leaves_no_task_behind(catalog: Catalog) -> None:
    async def scenario() -> None:
        runner = HealthRunner(catalog, exec_from_api=True)
        await runner.start()
        register(catalog, {"id": "a", "name": "a", "port": 1, "checks": [{"exec": ["sleep", "5"], "timeout": "10s"}]})
        register(catalog, {"id": "b", "name": "b", "port": 2, "checks": [{"http": "http://127.0.0.1:1/", "interval": "1s"}]})
        register(catalog, {"id": "c", "name": "c", "port": 3, "checks": [{"ttl": "10s"}]})
        await eventually(lambda: runner.scheduled() == 3, 1)
        await asyncio.sleep(0.05)  # let the sleep command start
        await runner.stop()
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        assert runner.scheduled() == 0
        # Later catalog changes are ignored once stopped.
        register(catalog, {"id": "d", "name": "d", "port": 4, "checks": [{"ttl": "10s"}]})
        assert runner.scheduled() == 0

    run(scenario())
