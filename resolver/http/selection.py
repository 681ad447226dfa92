"""Choosing one instance for `GET /v1/services/{name}/url`.

Each strategy is a small function over the candidate entries (already filtered and
in the snapshot's stable order). The only state is `Selector`'s: round-robin cursors
and least-connections counts, kept in memory per daemon. It never reaches into the
catalog: candidates come in, one entry goes out.

least_conn counts, per instance, the selections this daemon made (each `select` is
taken as one new connection) unless a client reports the real figure through
`POST /v1/services/{name}/feedback`, which sets the count it reports. The strategies
are the client library's own list (resolver.client.selection), so both always agree.
"""

from __future__ import annotations

import random
import zlib
from typing import Callable, Sequence

from aiohttp import web

from registry.model import Entry
from resolver.client.selection import Strategy

Key = tuple[str, str]


class Selector:
    """Per-daemon selection state. Lives as long as the HTTP app."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._cursors: dict[str, int] = {}
        self._connections: dict[Key, int] = {}

    def select(self, name: str, candidates: Sequence[Entry], strategy: Strategy, client: str, local_node: str) -> Entry:
        """One of `candidates` (never empty) chosen by `strategy`."""
        choose: Callable[[], Entry] = {
            Strategy.ROUND_ROBIN: lambda: self._round_robin(name, candidates),
            Strategy.RANDOM: lambda: self._rng.choice(candidates),
            Strategy.WEIGHTED: lambda: self._weighted(candidates),
            Strategy.LEAST_CONN: lambda: self._least_conn(candidates),
            Strategy.IP_HASH: lambda: candidates[zlib.crc32(client.encode()) % len(candidates)],
            Strategy.LOCAL_FIRST: lambda: self._local_first(name, candidates, local_node),
        }[strategy]
        chosen = choose()
        if strategy is Strategy.LEAST_CONN:
            key = chosen.instance.key
            self._connections[key] = self._connections.get(key, 0) + 1
        return chosen

    def connections(self, key: Key) -> int:
        return self._connections.get(key, 0)

    def report(self, key: Key, active: int) -> None:
        """A client's feedback: `active` connections are open to this instance now."""
        self._connections[key] = active

    def _round_robin(self, name: str, candidates: Sequence[Entry]) -> Entry:
        cursor = self._cursors.get(name, 0)
        self._cursors[name] = cursor + 1
        return candidates[cursor % len(candidates)]

    def _weighted(self, candidates: Sequence[Entry]) -> Entry:
        weights = [entry.instance.weight for entry in candidates]
        if sum(weights) <= 0:
            # Every weight zero: no instance is preferred, so none is excluded either.
            return self._rng.choice(candidates)
        return self._rng.choices(candidates, weights=weights)[0]

    def _least_conn(self, candidates: Sequence[Entry]) -> Entry:
        # Ties go to the first in snapshot order, which keeps the choice predictable.
        return min(candidates, key=lambda entry: self._connections.get(entry.instance.key, 0))

    def _local_first(self, name: str, candidates: Sequence[Entry], local_node: str) -> Entry:
        local = [entry for entry in candidates if entry.instance.node == local_node]
        return self._round_robin(name, local or candidates)


SELECTOR = web.AppKey("selector", Selector)
