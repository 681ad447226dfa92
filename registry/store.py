"""SQLite: what must survive a restart.

API registrations, conflict rules, node and global config, health state, maintenance
windows and the event log, append-only within its retention (see `prune_events`). Readers on the hot path never come here: the catalog copies
what they need into its snapshot. Every method that writes returns only after its
transaction has committed, so an acknowledged write survives a crash.

When SQLite refuses (a full disk, a read-only file, a damaged page, an I/O error),
every public method raises `StorageError` naming the fault, the file and what an
operator can do; the transaction is rolled back, so a refused write left nothing
behind. A damaged database is refused at start (`PRAGMA quick_check`) rather than
found out by the first write; one that cannot be written at start is opened for
reading (`read_only`), so the daemon still serves what it holds.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Concatenate, ParamSpec, Sequence, TypeVar

from registry import events
from registry.configvalues import ConfigValue, cast_value, serialise_value
from registry.conflicts import WELL_KNOWN_RULES
from registry.errors import NotFoundError, StorageError, StorageFault
from registry.events import Event, LoggedEvent
from registry.migrations import MIGRATIONS, SCHEMA_VERSION
from registry.model import ConflictRule, ConflictType, MaintenanceKind, Status, Window
from registry.storagefaults import fault_advice, fault_of

# The largest max_page_count SQLite accepts: what "no cap" sets, leaving the disk as the limit.
SQLITE_MAX_PAGES = 4294967294
GLOBAL = ""  # the `node` column value of global config rows
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


P = ParamSpec("P")
R = TypeVar("R")

def _translated(method: Callable[Concatenate["Store", P], R]) -> Callable[Concatenate["Store", P], R]:
    """Raise SQLite's storage failures as `StorageError`; leave everything else alone."""

    def wrapper(self: "Store", /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            error = self.storage_error(exc)
            if error is None:
                raise
            raise error from None

    functools.update_wrapper(wrapper, method)
    return wrapper


class Store:
    """One SQLite database in WAL mode, owned by one daemon's writer.

    `max_bytes` caps the database file (SQLite's max_page_count): a write past it is
    refused as a full disk would refuse it.
    """

    def __init__(self, path: str | Path, max_bytes: int | None = None) -> None:
        self.path = str(path)
        self.max_bytes = max_bytes
        # True when the file could only be opened for reading: reads work, writes raise.
        self.read_only = False
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise

    @_translated
    def _open(self) -> None:
        self._db.row_factory = sqlite3.Row
        self._check_integrity()
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before we acknowledge it, not only in the OS cache.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self.limit_size(self.max_bytes)
        self.migrate()

    @_translated
    def limit_size(self, max_bytes: int | None) -> None:
        """Cap the file at `max_bytes` (None: SQLite's own maximum); applies to the next write.

        A cap below the current size holds the file where it is: writes that need a
        new page are refused, the rest go on.
        """
        self.max_bytes = max_bytes
        page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        pages = SQLITE_MAX_PAGES if max_bytes is None else max(1, math.ceil(max_bytes / page_size))
        self._db.execute(f"PRAGMA max_page_count={pages}")

    def _check_integrity(self) -> None:
        """Refuse a damaged file at start, not at the first write that reaches the bad page.

        quick_check reads every page (O(size), well under a second for the sizes the
        event log reaches) but skips the index cross-checks of integrity_check.
        """
        problems = [str(row[0]) for row in self._db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            detail = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
            fault = StorageFault.CORRUPT
            raise StorageError(fault, self.path, f"quick_check: {detail}", fault_advice(fault, self.path, None))

    def storage_error(self, exc: sqlite3.Error) -> StorageError | None:
        """`exc` as a StorageError when it is about the storage; None when it is a bug of ours."""
        fault = fault_of(exc)
        if fault is None:
            return None
        return StorageError(fault, self.path, str(exc), fault_advice(fault, self.path, self.max_bytes))

    def close(self) -> None:
        self._db.close()

    # -- schema -----------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @_translated
    def migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION; a no-op when it is already there."""
        for version in range(self.schema_version + 1, SCHEMA_VERSION + 1):
            # executescript commits any open transaction first, so the script
            # carries its own: the DDL and the version bump land together or not at all.
            self._db.executescript(
                f"BEGIN IMMEDIATE;{MIGRATIONS[version]}PRAGMA user_version={version};COMMIT;"
            )
        try:
            with self._transaction():
                for rule in WELL_KNOWN_RULES:
                    self._db.execute(
                        "INSERT OR IGNORE INTO conflict_rules (a, b, type, reason, source) VALUES (?, ?, ?, ?, ?)",
                        (rule.a, rule.b, rule.type.value, rule.reason, rule.source),
                    )
        except sqlite3.Error as exc:
            # The first write of every start: a file that can only be read shows here.
            # Its schema is current (no migration ran), so reads are served as usual.
            error = self.storage_error(exc)
            if error is None or error.fault is not StorageFault.READ_ONLY:
                raise
            self.read_only = True

    @_translated
    def schema(self) -> list[tuple[str, str]]:
        """Every schema object as (name, sql): used to prove migrations are idempotent."""
        rows = self._db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        return [(row[0], row[1]) for row in rows]

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)

    # -- registrations ----------------------------------------------------

    @_translated
    def save_registration(self, node: str, instance_id: str, body: dict[str, Any], event: Event | None = None) -> None:
        now = time.time()
        with self._transaction():
            self._db.execute(
                "INSERT INTO registrations (node, id, body, created, updated) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (node, id) DO UPDATE SET body = excluded.body, updated = excluded.updated",
                (node, instance_id, json.dumps(body, sort_keys=True), now, now),
            )
            if event:
                self._append(now, event)

    @_translated
    def delete_registration(self, node: str, instance_id: str, event: Event | None = None) -> bool:
        now = time.time()
        with self._transaction():
            cursor = self._db.execute("DELETE FROM registrations WHERE node = ? AND id = ?", (node, instance_id))
            self._db.execute("DELETE FROM health WHERE node = ? AND instance_id = ?", (node, instance_id))
            if cursor.rowcount and event:
                self._append(now, event)
        return cursor.rowcount > 0

    @_translated
    def registrations(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT body FROM registrations ORDER BY created, node, id")
        return [json.loads(row[0]) for row in rows]

    # -- conflict rules ---------------------------------------------------

    @_translated
    def add_rule(self, a: str, b: str, type_: ConflictType, reason: str, source: str = "api") -> ConflictRule:
        """Store a rule; adding a pair that exists (in either order) returns the existing rule."""
        rule = ConflictRule(a, b, type_, reason, source=source)
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO conflict_rules (a, b, type, reason, source) VALUES (?, ?, ?, ?, ?)",
                (rule.a, rule.b, rule.type.value, rule.reason, source),
            )
            self._append(time.time(), events.rule_added(rule))
        row = self._db.execute("SELECT * FROM conflict_rules WHERE a = ? AND b = ?", (rule.a, rule.b)).fetchone()
        return self._rule(row)

    @_translated
    def delete_rule(self, rule_id: int) -> ConflictRule:
        row = self._db.execute("SELECT * FROM conflict_rules WHERE id = ?", (rule_id,)).fetchone()
        if row is None:
            raise NotFoundError("conflict rule", str(rule_id))
        with self._transaction():
            self._db.execute("DELETE FROM conflict_rules WHERE id = ?", (rule_id,))
            self._append(time.time(), events.rule_deleted(row["a"], row["b"], rule_id))
        return self._rule(row)

    @_translated
    def rules(self) -> list[ConflictRule]:
        return [self._rule(row) for row in self._db.execute("SELECT * FROM conflict_rules ORDER BY id")]

    @staticmethod
    def _rule(row: sqlite3.Row) -> ConflictRule:
        return ConflictRule(row["a"], row["b"], ConflictType(row["type"]), row["reason"], id=row["id"], source=row["source"])

    # -- config -----------------------------------------------------------

    @_translated
    def set_config(self, node: str | None, key: str, raw: object, value_type: str) -> ConfigValue:
        """Cast and store a value; a value that does not cast is refused and nothing changes."""
        value = cast_value(key, raw, value_type)
        with self._transaction():
            self._db.execute(
                "INSERT INTO config (node, key, value, value_type, updated) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (node, key) DO UPDATE SET value = excluded.value, "
                "value_type = excluded.value_type, updated = excluded.updated",
                (node or GLOBAL, key, serialise_value(value, value_type), value_type, time.time()),
            )
        return ConfigValue(key, value, value_type, "node" if node else "global", node)

    @_translated
    def delete_config(self, node: str | None, key: str) -> None:
        with self._transaction():
            cursor = self._db.execute("DELETE FROM config WHERE node = ? AND key = ?", (node or GLOBAL, key))
        if cursor.rowcount == 0:
            raise NotFoundError("config key", key)

    @_translated
    def get_config(self, node: str | None, key: str) -> ConfigValue:
        """A node's value, else the global default (design: GET falls back to global)."""
        scopes = [(node, "node"), (GLOBAL, "global")] if node else [(GLOBAL, "global")]
        for scope_node, scope in scopes:
            row = self._db.execute(
                "SELECT value, value_type FROM config WHERE node = ? AND key = ?", (scope_node, key)
            ).fetchone()
            if row is not None:
                value = cast_value(key, row["value"], row["value_type"])
                return ConfigValue(key, value, row["value_type"], scope, node)
        raise NotFoundError("config key", key)

    @_translated
    def config_view(self, node: str | None) -> dict[str, ConfigValue]:
        """Every key visible to a node: its own values over the global ones."""
        merged: dict[str, ConfigValue] = {}
        rows = self._db.execute(
            "SELECT node, key, value, value_type FROM config WHERE node = ? OR node = ? "
            "ORDER BY CASE node WHEN ? THEN 0 ELSE 1 END",
            (GLOBAL, node or GLOBAL, GLOBAL),
        )
        for row in rows:
            scope = "global" if row["node"] == GLOBAL else "node"
            merged[row["key"]] = ConfigValue(
                row["key"], cast_value(row["key"], row["value"], row["value_type"]), row["value_type"], scope, node
            )
        return dict(sorted(merged.items()))

    # -- health -----------------------------------------------------------

    def _save_health(self, row: HealthRow) -> None:
        self._db.execute(
            "INSERT INTO health (node, instance_id, check_id, status, output, updated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (node, instance_id, check_id) DO UPDATE SET status = excluded.status, "
            "output = excluded.output, updated = excluded.updated",
            (row.node, row.instance_id, row.check_id, row.status.value, row.output, row.updated),
        )

    @_translated
    def health(self) -> list[HealthRow]:
        rows = self._db.execute("SELECT * FROM health ORDER BY node, instance_id, check_id")
        return [
            HealthRow(r["node"], r["instance_id"], r["check_id"], Status(r["status"]), r["output"], r["updated"])
            for r in rows
        ]

    # -- events -----------------------------------------------------------

    @_translated
    def append_event(self, event: Event) -> None:
        with self._transaction():
            self._append(time.time(), event)

    @_translated
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

    @_translated
    def set_retention(self, retention: Retention) -> None:
        """Record what may be pruned; the delete trigger reads it, so nothing younger or newer goes."""
        with self._transaction():
            self._db.execute(
                "UPDATE event_retention SET max_age = ?, max_rows = ? WHERE id = 1",
                (retention.max_age, retention.max_rows),
            )

    @_translated
    def retention(self) -> Retention:
        row = self._db.execute("SELECT max_age, max_rows FROM event_retention WHERE id = 1").fetchone()
        return Retention(float(row[0]), int(row[1]))

    @_translated
    def event_log_size(self) -> EventLogSize:
        """An upper bound of the rows (by seq, O(log n)) and the oldest event's time."""
        low, high = self._db.execute("SELECT min(seq), max(seq) FROM events").fetchone()
        if low is None:
            return EventLogSize(0, None, None)
        oldest = self._db.execute("SELECT ts FROM events WHERE seq = ?", (low,)).fetchone()
        return EventLogSize(int(high) - int(low) + 1, int(low), float(oldest[0]))

    @_translated
    def count_events(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    @_translated
    def prune_events_batch(self, now: float | None = None) -> int:
        """Delete up to PRUNE_BATCH of the oldest events the retention lets go; how many went.

        Beyond `max_rows` (by seq) or older than `max_age` may go, and nothing else:
        the delete trigger refuses the rest even if asked. One short transaction.
        """
        retention = self.retention()
        # A second inside the trigger's own cut-off: SQLite's clock reads milliseconds,
        # and one row it refuses would abort the whole batch.
        cutoff = (time.time() if now is None else now) - retention.max_age - 1.0
        with self._transaction():
            top = self._db.execute("SELECT max(seq) FROM events").fetchone()[0]
            if top is None:
                return 0
            rows = self._db.execute("SELECT seq FROM events ORDER BY seq LIMIT ?", (PRUNE_BATCH,)).fetchall()
            cursor = self._db.execute(
                "DELETE FROM events WHERE seq <= ? AND (seq <= ? OR ts < ?)",
                (rows[-1][0], int(top) - retention.max_rows, cutoff),
            )
        return int(cursor.rowcount)

    # -- maintenance windows ----------------------------------------------

    @_translated
    def windows(self) -> list[Window]:
        rows = self._db.execute("SELECT * FROM maintenance_windows ORDER BY starts, id")
        return [self._window(row) for row in rows]

    @_translated
    def add_window(self, window: Window, event_of: Callable[[Window], Event]) -> Window:
        """Store a new window (its `id` is ignored) with the event `event_of` makes of it; the window with its id."""
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO maintenance_windows (node, instance, kind, reason, drain_at, starts, ends, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (window.node, window.instance, window.kind.value, window.reason, window.drain_at, window.starts,
                 window.ends, window.created),
            )
            stored = dataclasses.replace(window, id=int(cursor.lastrowid or 0))
            self._append(time.time(), event_of(stored))
        return stored

    @_translated
    def update_window(self, window: Window, event: Event) -> None:
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE maintenance_windows SET reason = ?, drain_at = ?, starts = ?, ends = ? WHERE id = ?",
                (window.reason, window.drain_at, window.starts, window.ends, window.id),
            )
            if cursor.rowcount == 0:
                raise NotFoundError("maintenance window", str(window.id))
            self._append(time.time(), event)

    @_translated
    def delete_window(self, window_id: int, event: Event) -> None:
        """Delete a window with its event; one already gone is not an error (nothing is recorded)."""
        with self._transaction():
            cursor = self._db.execute("DELETE FROM maintenance_windows WHERE id = ?", (window_id,))
            if cursor.rowcount:
                self._append(time.time(), event)

    @staticmethod
    def _window(row: sqlite3.Row) -> Window:
        return Window(
            int(row["id"]), row["node"], row["instance"], MaintenanceKind(row["kind"]), row["reason"],
            float(row["drain_at"]), float(row["starts"]), None if row["ends"] is None else float(row["ends"]),
            float(row["created"]),
        )

    @_translated
    def events(self, limit: int = 100, before: int | None = None, kind: str | None = None) -> list[LoggedEvent]:
        """Newest first; page with `before` = the smallest `seq` of the previous page."""
        clauses, params = [], []  # type: list[str], list[Any]
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


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        # SQLite rolls some failures back by itself (SQLITE_FULL, SQLITE_IOERR, ...):
        # a ROLLBACK then would fail and hide the error that matters.
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

