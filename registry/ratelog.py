"""Log lines for conditions that others can repeat at will: one line per interval.

A client that sends a thousand malformed requests a second, a dead upstream, or a
full disk that refuses every health write must not turn the log into the bottleneck
or bury everything else in it: megabytes a minute would fill the disk. Every line here
follows one rule (`_Quiet`): the first occurrence is written at once, the ones that
follow within the interval are counted, and the count (`suppressed`) comes with a
later line, so that a burst is never hidden whole.

- `RateLimitedLog` is one condition with a fixed message and its fields: the count
  comes with the next line, or on its own when the interval ends with nothing more.
- `LogThrottle` is many conditions told apart by a key (an upstream, a question), in
  a table bounded by MAX_KEYS; a key's count comes with its next line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Hashable

DEFAULT_INTERVAL = 10.0
MAX_KEYS = 1024  # keys LogThrottle remembers; a flood of distinct keys cannot grow it


class _Quiet:
    """One condition's interval: whether an occurrence is written, and how many were not."""

    __slots__ = ("until", "held")

    def __init__(self) -> None:
        self.until = 0.0
        self.held = 0

    def admit(self, now: float, interval: float) -> int | None:
        """None while quiet (the occurrence is counted); else the count held back until now."""
        if now < self.until:
            self.held += 1
            return None
        return self.reopen(now, interval)

    def reopen(self, now: float, interval: float) -> int:
        """A line is written now: the count it carries; the next interval starts."""
        held, self.held = self.held, 0
        self.until = now + interval
        return held


class RateLimitedLog:
    """One `logger` line per `interval` seconds for one recurring condition."""

    def __init__(self, logger: logging.Logger, level: int, message: str, interval: float = DEFAULT_INTERVAL) -> None:
        self.logger = logger
        self.level = level
        self.message = message
        self.interval = interval
        self._quiet = _Quiet()
        self._last_fields: dict[str, Any] = {}
        self._flush: asyncio.TimerHandle | None = None

    def note(self, **fields: Any) -> None:
        """One occurrence; written now, or counted and reported later."""
        now = time.monotonic()
        held = self._quiet.admit(now, self.interval)
        if held is not None:
            self._write(fields, held)
            return
        self._last_fields = fields
        if self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (a CLI tool): the next note after the interval reports the count
            self._flush = loop.call_later(self._quiet.until - now, self._flush_held)

    def _flush_held(self) -> None:
        self._flush = None
        if self._quiet.held:
            self._write(self._last_fields, self._quiet.reopen(time.monotonic(), self.interval))

    def _write(self, fields: dict[str, Any], held: int) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self.logger.log(self.level, self.message, extra={**fields, "suppressed": held})


class LogThrottle:
    """At most one `logger` line per key per `interval`; the next line of a key says how many were held back."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._keys: dict[Hashable, _Quiet] = {}

    def log(self, key: Hashable, level: int, message: str, *args: object, exc_info: bool = False) -> None:
        now = self._clock()
        quiet = self._keys.get(key)
        if quiet is None:
            if len(self._keys) >= MAX_KEYS:
                # Forget the quiet keys; if all are busy, forget them all rather than grow.
                self._keys = {k: q for k, q in self._keys.items() if now < q.until}
                if len(self._keys) >= MAX_KEYS:
                    self._keys.clear()
            quiet = self._keys[key] = _Quiet()
        held = quiet.admit(now, self._interval)
        if held is None:
            return
        if held:
            message += " (and %d more like it since the last line)"
            args += (held,)
        self._logger.log(level, message, *args, exc_info=exc_info, extra={"suppressed": held})
