"""Keeping the event log bounded: the periodic job that prunes what events.max_age and events.max_rows let go.

The log is append-only for every event younger than max_age among the newest
max_rows: SQLite's delete trigger (migration 2) refuses the rest, whatever asks.
This job looks every `interval` at the log's size and its oldest event (two index
lookups), and once the log is past either bound by a hundredth of it, deletes the
oldest events in batches of a few hundred, one short transaction each, on a
connection of its own in a thread of its own: a batch's delete and fsync take
milliseconds, which on the event loop made lookups wait behind a large pruning
(p99 4-47 times higher while it lasted, `bench/prune.py`). Off the loop, no DNS
query or HTTP lookup waits behind a prune (they never read SQLite), and a writer
waits one batch at most, as behind any other writer. Each pruning that deleted
anything is itself one `prune` event.

The slack of a hundredth keeps pruning rare: a log held exactly at max_rows would
otherwise prune one event, and log that, after every event.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

from registry import events
from registry.background import cancel_and_wait, wait_or_wake
from registry.errors import StorageError
from registry.ratelog import RateLimitedLog
from registry.store import Retention, Store
from registry.store_log import prune_batch

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
        # One thread, so that a batch still running when the task is cancelled is
        # over before the connection is closed behind it.
        self._thread: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    async def start(self) -> None:
        self.store.set_retention(self.retention)
        try:
            self._db = self.store.pruning_connection()
        except StorageError as exc:
            # Pruning on the event loop is slower for lookups, not wrong: start anyway.
            log.warning("no connection of its own for pruning; pruning on the event loop",
                        extra={"error": str(exc), "fault": exc.fault.value})
        if self._db is not None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pilotfish-prune")
        self._task = asyncio.create_task(self._run(), name="event pruner")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self._thread is not None and self._db is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
            self._thread.shutdown()
        self._thread = self._db = None

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
            batch = await self._batch()
            deleted += batch
            if batch == 0:
                break
        if deleted:
            oldest = self.store.event_log_size().oldest_seq
            retention = self.retention
            self.store.append_event(events.pruned(deleted, retention.max_age, retention.max_rows, oldest))
            # How long it took says when it began: the window bench/prune.py and the tests time lookups in.
            log.info("event log pruned",
                     extra={"deleted": deleted, "oldest_seq": oldest, "seconds": round(time.monotonic() - began, 3)})
        return deleted

    async def _batch(self) -> int:
        """One batch, off the event loop when the store has a file (an in-memory one has no second connection)."""
        if self._thread is None or self._db is None:
            batch = self.store.prune_events_batch()
            await asyncio.sleep(0)
            return batch
        began = time.monotonic()
        try:
            batch = await asyncio.get_running_loop().run_in_executor(self._thread, prune_batch, self._db)
        except sqlite3.Error as exc:
            error = self.store.storage_error(exc)
            if error is None:
                raise
            raise error from None
        # As long again idle: on a daemon held to one core, the batches' CPU would
        # otherwise be taken from the lookups sharing it.
        await asyncio.sleep(time.monotonic() - began)
        return batch

    async def _run(self) -> None:
        while True:
            try:
                await self.prune()
            except StorageError as exc:
                self._fail_log.note(error=str(exc), fault=exc.fault.value)
            except Exception:  # a bug must not end pruning for good
                log.exception("pruning the event log failed; retrying")
            await wait_or_wake(self._wake, self.interval)

