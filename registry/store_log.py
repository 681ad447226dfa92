"""The store's journal tables: the event log (append-only within its retention) and health rows.

The catalog's journal writes both for each change in one transaction (`write_batch`,
one fsync). Pruning deletes the oldest events in short batches, and only what the
retention lets go: the delete trigger refuses the rest even if asked.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Sequence

from registry.events import Event, LoggedEvent
from registry.model import Status
from registry.storebase import StoreBase, Transaction, translated

# Events deleted per transaction when pruning: each is a few milliseconds of the
# writer's time, so a reader never waits long behind one.
PRUNE_BATCH = 500


@dataclass(frozen=True)
class HealthRow:
    node: str
    instance_id: str
    check_id: str
    status: Status
    output: str
    updated: float



class JournalTables(StoreBase):
    # -- health -----------------------------------------------------------

    def _save_health(self, row: HealthRow) -> None:
        self._db.execute(
            "INSERT INTO health (node, instance_id, check_id, status, output, updated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (node, instance_id, check_id) DO UPDATE SET status = excluded.status, "
            "output = excluded.output, updated = excluded.updated",
            (row.node, row.instance_id, row.check_id, row.status.value, row.output, row.updated),
        )

    @translated
    def health(self) -> list[HealthRow]:
        rows = self._db.execute("SELECT * FROM health ORDER BY node, instance_id, check_id")
        return [
            HealthRow(r["node"], r["instance_id"], r["check_id"], Status(r["status"]), r["output"], r["updated"])
            for r in rows
        ]

    # -- events -----------------------------------------------------------

    @translated
    def append_event(self, event: Event) -> None:
        with self._transaction():
            self._append(time.time(), event)

    @translated
    def write_batch(self, logged: Sequence[Event], health: Sequence[HealthRow] = ()) -> None:
        """Events and health rows of one catalog change, in one transaction (one fsync)."""
        now = time.time()
        with self._transaction():
            for row in health:
                self._save_health(row)
            for event in logged:
                self._append(now, event)

    def _append(self, ts: float, event: Event) -> None:
        self._db.execute(
            "INSERT INTO events (ts, kind, subject, detail) VALUES (?, ?, ?, ?)",
            (ts, event.kind.value, event.subject, json.dumps(event.detail, sort_keys=True, default=str)),
        )

    # -- retention --------------------------------------------------------

    @translated
    def set_retention(self, retention: Retention) -> None:
        """Record what may be pruned; the delete trigger reads it, so nothing younger or newer goes."""
        with self._transaction():
            self._db.execute(
                "UPDATE event_retention SET max_age = ?, max_rows = ? WHERE id = 1",
                (retention.max_age, retention.max_rows),
            )

    @translated
    def retention(self) -> Retention:
        return read_retention(self._db)

    @translated
    def event_log_size(self) -> EventLogSize:
        """An upper bound of the rows (by seq, O(log n)) and the oldest event's time."""
        low, high = self._db.execute("SELECT min(seq), max(seq) FROM events").fetchone()
        if low is None:
            return EventLogSize(0, None, None)
        oldest = self._db.execute("SELECT ts FROM events WHERE seq = ?", (low,)).fetchone()
        return EventLogSize(int(high) - int(low) + 1, int(low), float(oldest[0]))

    @translated
    def count_events(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    @translated
    def prune_events_batch(self, now: float | None = None) -> int:
        """Delete up to PRUNE_BATCH of the oldest events the retention lets go; how many went.

        Beyond `max_rows` (by seq) or older than `max_age` may go, and nothing else:
        the delete trigger refuses the rest even if asked. One short transaction.
        """
        return prune_batch(self._db, now)

    @translated
    def pruning_connection(self) -> sqlite3.Connection | None:
        """A connection of its own for pruning in another thread (None for an in-memory store).

        A batch holds the write lock and fsyncs for milliseconds; on a connection of its
        own it runs off the event loop, and a writer here waits one batch at most
        (busy_timeout), as it would behind any other writer. The caller closes it.
        """
        if self.path == ":memory:":
            return None
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        return db

    @translated
    def events(self, limit: int = 100, before: int | None = None, kind: str | None = None) -> list[LoggedEvent]:
        """Newest first; page with `before` = the smallest `seq` of the previous page."""
        clauses: list[str] = []
        params: list[Any] = []
        if before is not None:
            clauses.append("seq < ?")
            params.append(before)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(f"SELECT * FROM events {where} ORDER BY seq DESC LIMIT ?", (*params, limit))
        return [LoggedEvent(r["seq"], r["ts"], r["kind"], r["subject"], json.loads(r["detail"])) for r in rows]


@dataclass(frozen=True)
class Retention:
    """How long, and how many, events are kept (the config's `events`)."""

    max_age: float = 30 * 24 * 3600.0
    max_rows: int = 100_000


@dataclass(frozen=True)
class EventLogSize:
    """How many events the log holds (`rows`, at most), and the seq and time of its oldest."""

    rows: int
    oldest_seq: int | None
    oldest_ts: float | None


def prune_batch(db: sqlite3.Connection, now: float | None = None) -> int:
    """`JournalTables.prune_events_batch` on any connection to the store's file."""
    retention = read_retention(db)
    # A second inside the trigger's own cut-off: SQLite's clock reads milliseconds,
    # and one row it refuses would abort the whole batch.
    cutoff = (time.time() if now is None else now) - retention.max_age - 1.0
    with Transaction(db):
        top = db.execute("SELECT max(seq) FROM events").fetchone()[0]
        if top is None:
            return 0
        rows = db.execute("SELECT seq FROM events ORDER BY seq LIMIT ?", (PRUNE_BATCH,)).fetchall()
        cursor = db.execute(
            "DELETE FROM events WHERE seq <= ? AND (seq <= ? OR ts < ?)",
            (rows[-1][0], int(top) - retention.max_rows, cutoff),
        )
    return int(cursor.rowcount)


def read_retention(db: sqlite3.Connection) -> Retention:
    """The bounds the delete trigger enforces, as recorded on any connection to the file."""
    row = db.execute("SELECT max_age, max_rows FROM event_retention WHERE id = 1").fetchone()
    return Retention(float(row[0]), int(row[1]))
