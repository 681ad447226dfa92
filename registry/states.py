"""Where a node or an instance stands, and the maintenance windows that move it.

`NodeState` and `Trigger` name a state and what changed it (registry.transitions
holds the moves between states). `Window` is a maintenance an operator planned (kept
in SQLite, announced in the node record); `Hold` is what a window does to its target
at one moment. registry.windows checks and parses windows; registry.maintenance runs
their clock. Nothing here imports the rest of the model, which builds on it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

class NodeState(str, enum.Enum):
    """Operational state of a node (registry.transitions holds the moves between them).

    `draining`, `maintenance` and `offline` drain every instance of the node from DNS
    and healthy lookups: `maintenance` was entered at once, `draining` is the time
    given to clients to leave before the work, `offline` the work after it.
    `recovering` follows any of them until the node's checks have passed anew. An
    instance's own maintenance is told with the same names (Entry.maintenance_state).
    """

    ONLINE = "online"
    DEGRADED = "degraded"
    DRAINING = "draining"
    MAINTENANCE = "maintenance"
    OFFLINE = "offline"
    RECOVERING = "recovering"

    @property
    def drains(self) -> bool:
        """True for the states that take the target's instances out of DNS and healthy lookups."""
        return self in _DRAINING_STATES


_DRAINING_STATES = frozenset({NodeState.DRAINING, NodeState.MAINTENANCE, NodeState.OFFLINE})


class Trigger(str, enum.Enum):
    """What made a node or an instance change state: every transition event names one."""

    API = "api"  # an operator, through the HTTP API or the CLI
    SCHEDULE = "schedule"  # a planned window's time came
    TIMEOUT = "timeout"  # a drain's drain_timeout ran out
    HEALTH = "health"  # resource figures or check results


class MaintenanceKind(str, enum.Enum):
    """How a maintenance begins: at once, after a drain, or at a planned time."""

    IMMEDIATE = "immediate"
    DRAINING = "draining"
    PLANNED = "planned"


class WindowPhase(str, enum.Enum):
    """Where a maintenance window stands at a given time."""

    PLANNED = "planned"  # announced, not begun: the target serves as usual
    DRAINING = "draining"
    ACTIVE = "active"  # the work: the target is `maintenance` (immediate) or `offline`
    OVER = "over"


@dataclass(frozen=True, slots=True)
class Window:
    """One maintenance of a node (`instance` empty) or of one of its instances.

    Times are Unix seconds. The target drains from `drain_at`, is at work from
    `starts` and comes back at `ends` (None: when an operator ends it). Every kind is
    a window: `immediate` drains and starts at once, `draining` starts when its
    drain_timeout runs out (or an operator says the work may start).
    """

    id: int
    node: str
    instance: str
    kind: MaintenanceKind
    reason: str
    drain_at: float
    starts: float
    ends: float | None
    created: float

    def phase_at(self, now: float) -> WindowPhase:
        if self.ends is not None and now >= self.ends:
            return WindowPhase.OVER
        if now >= self.starts:
            return WindowPhase.ACTIVE
        if now >= self.drain_at:
            return WindowPhase.DRAINING
        return WindowPhase.PLANNED

    def hold_at(self, now: float) -> Hold | None:
        """What this window does to its target at `now`: None before it drains and once it is over."""
        phase = self.phase_at(now)
        if phase is WindowPhase.DRAINING:
            return Hold(NodeState.DRAINING, self.reason, self.starts, self.id)
        if phase is WindowPhase.ACTIVE:
            state = NodeState.MAINTENANCE if self.kind is MaintenanceKind.IMMEDIATE else NodeState.OFFLINE
            return Hold(state, self.reason, self.ends, self.id)
        return None

    def next_change(self, now: float) -> float | None:
        """The first of its times after `now` (None: nothing more happens by itself)."""
        return min((t for t in (self.drain_at, self.starts, self.ends) if t is not None and t > now), default=None)

    def overlaps(self, other: Window) -> bool:
        """Both hold the same target at some moment, drains included (an open end is forever)."""
        mine = self.ends if self.ends is not None else math.inf
        theirs = other.ends if other.ends is not None else math.inf
        return self.drain_at < theirs and other.drain_at < mine

    @property
    def target(self) -> tuple[str, str]:
        """(node, instance id); the instance is "" for the node itself."""
        return (self.node, self.instance)


@dataclass(frozen=True, slots=True)
class Hold:
    """What keeps a node or an instance out of service now, and from which window.

    `until` is when that ends by itself: for `draining` when the work begins (the
    target turns `offline`), otherwise the window's end (None: when an operator ends it).
    """

    state: NodeState
    reason: str
    until: float | None
    window: int
