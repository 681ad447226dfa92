"""The local node's state: online or degraded from psutil, maintenance from the operator.

The allowed transitions are one table (`TRANSITIONS`); anything else raises
InvalidTransition (HTTP 409). Resource figures move the node between online and
degraded only, with a hysteresis so that a load hovering at a threshold does not
flap: the node degrades after `degrade_after` samples in a row above a threshold,
and recovers after `recover_after` samples in a row with every figure at least
`margin` points below its threshold. Maintenance is the operator's alone; while it
lasts the figures are still sampled, so leaving it lands on online or degraded as
the machine is. Maintenance survives a restart: it is read back from the last
`node` event in the store.

Never imports from `resolver`: the config holds its `node_health` as NodeThresholds.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Mapping

import psutil

from registry.background import cancel_and_wait
from registry.catalog import Catalog
from registry.errors import InvalidTransition
from registry.model import Node, NodeState

log = logging.getLogger(__name__)

ONLINE, DEGRADED, MAINTENANCE, OFFLINE = NodeState.ONLINE, NodeState.DEGRADED, NodeState.MAINTENANCE, NodeState.OFFLINE

# From each state, the states it may go to. No state goes to itself: turning
# maintenance on twice, or off when it is not on, is refused rather than ignored.
TRANSITIONS: Mapping[NodeState, frozenset[NodeState]] = MappingProxyType({
    ONLINE: frozenset({DEGRADED, MAINTENANCE, OFFLINE}),
    DEGRADED: frozenset({ONLINE, MAINTENANCE, OFFLINE}),
    MAINTENANCE: frozenset({ONLINE, DEGRADED, OFFLINE}),
    OFFLINE: frozenset({ONLINE, DEGRADED}),
})


def check_transition(current: NodeState, requested: NodeState) -> None:
    """Raise InvalidTransition unless the table allows `current` -> `requested`."""
    allowed = TRANSITIONS[current]
    if requested not in allowed:
        raise InvalidTransition(current.value, requested.value, sorted(state.value for state in allowed))


@dataclass(frozen=True)
class NodeThresholds:
    """Percentages (0..100) above which the node is degraded."""

    cpu: float = 90.0
    memory: float = 90.0
    disk: float = 90.0


class NodeMonitor:
    def __init__(
        self,
        catalog: Catalog,
        thresholds: NodeThresholds,
        interval: float = 5.0,
        *,
        degrade_after: int = 3,
        recover_after: int = 3,
        margin: float = 5.0,
        disk_path: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.thresholds = thresholds
        self.interval = interval
        self.degrade_after = degrade_after
        self.recover_after = recover_after
        self.margin = margin
        # The disk that matters is the one holding the state directory.
        store_path = catalog.store.path
        self.disk_path = disk_path or (os.path.dirname(os.path.abspath(store_path)) if store_path != ":memory:" else "/")
        self._figures: dict[str, float] = {"cpu": 0.0, "memory": 0.0, "disk": 0.0}
        self._above = 0
        self._below = 0
        # What the figures say, whatever the operator said: where maintenance ends.
        self._resource_state = ONLINE
        self._resource_reason = ""
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._restore_maintenance()
        psutil.cpu_percent(interval=None)  # the first call only sets the baseline
        self._task = asyncio.create_task(self._loop(), name="node monitor")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def figures(self) -> dict[str, float]:
        """Last sampled cpu/memory/disk use, percent."""
        return dict(self._figures)

    def thresholds_dict(self) -> dict[str, float]:
        return asdict(self.thresholds)

    @property
    def node(self) -> Node:
        return self.catalog.current.nodes[self.catalog.identity.node]

    def set_maintenance(self, on: bool, reason: str = "") -> Node:
        """Drain (on) or restore (off) every instance of this node; raises InvalidTransition."""
        current = self.node.state
        if on:
            check_transition(current, MAINTENANCE)
            target, why = MAINTENANCE, reason or "maintenance mode"
        else:
            if current is not MAINTENANCE:
                # Not in maintenance: leaving it would be a self-transition, which the table refuses.
                check_transition(current, current)
            target, why = self._resource_state, self._resource_reason
            check_transition(current, target)
        log.warning("node %s: %s -> %s (%s)", self.node.name, current.value, target.value, why)
        return self.catalog.set_node_state(target, why)

    # -- sampling ----------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # psutil failing once (a vanished mount) must not stop sampling
                log.exception("node sample failed")
            await asyncio.sleep(self.interval)

    def sample(self) -> None:
        """Read psutil once and move the node's state if the hysteresis says so."""
        self._figures = {
            "cpu": float(psutil.cpu_percent(interval=None)),
            "memory": float(psutil.virtual_memory().percent),
            "disk": float(psutil.disk_usage(self.disk_path).percent),
        }
        limits = self.thresholds_dict()
        over = [f"{name} {value:.1f}% > {limits[name]:g}%" for name, value in self._figures.items() if value > limits[name]]
        clear = all(value < limits[name] - self.margin for name, value in self._figures.items())
        self._above = self._above + 1 if over else 0
        self._below = self._below + 1 if clear else 0
        if self._resource_state is ONLINE and self._above >= self.degrade_after:
            self._resource_state, self._resource_reason = DEGRADED, ", ".join(over)
        elif self._resource_state is DEGRADED and self._below >= self.recover_after:
            self._resource_state, self._resource_reason = ONLINE, "resources back under thresholds"
        else:
            return
        current = self.node.state
        if current in (ONLINE, DEGRADED) and current is not self._resource_state:
            check_transition(current, self._resource_state)
            log.warning("node %s: %s -> %s (%s)", self.node.name, current.value, self._resource_state.value, self._resource_reason)
            self.catalog.set_node_state(self._resource_state, self._resource_reason)

    def _restore_maintenance(self) -> None:
        """Come back in maintenance if the node was left in it before a restart."""
        node = self.node
        last = next((e for e in self.catalog.store.events(limit=50, kind="node") if e.subject == node.name), None)
        if last is not None and last.detail.get("to") == MAINTENANCE.value and node.state is not MAINTENANCE:
            self.catalog.set_node_state(MAINTENANCE, str(last.detail.get("reason") or "maintenance mode"))
