"""What the catalog owes SQLite: the events and health rows of changes it has published.

They are written with the snapshot that shows them, one transaction per publish, so a
burst of check results at start-up costs one fsync rather than thousands. What they
record has already happened (a file applied, a check failed), so a refused write must
not stop the snapshot that shows it: SQLite only keeps the history and the health
states restored at the next start. They wait for the next try instead, bounded, and
the log says what was lost. API registrations never wait here: the catalog commits
them before it changes anything.
"""

from __future__ import annotations

import logging
import time

from registry.errors import StorageError
from registry.events import Event
from registry.ratelog import RateLimitedLog
from registry.store import HealthRow, Store

log = logging.getLogger("pilotfish.catalog")

# Events and health rows a refused write (a full or read-only disk) leaves waiting for
# the next try; past this the oldest go, and the log says how many.
UNSAVED_LIMIT = 10_000
# A refused write is tried again with the first change this long after it, not with
# every change: on a full disk each try costs a failed transaction.
UNSAVED_RETRY = 1.0


class Journal:
    """Events and health rows waiting for the next publish; `flush()` writes them in one transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._events: list[Event] = []
        self._health: list[HealthRow] = []
        self._retry_at = 0.0
        self._unsaved_log = RateLimitedLog(
            log, logging.ERROR, "events and health states not saved; the catalog goes on without them"
        )

    def record(self, event: Event) -> None:
        self._events.append(event)

    def record_health(self, row: HealthRow) -> None:
        self._health.append(row)

    def flush(self) -> None:
        """Write what waits, unless a refused write was tried less than UNSAVED_RETRY ago."""
        if not (self._events or self._health) or time.monotonic() < self._retry_at:
            return
        events, self._events = self._events, []
        health, self._health = self._health, []
        try:
            self._store.write_batch(events, health)
        except StorageError as exc:
            self._events = events[-UNSAVED_LIMIT:]
            self._health = health[-UNSAVED_LIMIT:]
            dropped = len(events) + len(health) - len(self._events) - len(self._health)
            self._retry_at = time.monotonic() + UNSAVED_RETRY
            waiting = len(self._events) + len(self._health)
            self._unsaved_log.note(error=str(exc), fault=exc.fault.value, waiting=waiting, dropped=dropped)
