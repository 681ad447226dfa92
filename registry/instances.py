"""The writer's working state: every instance with its health, and what changed since the last snapshot.

`Catalog` decides what may change (sources, conflicts, ownership); this table only
does the bookkeeping of a change, so that every path that touches an instance keeps
the same books: its entry (registration plus health), its check results, maintenance
(the hold of a window, then the recovery of its checks) and TTL, which instance owns
which check id, and the delta the next snapshot is built from. Nothing here is seen by readers, validates anything or touches SQLite
after start-up (saved health states are read once, when the table is made).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from registry.model import CheckState, Entry, Instance, Node, NodeIdentity, Status, worst
from registry.snapshot import Key
from registry.states import Hold, NodeState, Window
from registry.store import HealthRow

NOT_CHECKED = "not checked yet"
RECOVERING_REASON = "recovering after maintenance: each check must pass rise times anew"


@dataclass(slots=True)
class _Pending:
    """One check on its way back after maintenance: passes in a row, and its failure if one came."""

    passes: int = 0
    failed: Status | None = None


@dataclass(slots=True)
class Recovery:
    """An instance's checks that have yet to pass `rise` times in a row since its maintenance ended.

    `for_node`: the recovery is the node's (its maintenance ended), so the node is
    `recovering` until this instance is done too.
    """

    waiting: dict[str, _Pending] = field(default_factory=dict)
    for_node: bool = False


class InstanceTable:
    """Instances by key with their entries; `take_changes()` hands over the delta once."""

    def __init__(self, identity: NodeIdentity, saved_health: list[HealthRow]) -> None:
        self.instances: dict[Key, Instance] = {}
        self.entries: dict[Key, Entry] = {}
        self.nodes: dict[str, Node] = {identity.node: Node(identity.node, identity.address)}
        self._check_states: dict[Key, dict[str, CheckState]] = {}
        self._check_owner: dict[str, Key] = {}
        # Windows holding an instance now, by key: kept for an absent key too, so that an
        # instance loaded after the window (a start-up) arrives held.
        self._holds: dict[Key, Hold] = {}
        self.node_holds: dict[str, Hold] = {}
        self.recovering: dict[Key, Recovery] = {}
        self.expires_at: dict[Key, float] = {}
        self._saved_health: dict[Key, dict[str, CheckState]] = {}
        for row in saved_health:
            self._saved_health.setdefault((row.node, row.instance_id), {})[row.check_id] = CheckState(
                row.check_id, row.status, row.output, row.updated
            )
        # Instances dropped since the last snapshot, with their check states and
        # maintenance: one that comes back under the same key before the snapshot is
        # published (`mv a.yaml b.yaml`, an instance moved between files) takes them
        # up again, so a move never looks like a new instance to DNS.
        self._departed: dict[Key, tuple[Instance, dict[str, CheckState], Hold | None]] = {}
        # Entries changed since the last snapshot (None: gone), for Snapshot.successor.
        self._changes: dict[Key, Entry | None] = {}

    def take_changes(self) -> dict[Key, Entry | None]:
        """The delta since the last call; a departed instance can no longer come back."""
        changes, self._changes = self._changes, {}
        for key in self._departed:
            self.recovering.pop(key, None)
        self._departed.clear()
        return changes

    def check_owner(self, check_id: str) -> Key | None:
        return self._check_owner.get(check_id)

    # -- instances ------------------------------------------------------------

    def put(self, instance: Instance) -> None:
        key = instance.key
        self.instances[key] = instance
        wanted = {check.id for check in instance.checks}
        states = self._check_states.get(key)
        departed = self._departed.pop(key, None)
        if not states and departed is not None:
            before, kept, hold = departed
            unchanged = {check.id for check in before.checks if check in instance.checks}
            states = {cid: state for cid, state in kept.items() if cid in unchanged}
            if hold is not None:
                self._holds.setdefault(key, hold)
        if not states:
            states = self._saved_health.pop(key, {})
        self._keep_states(key, {cid: s for cid, s in states.items() if cid in wanted})
        for check in instance.checks:
            self._check_owner[check.id] = key
        if instance.node not in self.nodes:
            self.nodes[instance.node] = Node(instance.node, instance.address)
        if instance.ttl is not None:
            self.expires_at[key] = time.monotonic() + instance.ttl
        self.refresh(key)

    def drop(self, instance: Instance, successor: Instance | None = None) -> None:
        """Forget `instance`. A `successor` under the same key (a re-registration, a changed
        file) keeps its maintenance and the results of every check it did not change."""
        key = instance.key
        del self.instances[key]
        del self.entries[key]
        self._changes[key] = None
        for check in instance.checks:
            if self._check_owner.get(check.id) == key:
                del self._check_owner[check.id]
        states = self._check_states.pop(key, {})
        if successor is None:
            self._departed[key] = (instance, states, self._holds.pop(key, None))
        else:
            unchanged = {check.id for check in instance.checks if check in successor.checks}
            self._keep_states(key, {cid: state for cid, state in states.items() if cid in unchanged})
        self.expires_at.pop(key, None)

    def _keep_states(self, key: Key, states: dict[str, CheckState]) -> None:
        """Keep an instance's check results; none (most of a fleet's instances) keeps no dict at all."""
        if states:
            self._check_states[key] = states
        else:
            self._check_states.pop(key, None)

    # -- health ---------------------------------------------------------------

    def set_check_state(self, key: Key, state: CheckState) -> CheckState | None:
        """Record one check's latest result; the previous one (None: first). Call `refresh` after."""
        states = self._check_states.setdefault(key, {})
        previous = states.get(state.check_id)
        states[state.check_id] = state
        return previous

    def hold(self, key: Key) -> Hold | None:
        return self._holds.get(key)

    def set_hold(self, key: Key, hold: Hold | None) -> None:
        """Hold `key` for a window, or release it (its checks then recover). Call `refresh` after, if present."""
        before = self._holds.pop(key, None)
        if hold is not None:
            self._holds[key] = hold
        elif before is not None and key in self.instances:
            node = self.node_holds.get(key[0])
            if node is None:  # under a held node, the node's recovery will take it
                self.begin_recovery([key], for_node=False)

    def set_node_hold(self, name: str, hold: Hold | None) -> bool:
        """Record the window holding a node; True when it changed. Call `set_node_state` after.

        A node released from its window starts the recovery of every instance of it
        that its own window does not hold.
        """
        before = self.node_holds.pop(name, None)
        if hold is not None:
            self.node_holds[name] = hold
        if before is not None and hold is None:
            self.begin_recovery([key for key in self.instances if key[0] == name and key not in self._holds], True)
        return before != hold

    def set_node_state(self, name: str, state: NodeState, reason: str, refresh: bool = False) -> None:
        """Record a node's state; every instance on it follows a new state (or a new hold: `refresh`)."""
        node = self.nodes[name]
        self.nodes[name] = replace(node, state=state, reason=reason)
        if refresh or node.state is not state or (state.drains and node.reason != reason):
            for key in self.instances:
                if key[0] == name:
                    self.refresh(key)

    def set_windows(self, name: str, windows: tuple[Window, ...]) -> bool:
        """Announce a node's windows in its record; True when they changed."""
        node = self.nodes[name]
        if node.windows == windows:
            return False
        self.nodes[name] = replace(node, windows=windows)
        return True

    # -- recovery -------------------------------------------------------------

    def begin_recovery(self, keys: list[Key], for_node: bool) -> None:
        """Hold each instance with checks out of service until every check has passed rise times anew."""
        for key in keys:
            checks = self.instances[key].checks
            if checks:
                self.recovering[key] = Recovery({check.id: _Pending() for check in checks}, for_node)

    def recovers_with_node(self, key: Key) -> bool:
        """Whether `key` recovers as part of its node's recovery (its events are the node's)."""
        recovery = self.recovering.get(key)
        return recovery is not None and recovery.for_node

    def count_recovery(self, key: Key, check_id: str, result: Status) -> bool:
        """Count a check's own result (before rise and fall) towards its recovery; True if it counted."""
        recovery = self.recovering.get(key)
        pending = recovery.waiting.get(check_id) if recovery is not None else None
        if recovery is None or pending is None:
            return False
        if result is Status.PASSING:
            pending.passes += 1
            spec = next((c for c in self.instances[key].checks if c.id == check_id), None)
            if spec is None or pending.passes >= spec.rise:
                del recovery.waiting[check_id]
        else:
            pending.passes, pending.failed = 0, result
        return True

    def node_recovery(self, name: str) -> tuple[int, str | None]:
        """(checks still to pass, a failure to name or None) of the node's own recovery."""
        waiting, failing = 0, None
        for key, recovery in self.recovering.items():
            # An instance put in maintenance of its own meanwhile no longer holds the node back.
            if not recovery.for_node or key[0] != name or key in self._holds:
                continue
            waiting += len(recovery.waiting)
            if failing is None:
                for check_id, pending in recovery.waiting.items():
                    if pending.failed is not None:
                        failing = f"after maintenance: check {check_id} of {key[1]} {pending.failed.value}"
                        break
        return waiting, failing

    def refresh(self, key: Key) -> Entry:
        """Recompute the entry of `key` from its checks, maintenance and node; recorded as changed."""
        instance = self.instances[key]
        states = self._check_states.get(key, {})
        checks = tuple(
            states.get(check.id) or CheckState(check.id, Status.CRITICAL, NOT_CHECKED) for check in instance.checks
        )
        status = worst([c.status for c in checks])
        hold = self._holds.get(key)
        node = self.nodes.get(instance.node)
        if node is not None and node.state.drains:
            node_hold = self.node_holds.get(node.name)
            shown = hold or Hold(node.state, f"node {node.name} {node.state.value}: {node.reason}",
                                 node_hold.until if node_hold else None, 0)
            entry = Entry(instance, Status.MAINTENANCE, checks, shown.reason, shown.state, shown.until)
        elif hold is not None:
            entry = Entry(instance, Status.MAINTENANCE, checks, hold.reason, hold.state, hold.until)
        else:
            entry = Entry(instance, self._recovered(key, status), checks)
            if entry.status is Status.MAINTENANCE:
                entry = Entry(instance, Status.MAINTENANCE, checks, RECOVERING_REASON, NodeState.RECOVERING)
        self.entries[key] = self._changes[key] = entry
        return entry

    def _recovered(self, key: Key, status: Status) -> Status:
        """`status` once recovery is over (or has failed: a failure shows); MAINTENANCE while it lasts."""
        recovery = self.recovering.get(key)
        if recovery is None:
            return status
        wanted = {check.id for check in self.instances[key].checks}
        for check_id in [cid for cid in recovery.waiting if cid not in wanted]:
            del recovery.waiting[check_id]  # a check the instance no longer has
        if not recovery.waiting:
            del self.recovering[key]
            return status
        failures = [p.failed for p in recovery.waiting.values() if p.failed is not None]
        if failures:
            return worst([status, *failures])
        return Status.MAINTENANCE
