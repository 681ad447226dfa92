"""Node state from its resources: psutil figures against thresholds, with hysteresis.

(Maintenance and the transition table: test_maintenance.py, test_transitions.py.)
"""

from __future__ import annotations

import dataclasses

from conftest import eventually, run, started
from registry.catalog import Catalog
from registry.nodestate import NodeMonitor, NodeThresholds
from registry.states import NodeState

LOW = NodeThresholds(cpu=1000, memory=0, disk=1000)  # memory use is always above 0%
HIGH = NodeThresholds(cpu=1000, memory=1000, disk=1000)


def state_of(monitor: NodeMonitor) -> NodeState:
    """The node's state now (a call, so that no earlier assert narrows it for the type checker)."""
    return monitor.node.state


def states(catalog: Catalog) -> list[tuple[str, str]]:
    return [(e.detail["from"], e.detail["to"]) for e in reversed(catalog.store.events(kind="node"))]


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


def test_thresholds_are_a_plain_dataclass() -> None:
    assert dataclasses.asdict(NodeThresholds()) == {"cpu": 90.0, "memory": 90.0, "disk": 90.0}
