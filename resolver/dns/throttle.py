"""Log lines that a client can cause, at most one per key per interval.

A dead upstream, a flood of queries or an answer that cannot be built would otherwise
write a line per query: megabytes a minute, filling the disk and hiding everything
else. The first line of a key goes out at once; later ones within the interval are
counted, and the next line written for that key says how many were held back.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Hashable

INTERVAL = 10.0
MAX_KEYS = 1024  # keys remembered; a flood of distinct keys cannot grow this


class LogThrottle:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._keys: dict[Hashable, list[Any]] = {}  # key -> [time of the last line, lines held back since]

    def log(self, key: Hashable, level: int, message: str, *args: object, exc_info: bool = False) -> None:
        now = self._clock()
        entry = self._keys.get(key)
        if entry is not None and now - entry[0] < self._interval:
            entry[1] += 1
            return
        held = entry[1] if entry is not None else 0
        if entry is None and len(self._keys) >= MAX_KEYS:
            # Forget the quiet keys; if all are busy, forget them all rather than grow.
            self._keys = {k: v for k, v in self._keys.items() if now - v[0] < self._interval}
            if len(self._keys) >= MAX_KEYS:
                self._keys.clear()
        self._keys[key] = [now, 0]
        if held:
            message += " (and %d more like it since the last line)"
            args += (held,)
        self._logger.log(level, message, *args, exc_info=exc_info, extra={"suppressed": held})
