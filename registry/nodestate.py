"""The local node's resource figures: online or degraded, from psutil.

Resource figures move the node between online and degraded only, with a hysteresis
so that a load hovering at a threshold does not flap: the node degrades after
`degrade_after` samples in a row above a threshold, and recovers after
`recover_after` samples in a row with every figure at least `margin` points below its
threshold. The monitor only tells the catalog what the figures say; maintenance
windows and the recovery after them weigh in there too (registry.transitions), so
figures sampled during maintenance decide where the node lands when it ends.

Never imports from `resolver`: the config holds its `node_health` as NodeThresholds.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import asdict, dataclass

import psutil

from registry.background import cancel_and_wait
from registry.catalog import Catalog
from registry.model import Node
from registry.states import NodeState

log = logging.getLogger(__name__)

ONLINE, DEGRADED = NodeState.ONLINE, NodeState.DEGRADED


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
        log.warning("node %s: resources say %s (%s)", self.node.name, self._resource_state.value, self._resource_reason)
        self.catalog.set_node_resources(self._resource_state, self._resource_reason)
