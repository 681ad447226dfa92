"""TTL checks: critical when the TTL runs out, back on the service's next report."""

from __future__ import annotations

import asyncio

import pytest

from conftest import run, started, status_of
from healthkit import SLACK, register, wait_status
from registry.catalog import Catalog
from registry.errors import NotFoundError
from registry.health.runner import HealthRunner
from registry.model import Status

TTL = 1.0


def ttl_body(instance_id: str, port: int) -> dict[str, object]:
    return {"id": instance_id, "name": "worker", "port": port, "checks": [{"ttl": "1s", "id": f"{instance_id}-ttl"}]}


def test_ttl_expires_to_critical_and_recovers_on_pass(catalog: Catalog) -> None:
    async def scenario() -> None:
        async with started(HealthRunner(catalog)) as runner:
            register(catalog, ttl_body("worker-1", 7000))
            assert status_of(catalog, "worker-1") is Status.CRITICAL  # until the service reports
            entry = runner.ttl_update("worker-1-ttl", Status.PASSING, "queue drained")
            assert entry.status is Status.PASSING and entry.checks[0].output == "queue drained"
            assert status_of(catalog, "worker-1") is Status.PASSING
            # Reports inside the TTL keep it passing.
            for _ in range(3):
                await asyncio.sleep(TTL / 2)
                runner.ttl_update("worker-1-ttl", Status.PASSING)
                assert status_of(catalog, "worker-1") is Status.PASSING
            took = await wait_status(catalog, "worker-1", Status.CRITICAL, TTL + SLACK)
            assert took >= TTL - 0.05
            expired = catalog.current.entry("worker-1")
            assert expired is not None and expired.checks[0].output == "TTL of 1s expired"
            assert runner.ttl_update("worker-1-ttl", Status.WARNING, "slow").status is Status.WARNING
            assert runner.ttl_update("worker-1-ttl", Status.PASSING).status is Status.PASSING
            assert runner.ttl_update("worker-1-ttl", Status.CRITICAL, "broken").status is Status.CRITICAL
        transitions = [(e.detail["to"], e.detail["output"]) for e in reversed(catalog.store.events(kind="health"))]
        assert transitions == [
            ("passing", "queue drained"),
            ("critical", "TTL of 1s expired"),
            ("warning", "slow"),
            ("passing", "TTL check set to passing"),
            ("critical", "broken"),
        ]

    run(scenario())


def test_ttl_update_of_unknown_or_non_ttl_check_is_not_found(catalog: Catalog) -> None:
    async def scenario() -> None:
        async with started(HealthRunner(catalog)) as runner:
            register(catalog, {"id": "web-1", "name": "web", "port": 80, "checks": [{"tcp": "127.0.0.1:1", "id": "web-tcp"}]})
            for check_id in ("nope", "web-tcp"):
                with pytest.raises(NotFoundError):
                    runner.ttl_update(check_id, Status.PASSING)

    run(scenario())


def test_ttl_check_never_reported_is_deregistered_after(catalog: Catalog) -> None:
    async def scenario() -> None:
        async with started(HealthRunner(catalog)):
            body = {"id": "silent", "name": "worker", "port": 7001, "checks": [{"ttl": "10s", "deregister_after": "200ms"}]}
            register(catalog, body)
            await wait_status(catalog, "silent", None, 0.2 + SLACK)
        assert "deregister_after" in catalog.store.events(kind="deregistration")[0].detail["reason"]

    run(scenario())
