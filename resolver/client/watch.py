"""A watch: a loop of blocking queries that follows one service (or all of them).

Each step asks `?index=<last index>&wait=<wait>`; the daemon holds the request until
its catalog moves past that index (or the wait runs out) and answers with the new
index in `X-Pilotfish-Index`. A step reports a change only when what is watched
changed (the index moves for any change in the catalog). Every answer refreshes the
cache entry of the same lookup, fresh until the next answer is due, so `instances()`
and `url()` of a watched service never wait on a request. When the daemon stops
answering, the entry goes stale (it is still the first fallback), and the loop
retries with a growing pause, then says so once it is back. An index from before a
daemon restart is answered at once by the new daemon, so no state needs resetting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable

from resolver.client.answers import Answer
from resolver.client.core import SERVICES_KEY, Core, read_services
from resolver.client.query import Query, quote
from resolver.client.results import Instances, Services
from resolver.client.steps import Failure, Plan

DEFAULT_WAIT = 30.0
MAX_WAIT = 600.0  # the daemon's own bound on `wait`
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 5.0
# An answer whose index did not move came after a full wait, or from something that
# does not block at all; this pause keeps the second case from spinning.
UNMOVED_PAUSE = 0.1


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """The watch lost its daemon (`connected` False, why, and when it tries again) or got it back."""

    connected: bool
    reason: str | None = None
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class WatchEvent:
    value: Instances | Services | None  # what is watched, when it changed
    connection: ConnectionChange | None
    pause: float  # seconds the driver waits before the next step


class Watch:
    def __init__(self, core: Core, query: Query | None, wait: float) -> None:
        if not 0 < wait <= MAX_WAIT:
            raise ValueError(f"wait must be more than 0 and at most {MAX_WAIT:.0f} seconds")
        self._core = core
        self._query = query
        self._wait = wait
        self._index = 0
        self._failures = 0
        self._last: Instances | Services | None = None

    @property
    def key(self) -> Hashable:
        return self._query.key if self._query is not None else SERVICES_KEY

    def step(self) -> Plan[WatchEvent]:
        core, query, asked = self._core, self._query, self._index
        params = query.params() if query is not None else []
        params += [("index", str(asked)), ("wait", f"{round(self._wait * 1000)}ms")]
        path = f"/v1/services/{quote(query.name)}" if query is not None else "/v1/services"
        # The daemon only ever shortens `wait` (jitter), so this timeout means no answer.
        call = core.call("GET", path, None, params, self._wait + core.settings.timeout)
        read: Callable[[Answer], Instances | Services] = (
            core.read_instances(query) if query is not None else read_services
        )
        outcome = yield from core.ask(call, read)
        if isinstance(outcome, Failure):
            self._failures += 1
            core.expire(self.key)
            retry_in = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(self._failures - 1, 10))
            return WatchEvent(None, ConnectionChange(False, outcome.reason, retry_in), retry_in)
        connection = ConnectionChange(True) if self._failures else None
        self._failures = 0
        core.remember(self.key, outcome, self._wait + core.settings.timeout)
        self._index = outcome.index or 0
        pause = UNMOVED_PAUSE if outcome.index == asked else 0.0
        if self._last is not None and _content(outcome) == _content(self._last):
            return WatchEvent(None, connection, pause)
        self._last = outcome
        return WatchEvent(outcome, connection, pause)


def _content(value: Instances | Services) -> object:
    return value.items if isinstance(value, Instances) else value.by_name
