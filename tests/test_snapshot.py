"""registry/snapshot.py: the incremental build from a change, as a table of cases."""

from __future__ import annotations

from registry.model import Entry, Instance, Node, Status
from registry.snapshot import Change, Key, Snapshot

NODES = {"n1": Node("n1", "10.0.0.1")}


def entry(instance_id: str, name: str, status: Status = Status.PASSING, discoverable: bool = True) -> Entry:
    instance = Instance(id=instance_id, name=name, node="n1", address="10.0.0.1", port=80, discoverable=discoverable)
    return Entry(instance, status)


def change(**entries: Entry | None) -> Change:
    return Change({("n1", key): value for key, value in entries.items()}, NODES, (), {})


def ids(entries: tuple[Entry, ...]) -> list[str]:
    return [e.instance.id for e in entries]


FIRST = Snapshot.first("internal", "n1", frozenset({Status.PASSING}), change(
    a1=entry("a1", "a"), a2=entry("a2", "a", Status.CRITICAL), b1=entry("b1", "b"),
))


def test_the_first_snapshot_groups_by_name_in_key_order() -> None:
    assert FIRST.index == 1
    assert {name: ids(group) for name, group in FIRST.entries_by_name.items()} == {"a": ["a1", "a2"], "b": ["b1"]}
    assert ids(FIRST.answerable("a")) == ["a1"]


def test_an_untouched_name_keeps_its_tuple_and_a_touched_one_is_regrouped() -> None:
    after = FIRST.successor(change(a3=entry("a3", "a")))
    assert after.index == 2
    assert after.entries_by_name["b"] is FIRST.entries_by_name["b"]
    assert ids(after.entries_by_name["a"]) == ["a1", "a2", "a3"]
    assert ids(FIRST.entries_by_name["a"]) == ["a1", "a2"]  # the old snapshot is never changed


def test_an_entry_that_changes_name_leaves_one_group_and_joins_the_other() -> None:
    after = FIRST.successor(change(b1=entry("b1", "a")))
    assert "b" not in after.entries_by_name and "b" not in after.answerable_by_name
    assert ids(after.entries_by_name["a"]) == ["a1", "a2", "b1"]


def test_a_removed_key_leaves_every_view() -> None:
    after = FIRST.successor(change(a1=None, gone=None))
    key: Key = ("n1", "a1")
    assert key not in after.entries_by_key
    assert ids(after.entries_by_name["a"]) == ["a2"] and after.answerable("a") == ()


def test_answerable_follows_status_and_discoverable() -> None:
    after = FIRST.successor(change(a2=entry("a2", "a"), a1=entry("a1", "a", discoverable=False)))
    assert ids(after.answerable("a")) == ["a2"]
    assert after.query("a") == [after.entries_by_key[("n1", "a2")]]
