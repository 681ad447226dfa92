"""The catalog as readers see it: immutable snapshots, and the holder they are published in.

DNS, HTTP, the health runner and (in fleet mode) the publisher read the catalog
only through here. A reader takes `holder.current` once and uses that snapshot for
the whole request; nothing in a published snapshot is ever mutated (the `memo` dict
is the one exception: readers cache derived answers in it, keyed so that they never
clash). This module never touches SQLite, YAML or the writer's own state.

A change costs what changed, not what the catalog holds (DESIGN.md, "Data flow": a
fleet daemon holds 100,000 instances that change hundreds of times a second). The
large maps are persistent (`immutables.Map`, a HAMT): the next snapshot is this one
with the changed keys set, O(log n) each, and shares every untouched node with it.
Only the names a change touched are regrouped, each by a binary search into its
sorted tuple; an untouched name keeps its very tuple, which is how DNS and HTTP carry
answers over a swap. The figures readers would otherwise count by walking the
catalog (instances by status, services, tags) are kept up to date by the same
delta, and each snapshot records which keys it changed, so that swap listeners
follow the change and not the catalog.
"""

from __future__ import annotations

import asyncio
import bisect
import time
import weakref
from dataclasses import dataclass, field
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from immutables import Map, MapMutation

from registry.errors import Problem
from registry.model import ConflictRule, Entry, Node, Status

Key = tuple[str, str]
Listener = Callable[["Snapshot", "Snapshot"], None]
Counts = Mapping[Status, int]

# A group sorted by key takes a changed entry by binary search and one C-level move
# of the tuple's pointers; past this many changes in one name (a start-up, a big
# file replaced) regrouping it whole by sorting is the cheaper way.
REGROUP_WHOLE_AT = 512
_key_of: Callable[[Entry], Key] = attrgetter("instance.key")
_NO_COUNTS: Counts = MappingProxyType({status: 0 for status in Status})


