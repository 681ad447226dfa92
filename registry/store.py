"""SQLite: what must survive a restart.

API registrations, conflict rules, node and global config and maintenance windows
here; health state and the event log, append-only within its retention, in
registry.store_log. Readers on the hot path never come here: the catalog copies
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
import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

from registry import events
from registry.configvalues import ConfigValue, cast_value, serialise_value
from registry.conflicts import WELL_KNOWN_RULES
from registry.errors import NotFoundError, StorageError, StorageFault
from registry.events import Event
from registry.migrations import MIGRATIONS, SCHEMA_VERSION
from registry.model import ConflictRule, ConflictType
from registry.states import MaintenanceKind, Window
from registry.storagefaults import fault_advice
from registry.store_log import PRUNE_BATCH, EventLogSize, HealthRow, JournalTables, Retention
from registry.storebase import translated

# What readers of the store import from here, though the event log's part keeps them.
__all__ = ["PRUNE_BATCH", "EventLogSize", "HealthRow", "Retention", "Store"]

# The largest max_page_count SQLite accepts: what "no cap" sets, leaving the disk as the limit.
SQLITE_MAX_PAGES = 4294967294
GLOBAL = ""  # the `node` column value of global config rows


class Store(JournalTables):
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

    @translated
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

    @translated
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

    def close(self) -> None:
        self._db.close()

    # -- schema -----------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @translated
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

    @translated
    def schema(self) -> list[tuple[str, str]]:
        """Every schema object as (name, sql): used to prove migrations are idempotent."""
        rows = self._db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        return [(row[0], row[1]) for row in rows]

    # -- registrations ----------------------------------------------------

    @translated
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

    @translated
    def delete_registration(self, node: str, instance_id: str, event: Event | None = None) -> bool:
        now = time.time()
        with self._transaction():
            cursor = self._db.execute("DELETE FROM registrations WHERE node = ? AND id = ?", (node, instance_id))
            self._db.execute("DELETE FROM health WHERE node = ? AND instance_id = ?", (node, instance_id))
            if cursor.rowcount and event:
                self._append(now, event)
        return cursor.rowcount > 0

    @translated
    def registrations(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT body FROM registrations ORDER BY created, node, id")
        return [json.loads(row[0]) for row in rows]

    # -- conflict rules ---------------------------------------------------

    @translated
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

    @translated
    def delete_rule(self, rule_id: int) -> ConflictRule:
        row = self._db.execute("SELECT * FROM conflict_rules WHERE id = ?", (rule_id,)).fetchone()
        if row is None:
            raise NotFoundError("conflict rule", str(rule_id))
        with self._transaction():
            self._db.execute("DELETE FROM conflict_rules WHERE id = ?", (rule_id,))
            self._append(time.time(), events.rule_deleted(row["a"], row["b"], rule_id))
        return self._rule(row)

    @translated
    def rules(self) -> list[ConflictRule]:
        return [self._rule(row) for row in self._db.execute("SELECT * FROM conflict_rules ORDER BY id")]

    @staticmethod
    def _rule(row: sqlite3.Row) -> ConflictRule:
        return ConflictRule(row["a"], row["b"], ConflictType(row["type"]), row["reason"], id=row["id"], source=row["source"])

    # -- config -----------------------------------------------------------

    @translated
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

    @translated
    def delete_config(self, node: str | None, key: str) -> None:
        with self._transaction():
            cursor = self._db.execute("DELETE FROM config WHERE node = ? AND key = ?", (node or GLOBAL, key))
        if cursor.rowcount == 0:
            raise NotFoundError("config key", key)

    @translated
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

    @translated
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

    # -- maintenance windows ----------------------------------------------

    @translated
    def windows(self) -> list[Window]:
        rows = self._db.execute("SELECT * FROM maintenance_windows ORDER BY starts, id")
        return [self._window(row) for row in rows]

    @translated
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

    @translated
    def update_window(self, window: Window, event: Event) -> None:
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE maintenance_windows SET reason = ?, drain_at = ?, starts = ?, ends = ? WHERE id = ?",
                (window.reason, window.drain_at, window.starts, window.ends, window.id),
            )
            if cursor.rowcount == 0:
                raise NotFoundError("maintenance window", str(window.id))
            self._append(time.time(), event)

    @translated
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
