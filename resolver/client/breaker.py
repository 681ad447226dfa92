"""The client-side circuit breaker: stop calling a daemon that keeps failing.

After `failures` calls in a row fail, the breaker opens: for `cooldown` seconds no
call goes to the daemon and lookups are served by the fallback chain at once,
instead of each one waiting out its timeout. Then one call is let through (half
open): if it succeeds the breaker closes, if it fails the cool-down starts again.
A probe that never reports back (its caller was interrupted) does not hold the
breaker half open forever: after another cool-down a new probe is let through.

Pure state over an injected time: the core calls it under its lock.
"""

from __future__ import annotations

import enum


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Breaker:
    def __init__(self, failures: int, cooldown: float) -> None:
        if failures < 1:
            raise ValueError("the breaker needs at least one failure to open")
        if cooldown < 0:
            raise ValueError("the breaker's cool-down cannot be negative")
        self.failures = failures
        self.cooldown = cooldown
        self.opened = 0  # how many times it opened, for the client's counters
        self._in_a_row = 0
        self._open_since: float | None = None
        self._probe_since: float | None = None

    def state(self, now: float) -> BreakerState:
        if self._open_since is None:
            return BreakerState.CLOSED
        if now - self._open_since < self.cooldown:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self, now: float) -> bool:
        """Whether a call may go to the daemon now (taking the probe slot if half open)."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        if self._probe_since is not None and now - self._probe_since < max(self.cooldown, 0.001):
            return False
        self._probe_since = now
        return True

    def succeeded(self) -> None:
        self._in_a_row = 0
        self._open_since = None
        self._probe_since = None

    def failed(self, now: float) -> None:
        self._in_a_row += 1
        self._probe_since = None
        if self._open_since is not None or self._in_a_row >= self.failures:
            if self._open_since is None or self.state(now) is BreakerState.HALF_OPEN:
                self.opened += 1
            self._open_since = now
