"""The writer's working state: every instance with its health, and what changed since the last snapshot.

`Catalog` decides what may change (sources, conflicts, ownership); this table only
does the bookkeeping of a change, so that every path that touches an instance keeps
the same books: its entry (registration plus health), its check results, maintenance
and TTL, which instance owns which check id, and the delta the next snapshot is
built from. Nothing here is seen by readers, validates anything or touches SQLite
after start-up (saved health states are read once, when the table is made).
"""

from __future__ import annotations

import time

from registry.model import CheckState, Entry, Instance, Node, NodeIdentity, NodeState, Status, worst
from registry.snapshot import Key
from registry.store import HealthRow

NOT_CHECKED = "not checked yet"


class InstanceTable:
    """Instances by key with their entries; `take_changes()` hands over the delta once."""

    def __init__(self, identity: NodeIdentity, saved_health: list[HealthRow]) -> None:
        self.instances: dict[Key, Instance] = {}
        self.entries: dict[Key, Entry] = {}
        self.nodes: dict[str, Node] = {identity.node: Node(identity.node, identity.address)}
        self._check_states: dict[Key, dict[str, CheckState]] = {}
        self._check_owner: dict[str, Key] = {}
        self._maintenance: dict[Key, str] = {}
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
        self._departed: dict[Key, tuple[Instance, dict[str, CheckState], str | None]] = {}
        # Entries changed since the last snapshot (None: gone), for Snapshot.successor.
        self._changes: dict[Key, Entry | None] = {}

    def take_changes(self) -> dict[Key, Entry | None]:
        """The delta since the last call; a departed instance can no longer come back."""
        changes, self._changes = self._changes, {}
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
            before, kept, reason = departed
            unchanged = {check.id for check in before.checks if check in instance.checks}
            states = {cid: state for cid, state in kept.items() if cid in unchanged}
            if reason is not None:
                self._maintenance.setdefault(key, reason)
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
            self._departed[key] = (instance, states, self._maintenance.pop(key, None))
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

    def set_maintenance(self, key: Key, reason: str | None) -> Entry:
        if reason is None:
            self._maintenance.pop(key, None)
        else:
            self._maintenance[key] = reason
        return self.refresh(key)

    def set_node_state(self, name: str, state: NodeState, reason: str) -> None:
        """Record a node's state; every instance on that node follows it."""
        node = self.nodes[name]
        self.nodes[name] = Node(node.name, node.address, state, reason)
        for key in self.instances:
            if key[0] == name:
                self.refresh(key)

    def refresh(self, key: Key) -> Entry:
        """Recompute the entry of `key` from its checks, maintenance and node; recorded as changed."""
        instance = self.instances[key]
        states = self._check_states.get(key, {})
        checks = tuple(
            states.get(check.id) or CheckState(check.id, Status.CRITICAL, NOT_CHECKED) for check in instance.checks
        )
        reason = self._maintenance.get(key)
        node = self.nodes.get(instance.node)
        if node is not None and node.state is NodeState.MAINTENANCE:
            status, reason = Status.MAINTENANCE, reason or f"node {node.name} in maintenance: {node.reason}"
        elif reason is not None:
            status = Status.MAINTENANCE
        else:
            status = worst([c.status for c in checks])
        entry = self.entries[key] = self._changes[key] = Entry(instance, status, checks, reason)
        return entry