@dataclass(frozen=True)
class Change:
    """What the writer changed since the last snapshot, handed to `Snapshot.successor`.

    `entries` holds only the keys that changed (None: the instance is gone); the
    smaller maps are handed over whole, as they are now.
    """

    entries: Mapping[Key, Entry | None]
    nodes: Mapping[str, Node]
    rules: tuple[ConflictRule, ...]
    file_errors: Mapping[str, tuple[Problem, ...]]


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One immutable version of the catalog. `index` grows by one per change.

    `discoverable_names` maps each name with a discoverable instance to how many it
    has; `discoverable_tags` does the same for the lower-cased tags of discoverable
    instances. `status_counts` counts every instance by status, `local_status_counts`
    and `local_check_counts` those of this node and their checks. `changed_keys` are
    the keys whose entry this snapshot set or removed over the one it was built from.
    """

    index: int
    domain: str
    local_node: str
    entries_by_key: Map[Key, Entry]
    entries_by_name: Map[str, tuple[Entry, ...]]
    answerable_by_name: Map[str, tuple[Entry, ...]]
    nodes: Mapping[str, Node]
    rules: tuple[ConflictRule, ...]
    file_errors: Mapping[str, tuple[Problem, ...]]
    answer_statuses: frozenset[Status]
    built: float = field(default_factory=time.time)
    memo: dict[Any, Any] = field(default_factory=dict)
    discoverable_names: Map[str, int] = field(default_factory=Map)
    discoverable_tags: Map[str, int] = field(default_factory=Map)
    status_counts: Counts = field(default_factory=lambda: _NO_COUNTS)
    local_status_counts: Counts = field(default_factory=lambda: _NO_COUNTS)
    local_check_counts: Counts = field(default_factory=lambda: _NO_COUNTS)
    changed_keys: tuple[Key, ...] = ()
    # The snapshot this one was built from, weakly: holding it would keep every
    # snapshot ever built alive, one behind the other.
    _base: weakref.ref[Snapshot] | None = field(default=None, repr=False)

    @classmethod
    def first(cls, domain: str, local_node: str, answer_statuses: frozenset[Status], change: Change) -> Snapshot:
        """Index 1: the catalog before anything was registered, or what `change` holds."""
        empty = cls(1, domain, local_node, Map(), Map(), Map(), MappingProxyType({}), (), MappingProxyType({}),
                    answer_statuses)
        return empty.successor(change, index=1)

    def successor(self, change: Change, index: int | None = None) -> Snapshot:
        """The next snapshot: this one with `change` applied (index + 1 unless given).

        O(k log n) for k changed entries in n; this snapshot is left as it was.
        """
        before_by_key = self.entries_by_key
        by_key = before_by_key.mutate()
        tally = _Tally(self)
        # The names an entry left or joined, with each one's changed entries by key.
        regroup: dict[str, dict[Key, Entry | None]] = {}
        for key, entry in change.entries.items():
            before = before_by_key.get(key)
            if before is not None:
                regroup.setdefault(before.instance.name, {})[key] = None
                tally.count(before, -1)
            if entry is None:
                if before is not None:
                    del by_key[key]
            else:
                by_key[key] = entry
                regroup.setdefault(entry.instance.name, {})[key] = entry
                tally.count(entry, 1)
        by_name = self.entries_by_name.mutate()
        answerable = self.answerable_by_name.mutate()
        statuses = self.answer_statuses
        for name, changed in regroup.items():
            entries = _updated(self.entries_by_name.get(name, ()), changed, None)
            if not entries:
                by_name.pop(name, None)
                answerable.pop(name, None)
                continue
            by_name[name] = entries
            served = _updated(
                self.answerable_by_name.get(name, ()), changed,
                lambda e: e.instance.discoverable and e.status in statuses,
            )
            if served:
                answerable[name] = served
            else:
                answerable.pop(name, None)
        return Snapshot(
            index=self.index + 1 if index is None else index,
            domain=self.domain,
            local_node=self.local_node,
            entries_by_key=by_key.finish(),
            entries_by_name=by_name.finish(),
            answerable_by_name=answerable.finish(),
            # The small maps arrive whole; an unchanged one keeps its object, so that
            # what readers derive from it (DNS's node table) carries over by identity.
            nodes=_kept_or_copied(self.nodes, change.nodes),
            rules=change.rules,
            file_errors=_kept_or_copied(self.file_errors, change.file_errors),
            answer_statuses=statuses,
            discoverable_names=tally.names.finish(),
            discoverable_tags=tally.tags.finish(),
            status_counts=MappingProxyType(tally.statuses),
            local_status_counts=MappingProxyType(tally.local_statuses),
            local_check_counts=MappingProxyType(tally.local_checks),
            changed_keys=tuple(change.entries),
            _base=weakref.ref(self),
        )

    def predecessor(self) -> Snapshot | None:
        """The snapshot this one was built from, while anything still holds it (its holder does
        while this one is current)."""
        return self._base() if self._base is not None else None

    def changed_since(self, old: Snapshot) -> Iterable[Key]:
        """Every key whose entry may differ between `old` and this snapshot.

        The recorded change when this snapshot was built from `old` (what a swap
        listener is handed); every key of both otherwise.
        """
        if self.predecessor() is old:
            return self.changed_keys
        return set(self.entries_by_key.keys()) | set(old.entries_by_key.keys())

    def entry(self, instance_id: str, node: str | None = None) -> Entry | None:
        return self.entries_by_key.get((node or self.local_node, instance_id))

    def answerable(self, name: str) -> tuple[Entry, ...]:
        """Discoverable instances in an answerable state: what DNS serves."""
        return self.answerable_by_name.get(name, ())

    def service_names(self) -> list[str]:
        """Names with at least one discoverable instance, sorted (once per snapshot)."""
        names: list[str] | None = self.memo.get(_SERVICE_NAMES)
        if names is None:
            names = self.memo[_SERVICE_NAMES] = sorted(self.discoverable_names.keys())
        return list(names)

    def service_count(self) -> int:
        """How many names have a discoverable instance, without listing them."""
        return len(self.discoverable_names)

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
        return {status.value: count for status, count in self.status_counts.items()}


_SERVICE_NAMES = ("snapshot", "service-names")


class _Tally:
    """The counts of a snapshot being built, moved by each changed entry."""

    def __init__(self, base: Snapshot) -> None:
        self.local_node = base.local_node
        self.names = base.discoverable_names.mutate()
        self.tags = base.discoverable_tags.mutate()
        self.statuses = dict(base.status_counts)
        self.local_statuses = dict(base.local_status_counts)
        self.local_checks = dict(base.local_check_counts)

    def count(self, entry: Entry, step: int) -> None:
        """Add (`step` 1) or take away (-1) what `entry` contributes."""
        instance = entry.instance
        self.statuses[entry.status] += step
        if instance.node == self.local_node:
            self.local_statuses[entry.status] += step
            for check in entry.checks:
                self.local_checks[check.status] += step
        if instance.discoverable:
            _add(self.names, instance.name, step)
            for tag in instance.tags:
                _add(self.tags, tag.lower(), step)


def _add(counts: MapMutation[str, int], key: str, step: int) -> None:
    """Move one count of a map being built; a count that reaches zero leaves it."""
    total = counts.get(key, 0) + step
    if total:
        counts[key] = total
    else:
        del counts[key]


def _updated(
    group: tuple[Entry, ...], changed: Mapping[Key, Entry | None], keep: Callable[[Entry], bool] | None
) -> tuple[Entry, ...]:
    """`group` (sorted by key) with `changed` applied, keeping only entries `keep` accepts.

    A group no change reached is returned as the very same tuple.
    """
    if len(changed) >= REGROUP_WHOLE_AT:
        merged = {_key_of(entry): entry for entry in group}
        for key, entry in changed.items():
            if entry is None or (keep is not None and not keep(entry)):
                merged.pop(key, None)
            else:
                merged[key] = entry
        return tuple(merged[key] for key in sorted(merged))
    out: list[Entry] | None = None
    for key, entry in changed.items():
        current = group if out is None else out
        at = bisect.bisect_left(current, key, key=_key_of)
        present = at < len(current) and _key_of(current[at]) == key
        wanted = entry is not None and (keep is None or keep(entry))
        if not present and not wanted:
            continue
        if out is None:
            out = list(group)
        if not wanted:
            del out[at]
        elif present:
            out[at] = entry  # type: ignore[assignment]
        else:
            out.insert(at, entry)  # type: ignore[arg-type]
    return group if out is None else tuple(out)


def _kept_or_copied(before: Mapping[str, Any], now: Mapping[str, Any]) -> Mapping[str, Any]:
    """`before` itself when `now` holds the same items (compared in C), else a frozen copy."""
    if before == now:
        return before
    return MappingProxyType(dict(now))


class SnapshotHolder:
    """Where snapshots are published: `current`, a wait for the next one, and swap listeners.

    The catalog (the one writer) is a holder; readers need no more than this.
    """

    def __init__(self, first: Snapshot) -> None:
        self.current = first
        # The snapshot before `current`, held until the next swap: what readers derived
        # from it and a change left alone (DNS's node table, HTTP bodies) is taken over
        # through `Snapshot.predecessor()` rather than built again.
        self._previous: Snapshot | None = None
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()

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

    def swap(self, new: Snapshot) -> None:
        """Publish `new` with one assignment, wake the waiters, then tell the listeners."""
        old, self.current = self.current, new
        self._previous = old
        self._changed.set()
        self._changed = asyncio.Event()
        for listener in self._listeners:
            listener(old, new)
