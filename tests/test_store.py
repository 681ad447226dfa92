"""SQLite store: idempotent migrations, durable writes, typed config with fallback, append-only events."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from registry.conflicts import WELL_KNOWN_RULES
from registry.errors import ConfigValueError, NotFoundError
from registry.model import ConflictType, Status
from registry.store import SCHEMA_VERSION, HealthRow, Store


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
        store.append_event("registration" if n % 2 else "health", f"s{n}", {"n": n})
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
    first.write_batch([("health", "web-80", {"to": "warning"})], [HealthRow("host1", "web-80", "web-80:tcp", Status.WARNING, "slow", 1.0)])
    first.close()
    again = Store(path)
    assert again.health() == [HealthRow("host1", "web-80", "web-80:tcp", Status.WARNING, "slow", 1.0)]
    again.close()


@pytest.mark.parametrize("raw", ['{"a": NaN}', "Infinity", "[" * 100_000])
def test_json_config_values_that_cannot_be_served_back_are_refused(store: Store, raw: str) -> None:
    with pytest.raises(ConfigValueError):
        store.set_config(None, "k", raw, "json")
