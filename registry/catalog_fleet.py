"""The writer's door to the fleet: what other nodes own comes in, what this node owns goes out.

A part of `Catalog` (registry.catalog). What other nodes own arrives through
`apply_remote` and is kept apart in a `RemoteView` (registry.remote): it joins every
snapshot, but is never checked, expired, written to SQLite or judged for conflicts
here. `follow_local` is the way out: the keys of this node's own changes, for the
publisher that writes them to etcd.
"""

from __future__ import annotations

import abc
from typing import Callable, Collection, Mapping

from registry.instances import InstanceTable
from registry.model import Node
from registry.remote import RemoteBatch, RemoteOutcome, RemoteView
from registry.snapshot import Key


class FleetWriter(abc.ABC):
    """The fleet's instances, nodes and rules, for the catalog that merges them into its snapshots."""

    remote: RemoteView
    _table: InstanceTable
    _local_listeners: list[Callable[[Collection[Key]], None]]
    # The node map snapshots get: ours over the fleet's, rebuilt only when either changes.
    _nodes_basis: tuple[int, tuple[Node, ...]]
    _nodes: Mapping[str, Node]

    @abc.abstractmethod
    def _publish_change(self) -> None:
        """Publish what changed (the catalog's; batched when a batch is open)."""

    @abc.abstractmethod
    def _reload_rules(self) -> None:
        """Rebuild the rule book: stored, config-file and fleet rules."""

    def apply_remote(self, batch: RemoteBatch) -> RemoteOutcome:
        """Take what other nodes published (or a fleet rule) as one snapshot; never fails on content.

        The values were decoded and validated by the caller; here they are only
        held, bounded (registry.remote) and merged into the next snapshot.
        """
        outcome = self.remote.apply(batch)
        if outcome.rules_changed:
            self._reload_rules()
        if outcome.changed:
            self._publish_change()
        return outcome

    def follow_local(self, listener: Callable[[Collection[Key]], None]) -> None:
        """Call `listener(keys)` after each snapshot that changed this daemon's own instances
        (their keys; the entries are in the snapshot) or the local node's record (keys may be empty)."""
        self._local_listeners.append(listener)

    def owned_keys(self) -> Collection[Key]:
        """The keys of every instance this daemon owns (files and API), whatever node they name."""
        return self._table.instances.keys()

    def _merged_nodes(self) -> Mapping[str, Node]:
        if not self.remote.nodes:
            return self._table.nodes
        basis = (self.remote.nodes_version, tuple(self._table.nodes.values()))
        if basis != self._nodes_basis:
            self._nodes_basis = basis
            self._nodes = {**self.remote.nodes, **self._table.nodes}
        return self._nodes
