"""The catalog's one writer: every change goes through `Catalog`, which publishes snapshots.

Every source of change (YAML files, API registrations, health results, node state,
maintenance windows, and the fleet) calls `Catalog`, which checks ownership and conflicts,
commits to SQLite where a client waits on it, and then publishes a complete new
`Snapshot` (registry.snapshot) with one assignment. Readers import registry.snapshot,
never this module. The bookkeeping of one instance's change lives in
`InstanceTable` (registry.instances), so that every source keeps the same books.

Two concerns live in parts of their own: check results and maintenance holds
(registry.catalog_health) and the fleet's door in and out (registry.catalog_fleet).
Where this node owns an instance under the same key as the fleet, ours is served,
and fleet conflict rules join the rule book.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Collection, Iterable, Iterator, Mapping

from registry import events
from registry.catalog_fleet import FleetWriter
from registry.catalog_health import HealthWriter
from registry.conflicts import ConflictIndex, RuleBook
from registry.errors import ConflictError, DuplicateIdError, NotFoundError, Problem, ReadOnlyError, refusal_problem
from registry.instances import InstanceTable
from registry.journal import Journal
from registry.model import (
    ConflictRule,
    ConflictType,
    Entry,
    Instance,
    Node,
    NodeIdentity,
    Source,
    SourceKind,
    Status,
)
from registry.remote import RemoteView
from registry.snapshot import Change, Key, Snapshot, SnapshotHolder
from registry.states import NodeState, Trigger
from registry.store import Store


class Catalog(HealthWriter, FleetWriter, SnapshotHolder):
    """The one writer. Not thread-safe: call it from the daemon's event loop only."""

    def __init__(
        self,
        store: Store,
        identity: NodeIdentity,
        domain: str = "internal",
        config_rules: Iterable[ConflictRule] = (),
        answer_warning: bool = False,
    ) -> None:
        self.store = store
        self.identity = identity
        self.domain = domain.strip(".").lower()
        self.answer_statuses = frozenset({Status.PASSING, Status.WARNING} if answer_warning else {Status.PASSING})
        self._config_rules = tuple(config_rules)
        self.remote = RemoteView(identity.node)
        self._rules = RuleBook()
        self._conflicts = ConflictIndex(self._rules)
        self._reload_rules()
        self._table = InstanceTable(identity, store.health())
        # Per file, its keys in file order (a dict as an ordered set: O(1) removal).
        self._keys_by_file: dict[str, dict[Key, None]] = {}
        self._file_errors: dict[str, tuple[Problem, ...]] = {}
        self._batch_depth = 0
        # A batch that changed nothing publishes nothing: a new index would wake
        # every blocking query and empty every reader cache for no reason.
        self._changed_in_batch = False
        self._journal = Journal(store)
        self._resources = (NodeState.ONLINE, "")
        self._local_listeners: list[Callable[[Collection[Key]], None]] = []
        self._nodes_basis = (-1, ())
        self._nodes = {}
        self._told_node: Node | None = None
        change, _ = self._change()
        super().__init__(Snapshot.first(self.domain, identity.node, self.answer_statuses, change))

    # -- the writer's view -------------------------------------------------

    def instance(self, instance_id: str, node: str | None = None) -> Instance | None:
        return self._table.instances.get((node or self.identity.node, instance_id))

    def entry(self, instance_id: str, node: str | None = None) -> Entry | None:
        """The writer's latest entry, including check output not yet in a snapshot."""
        return self._table.entries.get((node or self.identity.node, instance_id))

    def check_owner(self, check_id: str) -> Instance | None:
        key = self._table.check_owner(check_id)
        return self._table.instances.get(key) if key else None

    # -- batching --------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Apply several changes as one snapshot (start-up, SIGHUP, a burst of files)."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0 and self._changed_in_batch:
                self._publish()

    # -- files -----------------------------------------------------------

    def apply_file(self, path: str, instances: list[Instance]) -> None:
        """Make `path` register exactly `instances`, or raise and change nothing.

        Raises DuplicateIdError when an id is held by another source, ConflictError
        when an incumbent is in the way; the file's previous instances stay.
        """
        old_keys = self._keys_by_file.get(path, {})
        source = Source.file(path)
        seen: set[Key] = set()
        for instance in instances:
            if instance.key in seen:
                self._reject_file(path, DuplicateIdError(instance.id, instance.node, source))
            seen.add(instance.key)
            holder = self._table.instances.get(instance.key)
            if holder is not None and holder.source != source:
                self._reject_file(path, DuplicateIdError(instance.id, instance.node, holder.source))
            self._reject_if_check_taken(path, instance, old_keys)
        # Only what the edit changed is swapped: a one-line edit of a 20,000-instance
        # file costs one instance's work, plus one pass to compare.
        successors = {instance.key: instance for instance in instances}
        old = [self._table.instances[key] for key in old_keys]
        gone = [instance for instance in old if successors.get(instance.key) != instance]
        kept = {instance.key for instance in old} - {instance.key for instance in gone}
        arriving = [instance for instance in instances if instance.key not in kept]
        if gone or arriving:
            conflict = self._conflicts.replace(gone, arriving)
            if conflict is not None:
                self._reject_file(path, conflict)
        self._keys_by_file[path] = dict.fromkeys(successors)
        if not instances:
            del self._keys_by_file[path]
        if not gone and not arriving:
            if self._file_errors.pop(path, None) is not None:
                self._publish_change()
            return
        for instance in gone:
            self._table.drop(instance, successors.get(instance.key))
        for instance in arriving:
            self._table.put(instance)
        self._file_errors.pop(path, None)
        self._journal.record(events.file_applied(path, [i.id for i in instances]))
        self._publish_change()

    def reject_file(self, path: str, problems: list[Problem]) -> None:
        """Record a file that failed to parse; what it registered before stays."""
        self._file_errors[path] = tuple(problems)
        self._journal.record(events.file_rejected(path, problems))
        self._publish_change()

    def _reject_file(self, path: str, error: ConflictError | DuplicateIdError) -> None:
        self.reject_file(path, [refusal_problem(path, error)])
        raise error

    def _reject_if_check_taken(self, path: str, instance: Instance, replacing: Mapping[Key, None]) -> None:
        for check in instance.checks:
            owner = self._table.check_owner(check.id)
            if owner is not None and owner != instance.key and owner not in replacing:
                holder = self._table.instances[owner].source
                self._reject_file(path, DuplicateIdError(check.id, instance.node, holder))

    def remove_file(self, path: str) -> None:
        keys = self._keys_by_file.pop(path, {})
        had_error = self._file_errors.pop(path, None) is not None
        if not keys and not had_error:
            return
        old = [self._table.instances[key] for key in keys]
        self._conflicts.replace(old, [])
        for instance in old:
            self._table.drop(instance)
        if keys:
            self._journal.record(events.file_removed(path, [key[1] for key in keys]))
        self._publish_change()

    def files(self) -> list[str]:
        return sorted(set(self._keys_by_file) | set(self._file_errors))

    # -- API registrations -------------------------------------------------

    def load_api_registrations(self, parse: Callable[[dict[str, Any]], Instance]) -> list[str]:
        """Restore stored API registrations at start; returns messages for any that no longer load."""
        failures = []
        with self.batch():
            for body in self.store.registrations():
                try:
                    instance = parse(body)
                    conflict = self._conflicts.replace([], [instance])
                    if conflict is not None:
                        raise conflict
                    self._table.put(instance)
                    self._publish_change()
                except Exception as exc:  # a stored row that no longer validates must not stop the daemon
                    failures.append(f"stored registration {body.get('id')!r}: {exc}")
        return failures

    def register(self, instance: Instance) -> tuple[Entry, bool]:
        """Register or replace an API instance. Returns (entry, created).

        Committed to SQLite before the snapshot swap, so when this returns the
        write is durable and visible to every reader at once.
        """
        existing = self._table.instances.get(instance.key)
        if existing is not None and existing.source.kind is not SourceKind.API:
            raise DuplicateIdError(instance.id, instance.node, existing.source)
        for check in instance.checks:
            owner = self._table.check_owner(check.id)
            if owner is not None and owner != instance.key:
                raise DuplicateIdError(check.id, instance.node, self._table.instances[owner].source)
        old = [existing] if existing is not None else []
        conflict = self._conflicts.replace(old, [instance])
        if conflict is not None:
            self.store.append_event(events.api_refused(instance.id, conflict))
            raise conflict
        body = stored_body(instance)
        try:
            self.store.save_registration(
                instance.node, instance.id, body, events.api_registered(instance.id, body, replaced=existing is not None)
            )
        except Exception:
            self._conflicts.replace([instance], old)
            raise
        if existing is not None:
            self._table.drop(existing, instance)
        self._table.put(instance)
        self._publish_change()
        return self._table.entries[instance.key], existing is None

    def update(self, instance: Instance) -> Entry:
        """Replace an existing API instance (PUT); unknown or file-owned ids are refused."""
        existing = self._table.instances.get(instance.key)
        if existing is None:
            raise NotFoundError("instance", instance.id)
        if existing.source.kind is not SourceKind.API:
            raise ReadOnlyError(instance.id, existing.source)
        entry, _ = self.register(instance)
        return entry

    def deregister(self, instance_id: str, node: str | None = None, reason: str = "api") -> Instance:
        key = (node or self.identity.node, instance_id)
        existing = self._table.instances.get(key)
        if existing is None:
            raise NotFoundError("instance", instance_id)
        if existing.source.kind is not SourceKind.API:
            raise ReadOnlyError(instance_id, existing.source)
        self.store.delete_registration(key[0], key[1], events.api_deregistered(instance_id, reason))
        self._conflicts.replace([existing], [])
        self._table.drop(existing)
        self._publish_change()
        return existing

    def expire(self, instance_id: str, node: str | None, reason: str) -> Instance | None:
        """Remove an instance whatever its source (deregister_after, instance TTL).

        A file instance stays removed until its file changes again.
        """
        key = (node or self.identity.node, instance_id)
        existing = self._table.instances.get(key)
        if existing is None:
            return None
        if existing.source.kind is SourceKind.API:
            return self.deregister(instance_id, node, reason)
        self._keys_by_file.get(existing.source.path, {}).pop(key, None)
        self._conflicts.replace([existing], [])
        self._table.drop(existing)
        self._journal.record(events.expired(existing, reason))
        self._publish_change()
        return existing

    def expire_due(self, now: float | None = None) -> list[Instance]:
        """Remove instances whose `ttl` ran out since they were last (re-)registered.

        The daemon calls this about once a second; registering the same instance
        again (or rewriting its file) is the refresh.
        """
        now = time.monotonic() if now is None else now
        due = [key for key, deadline in self._table.expires_at.items() if deadline <= now]
        expired = []
        with self.batch():
            for key in due:
                removed = self.expire(key[1], key[0], "ttl expired")
                if removed is not None:
                    expired.append(removed)
        return expired

    # -- conflict rules ----------------------------------------------------

    def add_rule(self, a: str, b: str, type_: ConflictType, reason: str, source: str = "api") -> ConflictRule:
        rule = self.store.add_rule(a, b, type_, reason, source)
        self._reload_rules()
        self._publish_change()
        return rule

    def delete_rule(self, rule_id: int) -> ConflictRule:
        rule = self.store.delete_rule(rule_id)
        self._reload_rules()
        self._publish_change()
        return rule

    def set_config_rules(self, rules: Iterable[ConflictRule]) -> None:
        """Replace the config file's rules (SIGHUP); what is registered stays registered."""
        self._config_rules = tuple(rules)
        self._reload_rules()
        self._publish_change()

    def _reload_rules(self) -> None:
        book = RuleBook(self.store.rules())
        for rule in self._config_rules:
            book.add(rule)
        for rule in self.remote.rules.values():
            book.add(rule)
        self._rules = book
        self._conflicts.rules = book

    def note_config_change(self) -> None:
        """A config key was written: a new index wakes the blocking queries on config reads."""
        self._publish_change()

    def rules(self) -> list[ConflictRule]:
        return list(self._rules)

    # -- internals -----------------------------------------------------------

    def _publish_change(self) -> None:
        self._changed_in_batch = True
        if self._batch_depth == 0:
            self._publish()

    def _publish(self) -> None:
        # An instance removed in this change may have been the last one the node's
        # recovery waited for.
        self._settle_node(Trigger.HEALTH)
        self._journal.flush()
        self._changed_in_batch = False
        change, local_keys = self._change()
        self.swap(self.current.successor(change))
        node = self._table.nodes[self.identity.node]
        if self._local_listeners and (local_keys or node is not self._told_node):
            self._told_node = node
            for listener in self._local_listeners:
                listener(local_keys)

    def _change(self) -> tuple[Change, Collection[Key]]:
        """The next snapshot's change, and the keys of it this daemon owns."""
        table = self._table
        entries = table.take_changes()
        local_keys = tuple(entries)
        remote = self.remote
        if remote.entries:
            # One of ours leaving uncovers a fleet instance under the same key.
            for key in local_keys:
                if entries[key] is None and key in remote.entries:
                    entries[key] = remote.entries[key]
        for key, entry in remote.take_changes().items():
            if key not in table.instances:
                entries[key] = entry
        return Change(entries, self._merged_nodes(), tuple(self._rules), self._file_errors), local_keys


def stored_body(instance: Instance) -> dict[str, Any]:
    """What SQLite keeps for an API instance: the body that re-creates it.

    A defaulted address is left out so that it follows the node's address if
    the node is renumbered between restarts.
    """
    body = instance.registration_dict()
    if instance.address_is_node:
        del body["address"]
    return body
