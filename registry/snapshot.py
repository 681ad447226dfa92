"""The catalog as readers see it: immutable snapshots, and the holder they are published in.

DNS, HTTP, the health runner and (in fleet mode) the publisher read the catalog
only through here. A reader takes `holder.current` once and uses that snapshot for
the whole request; nothing in a published snapshot is ever mutated (the `memo` dict
is the one exception: readers cache derived answers in it, keyed so that they never
clash). This module never touches SQLite, YAML or the writer's own state.

Builds are incremental: the writer hands `Snapshot.successor` the entries that
changed, and only the names those entries belong to are regrouped; the rest of the
previous snapshot's per-name tuples are shared, which keeps a one-file change cheap on
a 30,000-instance catalog (and keeps an untouched name's tuple the same object, which
is how listeners find what changed).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from registry.errors import Problem
from registry.model import ConflictRule, Entry, Node, Status

Key = tuple[str, str]
Listener = Callable[["Snapshot", "Snapshot"], None]


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

    @classmethod
    def first(cls, domain: str, local_node: str, answer_statuses: frozenset[Status], change: Change) -> Snapshot:
        """Index 1: the catalog before anything was registered, or what `change` holds."""
        empty = cls(1, domain, local_node, MappingProxyType({}), MappingProxyType({}), MappingProxyType({}),
                    MappingProxyType({}), (), MappingProxyType({}), answer_statuses)
        return empty.successor(change, index=1)

    def successor(self, change: Change, index: int | None = None) -> Snapshot:
        """The next snapshot: this one with `change` applied (index + 1 unless given)."""
        # mappingproxy.copy() copies the dict underneath in C; dict(proxy) would walk
        # it key by key through the mapping protocol, ten times slower.
        by_key: dict[Key, Entry] = self.entries_by_key.copy()  # type: ignore[attr-defined]
        by_name: dict[str, tuple[Entry, ...]] = self.entries_by_name.copy()  # type: ignore[attr-defined]
        answerable: dict[str, tuple[Entry, ...]] = self.answerable_by_name.copy()  # type: ignore[attr-defined]
        # The names an entry left or joined, with each one's changed entries by key.
        regroup: dict[str, dict[Key, Entry | None]] = {}
        for key, entry in change.entries.items():
            before = by_key.get(key)
            if before is not None:
                regroup.setdefault(before.instance.name, {})[key] = None
            if entry is None:
                by_key.pop(key, None)
            else:
                by_key[key] = entry
                regroup.setdefault(entry.instance.name, {})[key] = entry
        for name, changed in regroup.items():
            group = {entry.instance.key: entry for entry in by_name.get(name, ())}
            for key, entry in changed.items():
                if entry is None:
                    group.pop(key, None)
                else:
                    group[key] = entry
            if not group:
                by_name.pop(name, None)
                answerable.pop(name, None)
                continue
            entries = tuple(group[key] for key in sorted(group))
            by_name[name] = entries
            answerable[name] = tuple(
                e for e in entries if e.instance.discoverable and e.status in self.answer_statuses
            )
        return Snapshot(
            index=self.index + 1 if index is None else index,
            domain=self.domain,
            local_node=self.local_node,
            entries_by_key=MappingProxyType(by_key),
            entries_by_name=MappingProxyType(by_name),
            answerable_by_name=MappingProxyType(answerable),
            nodes=MappingProxyType(dict(change.nodes)),
            rules=change.rules,
            file_errors=MappingProxyType(dict(change.file_errors)),
            answer_statuses=self.answer_statuses,
        )

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


class SnapshotHolder:
    """Where snapshots are published: `current`, a wait for the next one, and swap listeners.

    The catalog (the one writer) is a holder; readers need no more than this.
    """

    def __init__(self, first: Snapshot) -> None:
        self.current = first
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
        self._changed.set()
        self._changed = asyncio.Event()
        for listener in self._listeners:
            listener(old, new)
