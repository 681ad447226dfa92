"""SQLite store: idempotent migrations, durable writes, typed config with fallback, append-only events."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Callable, Iterator

import pytest

from registry.conflicts import WELL_KNOWN_RULES
from registry.errors import ConfigValueError, NotFoundError, StorageError, StorageFault
from registry.events import Event, EventKind
from registry.migrations import SCHEMA_VERSION
from registry.model import ConflictType, Status
from registry.store import HealthRow, Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state" / "pilotfish.db")
    yield s
    s.close()


def test_migrations_twice_give_the_same_schema(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    first = Store(path)
    schema = first.schema()
    first.migrate()
    assert first.schema() == schema
    first.close()
    again = Store(path)
    assert again.schema() == schema
    assert again.schema_version == SCHEMA_VERSION
    # The shipped rules are not duplicated by a second start.
    assert len(again.rules()) == len(WELL_KNOWN_RULES)
    again.close()


def test_wal_mode_and_writes_visible_to_another_connection(store: Store) -> None:
    store.save_registration("host1", "web-80", {"id": "web-80", "name": "web", "port": 80})
    other = sqlite3.connect(store.path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("SELECT id FROM registrations").fetchall() == [("web-80",)]
    finally:
        other.close()


def test_rules_are_unordered_and_unique(store: Store) -> None:
    count = len(store.rules())
    first = store.add_rule("zeta", "alpha", ConflictType.DEPENDENCY, "they share a lock file")
    again = store.add_rule("alpha", "zeta", ConflictType.PORT, "other words")
    assert (first.a, first.b) == ("alpha", "zeta")
    assert again.id == first.id and again.reason == "they share a lock file"
    assert len(store.rules()) == count + 1
    assert {(r.a, r.b) for r in store.rules()} >= {("redis-server", "redis-stack-server"), ("apache2", "nginx")}
    assert isinstance(first.id, int)  # SQLite's row id (a fleet rule's id is its pair)
    store.delete_rule(first.id)
    with pytest.raises(NotFoundError):
        store.delete_rule(first.id)


@pytest.mark.parametrize(
    "raw,value_type,expected",
    [
        ("30", "int", 30),
        (" -4 ", "int", -4),
        (12, "int", 12),
        ("true", "bool", True),
        ("off", "bool", False),
        (False, "bool", False),
        ("hello", "string", "hello"),
        ('{"a": [1, 2]}', "json", {"a": [1, 2]}),
        ({"b": 1}, "json", {"b": 1}),
    ],
)
def test_config_values_are_cast(store: Store, raw: object, value_type: str, expected: object) -> None:
    store.set_config(None, "k", raw, value_type)
    value = store.get_config(None, "k")
    assert value.value == expected and value.value_type == value_type


@pytest.mark.parametrize(
    "raw,value_type",
    [("thirty", "int"), ("1.5", "int"), (True, "int"), ("perhaps", "bool"), ("{oops", "json"), (3, "string"), ("x", "float")],
)
def test_bad_config_values_are_refused_and_nothing_changes(store: Store, raw: object, value_type: str) -> None:
    store.set_config(None, "k", "7", "int")
    with pytest.raises(ConfigValueError):
        store.set_config(None, "k", raw, value_type)
    assert store.get_config(None, "k").value == 7


def test_node_config_falls_back_to_global(store: Store) -> None:
    store.set_config(None, "timeout", "30", "int")
    store.set_config(None, "mode", "fast", "string")
    store.set_config("host1", "timeout", "5", "int")
    own = store.get_config("host1", "timeout")
    assert (own.value, own.scope) == (5, "node")
    inherited = store.get_config("host1", "mode")
    assert (inherited.value, inherited.scope) == ("fast", "global")
    assert store.get_config("host2", "timeout").value == 30
    view = store.config_view("host1")
    assert {k: (v.value, v.scope) for k, v in view.items()} == {"mode": ("fast", "global"), "timeout": (5, "node")}
    store.delete_config("host1", "timeout")
    assert store.get_config("host1", "timeout").scope == "global"
    with pytest.raises(NotFoundError):
        store.get_config("host1", "missing")
    with pytest.raises(NotFoundError):
        store.delete_config("host1", "timeout")


def test_events_are_append_only_and_paged_newest_first(store: Store) -> None:
    for n in range(5):
        store.append_event(Event(EventKind.REGISTRATION if n % 2 else EventKind.HEALTH, f"s{n}", {"n": n}))
    page = store.events(limit=2)
    assert [e.subject for e in page] == ["s4", "s3"]
    assert [e.subject for e in store.events(limit=2, before=page[-1].seq)] == ["s2", "s1"]
    assert [e.subject for e in store.events(kind="registration")] == ["s3", "s1"]
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._db.execute("DELETE FROM events")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._db.execute("UPDATE events SET kind = 'x'")


def test_health_rows_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    first = Store(path)
    first.write_batch([Event(EventKind.HEALTH, "web-80", {"to": "warning"})], [HealthRow("host1", "web-80", "web-80:tcp", Status.WARNING, "slow", 1.0)])
    first.close()
    again = Store(path)
    assert again.health() == [HealthRow("host1", "web-80", "web-80:tcp", Status.WARNING, "slow", 1.0)]
    again.close()


@pytest.mark.parametrize("raw", ['{"a": NaN}', "Infinity", "[" * 100_000])
def test_json_config_values_that_cannot_be_served_back_are_refused(store: Store, raw: str) -> None:
    with pytest.raises(ConfigValueError):
        store.set_config(None, "k", raw, "json")


# -- storage faults: specific errors, nothing half-written -----------------------


def fill(store: Store) -> int:
    """Register until the database refuses; how many were kept."""
    for n in range(10_000):
        try:
            store.save_registration("host1", f"big-{n}", {"id": f"big-{n}", "pad": "x" * 2000})
        except StorageError as exc:
            assert exc.fault is StorageFault.FULL
            return n
    raise AssertionError("the database never filled up")


def test_a_full_database_refuses_the_write_whole_and_says_so(tmp_path: Path) -> None:
    store = Store(tmp_path / "p.db", max_bytes=64 * 1024)
    kept = fill(store)
    assert kept > 0
    # The refused registration left nothing, and the store still reads and writes.
    assert [body["id"] for body in store.registrations()] == [f"big-{n}" for n in range(kept)]
    with pytest.raises(StorageError) as refused:
        store.save_registration("host1", "one-more", {"id": "one-more", "pad": "x" * 2000})
    assert "limits.database_size" in str(refused.value) and refused.value.path == str(tmp_path / "p.db")
    store.limit_size(None)
    store.save_registration("host1", "one-more", {"id": "one-more"})
    assert len(store.registrations()) == kept + 1
    store.close()


def test_a_damaged_header_is_refused_at_open_with_how_to_recover(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    Store(path).close()
    with path.open("r+b") as db:
        db.write(b"this is not a database header")
    with pytest.raises(StorageError) as refused:
        Store(path)
    assert refused.value.fault is StorageFault.CORRUPT
    message = str(refused.value)
    assert str(path) in message and "move" in message and "API registrations" in message


def damage_events(path: Path) -> None:
    """Overwrite the root page of the event log's B-tree, as a bad sector would."""
    store = Store(path)
    for n in range(2000):
        store.append_event(Event(EventKind.HEALTH, f"web-{n}", {"output": "x" * 100}))
    store.close()
    with closing(sqlite3.connect(path)) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    with path.open("r+b") as db:
        db.seek((root - 1) * page_size)
        db.write(b"\xff" * page_size)


def test_a_damaged_event_log_page_is_found_at_open_not_at_the_first_write(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    damage_events(path)
    with pytest.raises(StorageError) as refused:
        Store(path)
    assert refused.value.fault is StorageFault.CORRUPT


def test_a_read_only_file_is_opened_for_reading(tmp_path: Path, make_read_only: Callable[[Path], None]) -> None:
    path = tmp_path / "p.db"
    store = Store(path)
    store.save_registration("host1", "web-80", {"id": "web-80"})
    store.close()
    make_read_only(path)
    store = Store(path)
    assert store.read_only
    assert [body["id"] for body in store.registrations()] == ["web-80"]
    with pytest.raises(StorageError) as refused:
        store.save_registration("host1", "web-81", {"id": "web-81"})
    assert refused.value.fault is StorageFault.READ_ONLY
    assert [body["id"] for body in store.registrations()] == ["web-80"]
    store.close()
