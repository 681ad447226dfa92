"""Choosing one URL: which strategies the client applies itself, which it asks for.

round_robin, random and weighted need nothing but the instance list, so the client
picks from its cached list and `url()` costs no request while the cache is fresh
(its round robin turns per client, the daemon's per daemon). least_conn, ip_hash
and local_first depend on what only the daemon knows (connection counts it keeps,
the caller's address as it sees it, which node is local), so each of those calls
asks the daemon; when it does not answer, the fallback's instances are taken in
round-robin order instead.
"""

from __future__ import annotations

import enum
import random
from typing import Hashable, Sequence

from resolver.client.results import Instance


class Strategy(str, enum.Enum):
    ROUND_ROBIN = "round_robin"
    RANDOM = "random"
    WEIGHTED = "weighted"
    LEAST_CONN = "least_conn"
    IP_HASH = "ip_hash"
    LOCAL_FIRST = "local_first"


CHOSEN_HERE = frozenset({Strategy.ROUND_ROBIN, Strategy.RANDOM, Strategy.WEIGHTED})
# Round-robin cursors are per lookup key; an application cycling through endless keys
# must not grow them without bound, so past this many they start again.
MAX_CURSORS = 4096


class Picker:
    """The client's own choice among instances. Not thread-safe: the core's lock covers it."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._cursors: dict[Hashable, int] = {}

    def pick(self, key: Hashable, candidates: Sequence[Instance], strategy: Strategy) -> Instance:
        if strategy is Strategy.RANDOM:
            return self._rng.choice(candidates)
        if strategy is Strategy.WEIGHTED:
            weights = [instance.weight for instance in candidates]
            if sum(weights) <= 0:
                return self._rng.choice(candidates)
            return self._rng.choices(candidates, weights=weights)[0]
        cursor = self._cursors.get(key, 0)
        if cursor == 0 and len(self._cursors) >= MAX_CURSORS:
            self._cursors.clear()
        self._cursors[key] = cursor + 1
        return candidates[cursor % len(candidates)]
