"""The catalog: immutable snapshots for readers, one writer that builds them.

Every source of change (YAML files, API registrations, health results, node state,
and later the cluster) goes through `Catalog`, which validates conflicts, commits to
SQLite, then builds a complete new `Snapshot` and swaps it in with one assignment.
Readers take `catalog.current` once per request and never see a half-applied change;
nothing a reader touches is ever mutated after publication (the `memo` dict is the
one exception: readers cache derived answers in it, keyed so that they never clash).

Builds are incremental: only the names a change touched are regrouped, the rest of
the previous snapshot's per-name tuples are shared, which is what keeps a one-file
change cheap on a 30,000-instance catalog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping

from registry.conflicts import ConflictIndex, RuleBook
from registry.ratelog import RateLimitedLog
from registry.errors import (
    ConflictError,
    DuplicateIdError,
    NotFoundError,
    Problem,
    ReadOnlyError,
    StorageError,
)
from registry.model import (
    CheckState,
    ConflictRule,
    ConflictType,
    Entry,
    Instance,
    Node,
    NodeIdentity,
    NodeState,
    Status,
    worst,
)
from registry.store import HealthRow, Store

Key = tuple[str, str]
Listener = Callable[["Snapshot", "Snapshot"], None]
NOT_CHECKED = "not checked yet"

log = logging.getLogger("pilotfish.catalog")

# Events and health rows a refused write (a full or read-only disk) leaves waiting for
# the next try; past this the oldest go, and the log says how many.
UNSAVED_LIMIT = 10_000
# A refused write is tried again with the first change this long after it, not with
# every change: on a full disk each try costs a failed transaction.
UNSAVED_RETRY = 1.0


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One immutable version of the catalog. `index` grows by one per change."""

    index: int
    domain: str
    local_node: str
    entries_by_key: Mapping[Key, Entry]
    entries_by_name: Mapping[str, tuple[Entry, ...]]
    answerable_by_name: Mapping[str, tuple[Entry, ...]]
    nodes: Mapping[str, Node]
    rules: tuple[ConflictRule, ...]
    file_errors: Mapping[str, tuple[Problem, ...]]
    answer_statuses: frozenset[Status]
    built: float = field(default_factory=time.time)
    memo: dict[Any, Any] = field(default_factory=dict)

    def entry(self, instance_id: str, node: str | None = None) -> Entry | None:
        return self.entries_by_key.get((node or self.local_node, instance_id))

    def answerable(self, name: str) -> tuple[Entry, ...]:
        """Discoverable instances in an answerable state: what DNS serves."""
        return self.answerable_by_name.get(name, ())

    def service_names(self) -> list[str]:
        """Names with at least one discoverable instance, sorted."""
        return sorted(
            name for name, entries in self.entries_by_name.items() if any(e.instance.discoverable for e in entries)
        )

    def query(
        self,
        name: str,
        tags: Iterable[str] = (),
        version: str | None = None,
        node: str | None = None,
        statuses: frozenset[Status] | None = frozenset({Status.PASSING}),
        meta: Mapping[str, str] | None = None,
    ) -> list[Entry]:
        """Discoverable instances of `name` matching every filter given.

        `tags` must all be present; `statuses=None` means any status.
        """
        wanted_tags = tuple(tags)
        out = []
        for entry in self.entries_by_name.get(name, ()):
            instance = entry.instance
            if not instance.discoverable:
                continue
            if statuses is not None and entry.status not in statuses:
                continue
            if version is not None and instance.version != version:
                continue
            if node is not None and instance.node != node:
                continue
            if wanted_tags and not all(tag in instance.tags for tag in wanted_tags):
                continue
            if meta and any(instance.meta.get(k) != v for k, v in meta.items()):
                continue
            out.append(entry)
        return out

    def counts_by_status(self) -> dict[str, int]:
        counts = {status.value: 0 for status in Status}
        for entry in self.entries_by_key.values():
            counts[entry.status.value] += 1
        return counts


