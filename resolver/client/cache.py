"""The client's answers cache: bounded in entries, least recently used goes first.

An entry is fresh until `fresh_until` (the cache TTL, or while a watch keeps it
current); after that it is only the last good answer, kept for when the daemon stops
answering. Entries are not dropped when they go stale, only when the bound pushes
them out: the stale answer is the first fallback, and the bound keeps an application
asking for endless distinct names (or filters) from growing the cache without limit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Hashable

DEFAULT_ENTRIES = 1024


@dataclass(frozen=True, slots=True)
class CacheEntry:
    value: Any
    stored_at: float  # the core's clock when the daemon gave the answer
    fresh_until: float

    def fresh(self, now: float) -> bool:
        return now < self.fresh_until


class AnswerCache:
    """Not thread-safe by itself: the core calls it under its lock."""

    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("the cache needs room for at least one entry")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, CacheEntry] = OrderedDict()

    def get(self, key: Hashable) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, value: Any, stored_at: float, fresh_until: float) -> None:
        self._entries[key] = CacheEntry(value, stored_at, fresh_until)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def expire(self, key: Hashable, now: float) -> None:
        """Keep the entry as a last good answer, but no longer serve it as fresh."""
        entry = self._entries.get(key)
        if entry is not None and entry.fresh(now):
            self._entries[key] = CacheEntry(entry.value, entry.stored_at, now)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
