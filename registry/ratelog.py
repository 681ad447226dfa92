"""Log lines for conditions that others can repeat at will: one line per interval.

A client that sends a thousand malformed requests a second, or a full disk that
refuses every health write, must not turn the log into the bottleneck or bury
everything else in it. `RateLimitedLog` writes the first occurrence at once, then
counts the ones that follow within the interval and reports that count
(`suppressed`) on the next line, or on its own when the interval ends with nothing
more, so that a burst is never hidden whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

DEFAULT_INTERVAL = 10.0


class RateLimitedLog:
    """One `logger` line per `interval` seconds for one recurring condition."""

    def __init__(self, logger: logging.Logger, level: int, message: str, interval: float = DEFAULT_INTERVAL) -> None:
        self.logger = logger
        self.level = level
        self.message = message
        self.interval = interval
        self._quiet_until = 0.0
        self._suppressed = 0
        self._last_fields: dict[str, Any] = {}
        self._flush: asyncio.TimerHandle | None = None

    def note(self, **fields: Any) -> None:
        """One occurrence; written now, or counted and reported later."""
        now = time.monotonic()
        if now >= self._quiet_until:
            self._write(fields, now)
            return
        self._suppressed += 1
        self._last_fields = fields
        if self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (a CLI tool): the next note after the interval reports the count
            self._flush = loop.call_later(self._quiet_until - now, self._flush_suppressed)

    def _flush_suppressed(self) -> None:
        self._flush = None
        if self._suppressed:
            self._write(self._last_fields, time.monotonic())

    def _write(self, fields: dict[str, Any], now: float) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self.logger.log(self.level, self.message, extra={**fields, "suppressed": self._suppressed})
        self._suppressed = 0
        self._quiet_until = now + self.interval
