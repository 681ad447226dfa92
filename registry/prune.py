"""Keeping the event log bounded: the periodic job that prunes what events.max_age and events.max_rows let go.

The log is append-only for every event younger than max_age among the newest
max_rows: SQLite's delete trigger (migration 2) refuses the rest, whatever asks.
This job looks every `interval` at the log's size and its oldest event (two index
lookups), and once the log is past either bound by a hundredth of it, deletes the
oldest events in batches of a few hundred, one short transaction each, handing the
event loop back between batches: no DNS query or HTTP lookup waits behind a prune
(they never read SQLite anyway), and a writer waits one batch at most. Each pruning
that deleted anything is itself one `prune` event.

The slack of a hundredth keeps pruning rare: a log held exactly at max_rows would
otherwise prune one event, and log that, after every event.
"""

from __future__ import annotations

import asyncio
import logging
import time

from registry import events
from registry.background import cancel_and_wait, wait_or_wake
from registry.errors import StorageError
from registry.ratelog import RateLimitedLog
from registry.store import Retention, Store

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 10.0
# Past a bound by this fraction of it, the log is pruned back to the bound.
SLACK = 0.01


class EventPruner:
    """Owns the pruning task; `retention` may change at any time (a SIGHUP)."""

    def __init__(self, store: Store, retention: Retention, interval: float = PRUNE_INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self.retention = retention
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._fail_log = RateLimitedLog(log, logging.ERROR, "pruning the event log failed; retrying")

    async def start(self) -> None:
        self.store.set_retention(self.retention)
        self._task = asyncio.create_task(self._run(), name="event pruner")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def set_retention(self, retention: Retention) -> None:
        """New bounds: recorded for the trigger at once, applied by the next run (which starts now)."""
        self.store.set_retention(retention)
        self.retention = retention
        self._wake.set()

    def due(self, now: float) -> bool:
        """Whether the log is past a bound by more than its slack (cheap: no table scan unless it may be)."""
        retention = self.retention
        size = self.store.event_log_size()
        if size.oldest_ts is not None and size.oldest_ts < now - retention.max_age * (1 + SLACK):
            return True
        limit = retention.max_rows + int(retention.max_rows * SLACK)
        # `rows` counts from the oldest seq to the newest: an exact count only when that says it may be over.
        return size.rows > limit and self.store.count_events() > limit

    async def prune(self) -> int:
        """Prune now if due, batch by batch; how many events went."""
        if not self.due(time.time()):
            return 0
        began = time.monotonic()
        deleted = 0
        while True:
            batch = self.store.prune_events_batch()
            deleted += batch
            if batch == 0:
                break
            await asyncio.sleep(0)  # the event loop's turn: queries, checks, writes
        if deleted:
            oldest = self.store.event_log_size().oldest_seq
            retention = self.retention
            self.store.append_event(events.pruned(deleted, retention.max_age, retention.max_rows, oldest))
            # How long it took says when it began: the window in which readers shared the loop with it.
            log.info("event log pruned",
                     extra={"deleted": deleted, "oldest_seq": oldest, "seconds": round(time.monotonic() - began, 3)})
        return deleted

    async def _run(self) -> None:
        while True:
            try:
                await self.prune()
            except StorageError as exc:
                self._fail_log.note(error=str(exc), fault=exc.fault.value)
            except Exception:  # a bug must not end pruning for good
                log.exception("pruning the event log failed; retrying")
            await wait_or_wake(self._wake, self.interval)

