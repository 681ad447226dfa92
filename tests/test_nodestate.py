"""Node state: psutil figures against thresholds with hysteresis, operator maintenance, the transition table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conftest import NODE, eventually, run, started, status_of
from healthkit import register
from registry.catalog import Catalog
from registry.errors import InvalidTransition
from registry.model import NodeState, Status
from registry.nodestate import TRANSITIONS, NodeMonitor, NodeThresholds, check_transition
from registry.store import Store

LOW = NodeThresholds(cpu=1000, memory=0, disk=1000)  # memory use is always above 0%
HIGH = NodeThresholds(cpu=1000, memory=1000, disk=1000)


def state_of(monitor: NodeMonitor) -> NodeState:
    """The node's state now (a call, so that no earlier assert narrows it for the type checker)."""
    return monitor.node.state


def states(catalog: Catalog) -> list[tuple[str, str]]:
    return [(e.detail["from"], e.detail["to"]) for e in reversed(catalog.store.events(kind="node"))]


@pytest.mark.parametrize(
    ("current", "requested", "allowed"),
    [
        (NodeState.ONLINE, NodeState.DEGRADED, True),
        (NodeState.ONLINE, NodeState.MAINTENANCE, True),
        (NodeState.ONLINE, NodeState.ONLINE, False),
        (NodeState.DEGRADED, NodeState.ONLINE, True),
        (NodeState.MAINTENANCE, NodeState.MAINTENANCE, False),
        (NodeState.MAINTENANCE, NodeState.DEGRADED, True),
        (NodeState.OFFLINE, NodeState.MAINTENANCE, False),
        (NodeState.OFFLINE, NodeState.ONLINE, True),
    ],
)
def test_transition_table(current: NodeState, requested: NodeState, allowed: bool) -> None:
    assert (requested in TRANSITIONS[current]) is allowed
    if allowed:
        check_transition(current, requested)
    else:
        with pytest.raises(InvalidTransition) as refused:
            check_transition(current, requested)
        assert refused.value.current == current.value and refused.value.requested == requested.value


def test_thresholds_degrade_after_consecutive_samples_and_recover_below_margin(catalog: Catalog) -> None:
    monitor = NodeMonitor(catalog, LOW, degrade_after=3, recover_after=2)
    for _ in range(2):
        monitor.sample()
    assert state_of(monitor) is NodeState.ONLINE  # two samples above are not enough
    monitor.sample()
    assert state_of(monitor) is NodeState.DEGRADED
    assert "memory" in monitor.node.reason
    assert monitor.figures()["memory"] > 0
    # Under the thresholds but within the margin is not enough to recover.
    monitor.thresholds = NodeThresholds(cpu=100, memory=100, disk=100)
    monitor.margin = 200
    for _ in range(3):
        monitor.sample()
    assert state_of(monitor) is NodeState.DEGRADED
    monitor.thresholds, monitor.margin = HIGH, 5
    monitor.sample()
    assert state_of(monitor) is NodeState.DEGRADED
    monitor.sample()
    assert state_of(monitor) is NodeState.ONLINE
    assert states(catalog) == [("online", "degraded"), ("degraded", "online")]


def test_sampling_loop_drives_the_state(catalog: Catalog) -> None:
    async def scenario() -> None:
        async with started(NodeMonitor(catalog, LOW, interval=0.02)) as monitor:
            await eventually(lambda: state_of(monitor) is NodeState.DEGRADED, 1, "degraded")
            monitor.thresholds = HIGH
            await eventually(lambda: state_of(monitor) is NodeState.ONLINE, 1, "online")
            assert set(monitor.figures()) == {"cpu", "memory", "disk"}

    run(scenario())


def test_maintenance_drains_and_restores_and_refuses_invalid(catalog: Catalog) -> None:
    register(catalog, {"id": "redis-1", "name": "redis", "port": 6379})
    monitor = NodeMonitor(catalog, HIGH)
    assert catalog.current.answerable("redis")
    with pytest.raises(InvalidTransition):
        monitor.set_maintenance(False)
    node = monitor.set_maintenance(True, "kernel upgrade")
    assert node.state is NodeState.MAINTENANCE and node.reason == "kernel upgrade"
    assert catalog.current.answerable("redis") == ()
    assert status_of(catalog, "redis-1") is Status.MAINTENANCE
    with pytest.raises(InvalidTransition) as refused:
        monitor.set_maintenance(True, "again")
    assert refused.value.current == "maintenance"
    assert monitor.set_maintenance(False).state is NodeState.ONLINE
    assert status_of(catalog, "redis-1") is Status.PASSING
    assert [e.instance.id for e in catalog.current.answerable("redis")] == ["redis-1"]
    assert states(catalog) == [("online", "maintenance"), ("maintenance", "online")]


def test_leaving_maintenance_lands_on_what_the_figures_say(catalog: Catalog) -> None:
    monitor = NodeMonitor(catalog, LOW, degrade_after=1)
    monitor.set_maintenance(True, "disk swap")
    monitor.sample()
    assert state_of(monitor) is NodeState.MAINTENANCE  # the figures never end maintenance
    assert monitor.set_maintenance(False).state is NodeState.DEGRADED


def test_maintenance_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "pilotfish.db"

    async def scenario() -> None:
        catalog = Catalog(Store(path), NODE)
        monitor = NodeMonitor(catalog, HIGH, interval=10)
        monitor.set_maintenance(True, "rack move")
        catalog.store.close()
        restarted = Catalog(Store(path), NODE)
        async with started(NodeMonitor(restarted, HIGH, interval=10)) as monitor:
            assert state_of(monitor) is NodeState.MAINTENANCE and monitor.node.reason == "rack move"
            monitor.set_maintenance(False)
        restarted.store.close()
        again = NodeMonitor(Catalog(Store(path), NODE), HIGH, interval=10)
        await again.start()
        await again.stop()
        again.catalog.store.close()
        assert again.node.state is NodeState.ONLINE

    run(scenario())


def test_thresholds_are_a_plain_dataclass() -> None:
    assert dataclasses.asdict(NodeThresholds()) == {"cpu": 90.0, "memory": 90.0, "disk": 90.0}
