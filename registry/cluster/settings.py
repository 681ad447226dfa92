"""Fleet mode's settings and the small parts of its state: the config it runs on, how it retries, where it stands."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from registry.endpoints import Endpoint

# Retries wait a random time up to a cap that doubles from BACKOFF_FIRST to BACKOFF_CAP
# ("full jitter"), so a fleet does not stampede a restarted etcd, and a daemon is back
# within a few seconds of etcd.
BACKOFF_FIRST = 0.25
BACKOFF_CAP = 2.0
class SyncState(str, enum.Enum):
    """`connecting` until the first whole read; `synced` while etcd answers; `stale` while it does not."""

    CONNECTING = "connecting"
    SYNCED = "synced"
    STALE = "stale"


@dataclass(frozen=True)
class FleetSettings:
    """The config's `cluster` section as fleet mode needs it."""

    endpoints: tuple[Endpoint, ...]
    prefix: str
    lease_ttl: int
    datacenter: str


class Backoff:
    """Capped exponential backoff with full jitter; `reset` after a success."""

    def __init__(self, first: float = BACKOFF_FIRST, cap: float = BACKOFF_CAP) -> None:
        self.first = first
        self.cap = cap
        self._failures = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.first * 2**self._failures)
        self._failures = min(self._failures + 1, 32)
        return random.uniform(0, ceiling)

    def reset(self) -> None:
        self._failures = 0