class Catalog:
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
        self._rules = RuleBook()
        self._conflicts = ConflictIndex(self._rules)
        self._reload_rules()
        self._instances: dict[Key, Instance] = {}
        self._entries: dict[Key, Entry] = {}
        self._keys_by_name: dict[str, set[Key]] = {}
        # Per file, its keys in file order (a dict as an ordered set: O(1) removal).
        self._keys_by_file: dict[str, dict[Key, None]] = {}
        self._file_errors: dict[str, tuple[Problem, ...]] = {}
        self._check_states: dict[Key, dict[str, CheckState]] = {}
        self._check_owner: dict[str, Key] = {}
        self._maintenance: dict[Key, str] = {}
        self._expires_at: dict[Key, float] = {}
        self._nodes: dict[str, Node] = {identity.node: Node(identity.node, identity.address)}
        self._saved_health = self._load_saved_health()
        # Instances dropped since the last snapshot, with their check states and
        # maintenance: one that comes back under the same key before the snapshot is
        # published (`mv a.yaml b.yaml`, an instance moved between files) takes them
        # up again, so a move never looks like a new instance to DNS.
        self._departed: dict[Key, tuple[Instance, dict[str, CheckState], str | None]] = {}
        self._dirty: set[str] = set()
        self._batch_depth = 0
        # A batch that changed nothing publishes nothing: a new index would wake
        # every blocking query and empty every reader cache for no reason.
        self._changed_in_batch = False
        self._pending_events: list[tuple[str, str, dict[str, Any]]] = []
        self._pending_health: list[HealthRow] = []
        self._save_retry_at = 0.0
        self._unsaved_log = RateLimitedLog(
            log, logging.ERROR, "events and health states not saved; the catalog goes on without them"
        )
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()
        self.current = self._build(None, index=1, dirty=set())

    # -- reading and waiting ---------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(old, new)` after every swap (health runner, metrics, cluster)."""
        self._listeners.append(listener)

    async def wait_past(self, index: int, timeout: float) -> Snapshot:
        """Return once the snapshot index moves past `index`, or when `timeout` runs out.

        Only the current index waits. A smaller one has been passed already; a larger
        one comes from before a restart (the index starts again at 1) and would
        otherwise hold its client for the whole timeout.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while self.current.index == index:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            event = self._changed
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                break
        return self.current

    def instance(self, instance_id: str, node: str | None = None) -> Instance | None:
        return self._instances.get((node or self.identity.node, instance_id))

    def entry(self, instance_id: str, node: str | None = None) -> Entry | None:
        """The writer's latest entry, including check output not yet in a snapshot."""
        return self._entries.get((node or self.identity.node, instance_id))

    def check_owner(self, check_id: str) -> Instance | None:
        key = self._check_owner.get(check_id)
        return self._instances.get(key) if key else None

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
        seen: set[Key] = set()
        for instance in instances:
            if instance.key in seen:
                self._reject_file(path, DuplicateIdError(instance.id, instance.node, f"file:{path}"))
            seen.add(instance.key)
            holder = self._instances.get(instance.key)
            if holder is not None and holder.source != f"file:{path}":
                self._reject_file(path, DuplicateIdError(instance.id, instance.node, holder.source))
            self._reject_if_check_taken(path, instance, old_keys)
        # Only what the edit changed is swapped: a one-line edit of a 20,000-instance
        # file costs one instance's work, plus one pass to compare.
        successors = {instance.key: instance for instance in instances}
        old = [self._instances[key] for key in old_keys]
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
                self._publish_change(set())
            return
        for instance in gone:
            self._drop(instance, successors.get(instance.key))
        for instance in arriving:
            self._put(instance)
        self._file_errors.pop(path, None)
        self._pending_events.append(
            ("registration", f"file:{path}", {"path": path, "instances": [i.id for i in instances]})
        )
        self._publish_change(set())

    def reject_file(self, path: str, problems: list[Problem]) -> None:
        """Record a file that failed to parse; what it registered before stays."""
        self._file_errors[path] = tuple(problems)
        self._pending_events.append(("rejection", f"file:{path}", {"problems": [p.to_dict() for p in problems]}))
        self._publish_change(set())

    def _reject_file(self, path: str, error: ConflictError | DuplicateIdError) -> None:
        field_name = "id" if isinstance(error, DuplicateIdError) else "name"
        problem = Problem(path, None, field_name, str(error))
        self.reject_file(path, [problem])
        raise error

    def _reject_if_check_taken(self, path: str, instance: Instance, replacing: Mapping[Key, None]) -> None:
        for check in instance.checks:
            owner = self._check_owner.get(check.id)
            if owner is not None and owner != instance.key and owner not in replacing:
                holder = self._instances[owner].source
                self._reject_file(path, DuplicateIdError(check.id, instance.node, holder))

    def remove_file(self, path: str) -> None:
        keys = self._keys_by_file.pop(path, {})
        had_error = self._file_errors.pop(path, None) is not None
        if not keys and not had_error:
            return
        old = [self._instances[key] for key in keys]
        self._conflicts.replace(old, [])
        for instance in old:
            self._drop(instance)
        if keys:
            self._pending_events.append(("deregistration", f"file:{path}", {"path": path, "instances": [k[1] for k in keys]}))
        self._publish_change(set())

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
                    self._put(instance)
                except Exception as exc:  # a stored row that no longer validates must not stop the daemon
                    failures.append(f"stored registration {body.get('id')!r}: {exc}")
        return failures

    def register(self, instance: Instance) -> tuple[Entry, bool]:
        """Register or replace an API instance. Returns (entry, created).

        Committed to SQLite before the snapshot swap, so when this returns the
        write is durable and visible to every reader at once.
        """
        existing = self._instances.get(instance.key)
        if existing is not None and existing.source != "api":
            raise DuplicateIdError(instance.id, instance.node, existing.source)
        for check in instance.checks:
            owner = self._check_owner.get(check.id)
            if owner is not None and owner != instance.key:
                raise DuplicateIdError(check.id, instance.node, self._instances[owner].source)
        old = [existing] if existing is not None else []
        conflict = self._conflicts.replace(old, [instance])
        if conflict is not None:
            self.store.append_event("rejection", f"api:{instance.id}", {"error": conflict.to_dict()})
            raise conflict
        kind = "registration" if existing is None else "update"
        try:
            self.store.save_registration(
                instance.node, instance.id, stored_body(instance), (kind, f"api:{instance.id}", stored_body(instance))
            )
        except Exception:
            self._conflicts.replace([instance], old)
            raise
        if existing is not None:
            self._drop(existing, instance)
        self._put(instance)
        self._publish_change(set())
        return self._entries[instance.key], existing is None

    def update(self, instance: Instance) -> Entry:
        """Replace an existing API instance (PUT); unknown or file-owned ids are refused."""
        existing = self._instances.get(instance.key)
        if existing is None:
            raise NotFoundError("instance", instance.id)
        if existing.source != "api":
            raise ReadOnlyError(instance.id, existing.source)
        entry, _ = self.register(instance)
        return entry

    def deregister(self, instance_id: str, node: str | None = None, reason: str = "api") -> Instance:
        key = (node or self.identity.node, instance_id)
        existing = self._instances.get(key)
        if existing is None:
            raise NotFoundError("instance", instance_id)
        if existing.source != "api":
            raise ReadOnlyError(instance_id, existing.source)
        self.store.delete_registration(key[0], key[1], ("deregistration", f"api:{instance_id}", {"reason": reason}))
        self._conflicts.replace([existing], [])
        self._drop(existing)
        self._publish_change(set())
        return existing

    def expire(self, instance_id: str, node: str | None, reason: str) -> Instance | None:
        """Remove an instance whatever its source (deregister_after, instance TTL).

        A file instance stays removed until its file changes again.
        """
        key = (node or self.identity.node, instance_id)
        existing = self._instances.get(key)
        if existing is None:
            return None
        if existing.source == "api":
            return self.deregister(instance_id, node, reason)
        path = existing.source.removeprefix("file:")
        self._keys_by_file.get(path, {}).pop(key, None)
        self._conflicts.replace([existing], [])
        self._drop(existing)
        self._pending_events.append(("deregistration", existing.source, {"id": instance_id, "reason": reason}))
        self._publish_change(set())
        return existing

    def expire_due(self, now: float | None = None) -> list[Instance]:
        """Remove instances whose `ttl` ran out since they were last (re-)registered.

        The daemon calls this about once a second; registering the same instance
        again (or rewriting its file) is the refresh.
        """
        now = time.monotonic() if now is None else now
        due = [key for key, deadline in self._expires_at.items() if deadline <= now]
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
        self._publish_change(set())
        return rule

    def delete_rule(self, rule_id: int) -> ConflictRule:
        rule = self.store.delete_rule(rule_id)
        self._reload_rules()
        self._publish_change(set())
        return rule

    def set_config_rules(self, rules: Iterable[ConflictRule]) -> None:
        """Replace the config file's rules (SIGHUP); what is registered stays registered."""
        self._config_rules = tuple(rules)
        self._reload_rules()
        self._publish_change(set())

    def _reload_rules(self) -> None:
        book = RuleBook(self.store.rules())
        for rule in self._config_rules:
            book.add(rule)
        self._rules = book
        self._conflicts.rules = book

    def rules(self) -> list[ConflictRule]:
        return list(self._rules)

    # -- health and maintenance --------------------------------------------

    def set_check_state(self, instance: Instance, state: CheckState, event: dict[str, Any] | None = None) -> bool:
        """Record a check result; builds a snapshot only when the instance's status changes.

        Returns True when the instance's status changed.
        """
        key = instance.key
        if self._instances.get(key) != instance:
            return False  # a result for a version of the instance that has since changed or gone
        states = self._check_states.setdefault(key, {})
        previous = states.get(state.check_id)
        states[state.check_id] = state
        before = self._entries[key].status
        entry = self._make_entry(self._instances[key])
        check_changed = previous is None or previous.status is not state.status
        if check_changed:
            detail = {"check": state.check_id, "from": previous.status.value if previous else None, "to": state.status.value, "output": state.output}
            if event:
                detail.update(event)
            # Written with the snapshot that shows it (one transaction per publish),
            # so a burst of check results at start-up costs one fsync, not thousands.
            self._pending_health.append(
                HealthRow(key[0], key[1], state.check_id, state.status, state.output, state.updated)
            )
            self._pending_events.append(("health", key[1], detail))
        if entry.status is before and not check_changed:
            # Same status, new output: keep the entry current without a new snapshot;
            # marking the name dirty makes the next snapshot carry it in every view.
            self._entries[key] = entry
            self._dirty.add(instance.name)
            return False
        self._entries[key] = entry
        self._publish_change({instance.name})
        return entry.status is not before

    def set_instance_maintenance(self, instance_id: str, reason: str | None, node: str | None = None) -> Entry:
        key = (node or self.identity.node, instance_id)
        instance = self._instances.get(key)
        if instance is None:
            raise NotFoundError("instance", instance_id)
        if reason is None:
            self._maintenance.pop(key, None)
        else:
            self._maintenance[key] = reason
        self._pending_events.append(("maintenance", instance_id, {"on": reason is not None, "reason": reason}))
        self._entries[key] = self._make_entry(instance)
        self._publish_change({instance.name})
        return self._entries[key]

    def set_node_state(self, state: NodeState, reason: str = "") -> Node:
        """Record the local node's state; every local instance's entry follows it."""
        node = self._nodes[self.identity.node]
        if node.state is state and node.reason == reason:
            return node
        self._nodes[self.identity.node] = Node(node.name, node.address, state, reason)
        self._pending_events.append(("node", node.name, {"from": node.state.value, "to": state.value, "reason": reason}))
        touched = set()
        for key, instance in self._instances.items():
            if key[0] == self.identity.node:
                self._entries[key] = self._make_entry(instance)
                touched.add(instance.name)
        self._publish_change(touched)
        return self._nodes[self.identity.node]

    # -- internals -----------------------------------------------------------

    def _load_saved_health(self) -> dict[Key, dict[str, CheckState]]:
        saved: dict[Key, dict[str, CheckState]] = {}
        for row in self.store.health():
            saved.setdefault((row.node, row.instance_id), {})[row.check_id] = CheckState(
                row.check_id, row.status, row.output, row.updated
            )
        return saved

    def _put(self, instance: Instance) -> None:
        key = instance.key
        self._instances[key] = instance
        self._keys_by_name.setdefault(instance.name, set()).add(key)
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
        self._check_states[key] = {cid: s for cid, s in states.items() if cid in wanted}
        for check in instance.checks:
            self._check_owner[check.id] = key
        if instance.node not in self._nodes:
            self._nodes[instance.node] = Node(instance.node, instance.address)
        if instance.ttl is not None:
            self._expires_at[key] = time.monotonic() + instance.ttl
        self._entries[key] = self._make_entry(instance)
        self._dirty.add(instance.name)
        self._changed_in_batch = True

    def _drop(self, instance: Instance, successor: Instance | None = None) -> None:
        """Forget `instance`. A `successor` under the same key (a re-registration, a changed
        file) keeps its maintenance and the results of every check it did not change."""
        key = instance.key
        del self._instances[key]
        del self._entries[key]
        names = self._keys_by_name[instance.name]
        names.discard(key)
        if not names:
            del self._keys_by_name[instance.name]
        for check in instance.checks:
            if self._check_owner.get(check.id) == key:
                del self._check_owner[check.id]
        states = self._check_states.pop(key, {})
        if successor is None:
            self._departed[key] = (instance, states, self._maintenance.pop(key, None))
        else:
            unchanged = {check.id for check in instance.checks if check in successor.checks}
            self._check_states[key] = {cid: state for cid, state in states.items() if cid in unchanged}
        self._expires_at.pop(key, None)
        self._dirty.add(instance.name)
        self._changed_in_batch = True

    def _make_entry(self, instance: Instance) -> Entry:
        key = instance.key
        states = self._check_states.get(key, {})
        checks = tuple(
            states.get(check.id) or CheckState(check.id, Status.CRITICAL, NOT_CHECKED) for check in instance.checks
        )
        reason = self._maintenance.get(key)
        node = self._nodes.get(instance.node)
        if node is not None and node.state is NodeState.MAINTENANCE:
            status, reason = Status.MAINTENANCE, reason or f"node {node.name} in maintenance: {node.reason}"
        elif reason is not None:
            status = Status.MAINTENANCE
        else:
            status = worst([c.status for c in checks])
        return Entry(instance, status, checks, reason)

    def _publish_change(self, names: set[str]) -> None:
        self._dirty |= names
        self._changed_in_batch = True
        if self._batch_depth == 0:
            self._publish()

    def _publish(self) -> None:
        if (self._pending_events or self._pending_health) and time.monotonic() >= self._save_retry_at:
            self._save_pending()
        old = self.current
        new = self._build(old, old.index + 1, self._dirty)
        self._dirty = set()
        self._departed.clear()
        self._changed_in_batch = False
        self.current = new
        self._changed.set()
        self._changed = asyncio.Event()
        for listener in self._listeners:
            listener(old, new)

    def _save_pending(self) -> None:
        """Write the events and health rows of this change, or keep them for the next.

        What they record has already happened (a file applied, a check failed), so a
        refused write must not stop the snapshot that shows it: SQLite only keeps the
        history and the health states restored at the next start. API registrations
        never wait here: `register` commits them before it changes anything.
        """
        events, self._pending_events = self._pending_events, []
        health, self._pending_health = self._pending_health, []
        try:
            self.store.write_batch(events, health)
        except StorageError as exc:
            self._pending_events = events[-UNSAVED_LIMIT:]
            self._pending_health = health[-UNSAVED_LIMIT:]
            dropped = len(events) + len(health) - len(self._pending_events) - len(self._pending_health)
            self._save_retry_at = time.monotonic() + UNSAVED_RETRY
            waiting = len(self._pending_events) + len(self._pending_health)
            self._unsaved_log.note(error=str(exc), fault=exc.fault.value, waiting=waiting, dropped=dropped)

    def _build(self, previous: Snapshot | None, index: int, dirty: set[str]) -> Snapshot:
        # mappingproxy.copy() copies the dict underneath in C; dict(proxy) would walk
        # it key by key through the mapping protocol, ten times slower.
        by_name: dict[str, tuple[Entry, ...]] = previous.entries_by_name.copy() if previous else {}  # type: ignore[attr-defined]
        answerable: dict[str, tuple[Entry, ...]] = previous.answerable_by_name.copy() if previous else {}  # type: ignore[attr-defined]
        for name in dirty:
            keys = self._keys_by_name.get(name)
            if not keys:
                by_name.pop(name, None)
                answerable.pop(name, None)
                continue
            entries = tuple(self._entries[key] for key in sorted(keys))
            by_name[name] = entries
            answerable[name] = tuple(
                e for e in entries if e.instance.discoverable and e.status in self.answer_statuses
            )
        return Snapshot(
            index=index,
            domain=self.domain,
            local_node=self.identity.node,
            entries_by_key=MappingProxyType(dict(self._entries)),
            entries_by_name=MappingProxyType(by_name),
            answerable_by_name=MappingProxyType(answerable),
            nodes=MappingProxyType(dict(self._nodes)),
            rules=tuple(self._rules),
            file_errors=MappingProxyType(dict(self._file_errors)),
            answer_statuses=self.answer_statuses,
        )


def stored_body(instance: Instance) -> dict[str, Any]:
    """What SQLite keeps for an API instance: the body that re-creates it.

    A defaulted address is left out so that it follows the node's address if
    the node is renumbered between restarts.
    """
    body = instance.registration_dict()
    if instance.address_is_node:
        del body["address"]
    return body
