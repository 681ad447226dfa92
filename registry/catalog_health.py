"""The writer's health and maintenance: check results, holds, and the node state they settle.

A part of `Catalog` (registry.catalog), kept apart because it is one concern: how a
check result, a maintenance window or the resource figures move an instance's status
and the node's state, with one event per transition and its trigger. Everything it
changes is published through the catalog's `_publish_change`, like every other change.
"""

from __future__ import annotations

import abc
import logging
from typing import Any

from registry import events
from registry.instances import InstanceTable
from registry.journal import Journal
from registry.model import CheckState, Entry, Instance, Node, NodeIdentity, Status
from registry.snapshot import Key
from registry.states import Hold, NodeState, Trigger, Window
from registry.store import HealthRow
from registry.transitions import TRANSITIONS, settle

log = logging.getLogger("pilotfish.catalog")


class HealthWriter(abc.ABC):
    """Check results and maintenance holds, for the catalog that publishes them."""

    identity: NodeIdentity
    _table: InstanceTable
    _journal: Journal
    # What the resource figures say of this node (the node monitor's say), and
    # the window holding it: with the recovery of its checks, its state (settle).
    _resources: tuple[NodeState, str]

    @abc.abstractmethod
    def _publish_change(self) -> None:
        """Publish what changed (the catalog's; batched when a batch is open)."""

    def set_check_state(
        self, instance: Instance, state: CheckState, event: dict[str, Any] | None = None, probe: Status | None = None
    ) -> bool:
        """Record a check result; builds a snapshot only when the instance's status changes.

        `probe` is what the probe found before rise and fall (default: the state's
        status): it is what a recovery after maintenance counts. Returns True when
        the instance's status changed.
        """
        key = instance.key
        if self._table.instances.get(key) != instance:
            return False  # a result for a version of the instance that has since changed or gone
        before = self._table.entries[key]
        with_node = self._table.recovers_with_node(key)
        previous = self._table.set_check_state(key, state)
        counted = self._table.count_recovery(key, state.check_id, probe or state.status)
        entry = self._table.refresh(key)
        check_changed = previous is None or previous.status is not state.status
        if check_changed:
            self._journal.record_health(HealthRow(key[0], key[1], state.check_id, state.status, state.output, state.updated))
            self._journal.record(events.check_changed(key[1], state, previous, event))
        elif entry.status is before.status and not counted:
            # Same status, new output: the writer's entry is current now and the next
            # snapshot carries it; it is not worth a new index on its own.
            return False
        if entry.maintenance_state is not before.maintenance_state and not with_node:
            # An instance's own recovery is its event; the node's recovery is the node's
            # (one `node` event, not one per instance).
            reason = entry.maintenance_reason if entry.maintenance_state else None
            self._journal.record(
                events.maintenance(key[1], before.maintenance_state, entry.maintenance_state, reason, Trigger.HEALTH)
            )
        self._settle_node(Trigger.HEALTH)
        self._publish_change()
        return entry.status is not before.status

    def hold_instance(self, key: Key, hold: Hold | None, trigger: Trigger) -> Entry | None:
        """Hold an instance for a window (None: release it, and its checks recover).

        A hold for an instance not registered (yet) is kept for it: one loaded after
        its window, at start-up, arrives held. Returns its entry, None when absent.
        """
        if self._table.hold(key) == hold:
            return self._table.entries.get(key)
        self._table.set_hold(key, hold)
        if key not in self._table.instances:
            return None
        before = self._table.entries[key]
        entry = self._table.refresh(key)
        if entry.maintenance_state is not before.maintenance_state:
            reason = entry.maintenance_reason if entry.maintenance_state else None
            self._journal.record(events.maintenance(key[1], before.maintenance_state, entry.maintenance_state, reason, trigger))
        self._settle_node(trigger)  # held, it no longer holds the node's recovery back
        self._publish_change()
        return entry

    def set_node_resources(self, state: NodeState, reason: str) -> Node:
        """What the resource figures say of this node: online or degraded (the node monitor's say)."""
        self._resources = (state, reason)
        self._settle_node(Trigger.HEALTH)
        self._publish_change()
        return self._table.nodes[self.identity.node]

    def set_node_maintenance(self, hold: Hold | None, trigger: Trigger) -> Node:
        """Hold this node for a window (None: release it, and its instances' checks recover)."""
        changed = self._table.set_node_hold(self.identity.node, hold)
        self._settle_node(trigger, refresh=changed)
        self._publish_change()
        return self._table.nodes[self.identity.node]

    def set_windows(self, windows: tuple[Window, ...]) -> None:
        """Announce this node's windows (its own and its instances', planned ones too) in its record."""
        if self._table.set_windows(self.identity.node, windows):
            self._publish_change()

    def _settle_node(self, trigger: Trigger, refresh: bool = False) -> None:
        """Bring this node's state in line with its inputs (`refresh`: its hold changed).

        A move of the state is checked against the transition table and recorded
        as a `node` event naming `trigger`; a new reason alone is not an event.
        """
        name = self.identity.node
        node = self._table.nodes[name]
        waiting, failing = self._table.node_recovery(name)
        state, reason = settle(*self._resources, self._table.node_holds.get(name), waiting, failing)
        if state is node.state and reason == node.reason and not refresh:
            return
        if state is not node.state:
            if state not in TRANSITIONS[node.state]:
                # Requests are checked against the table before they change anything
                # (HTTP 409); a move derived from them that is not in it is a bug of
                # ours, and the node's state must still follow its window.
                log.error("node %s: %s -> %s is not in the transition table", name, node.state.value, state.value)
            self._journal.record(events.node_changed(name, node.state, state, reason, trigger))
        self._table.set_node_state(name, state, reason, refresh)
