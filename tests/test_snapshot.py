"""registry/snapshot.py: the incremental build from a change, as a table of cases and against a build from scratch."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import registry.snapshot as snapshot_module

from registry.model import CheckState, Entry, Instance, Node, Status
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


def test_a_change_that_no_answer_shows_keeps_the_answerable_tuple() -> None:
    """A critical instance that changes again is in no DNS answer: the name's answers carry over."""
    after = FIRST.successor(change(a2=entry("a2", "a", Status.WARNING)))
    assert after.entries_by_name["a"] is not FIRST.entries_by_name["a"]
    assert after.answerable("a") is FIRST.answerable("a")


def test_a_snapshot_records_the_keys_it_changed_over_the_one_it_was_built_from() -> None:
    after = FIRST.successor(change(a3=entry("a3", "a"), b1=None))
    assert set(after.changed_since(FIRST)) == {("n1", "a3"), ("n1", "b1")}
    # Not built from that one: every key of both, so a listener misses nothing.
    later = after.successor(change(a1=None))
    assert set(later.changed_since(FIRST)) == {("n1", "a1"), ("n1", "a2"), ("n1", "a3"), ("n1", "b1")}


def test_the_predecessor_is_held_weakly() -> None:
    base = FIRST.successor(change(a3=entry("a3", "a")))
    after = base.successor(change(a3=None))
    assert after.predecessor() is base
    del base
    gc.collect()
    assert after.predecessor() is None


def test_an_unchanged_node_map_is_handed_on_as_the_same_object() -> None:
    after = FIRST.successor(change(a3=entry("a3", "a")))
    assert after.nodes is FIRST.nodes
    moved = FIRST.successor(Change({}, {**NODES, "n2": Node("n2", "10.0.0.2")}, (), {}))
    assert moved.nodes is not FIRST.nodes and set(moved.nodes) == {"n1", "n2"}


# -- the incremental build against a build from scratch -----------------------------------

ENTRIES = st.builds(
    lambda node, number, name, status, discoverable, tags, checks: Entry(
        Instance(id=f"i{number}", name=name, node=node, address="10.0.0.1", port=80 + number,
                 discoverable=discoverable, tags=tags),
        status,
        tuple(CheckState(f"c{number}-{n}", check) for n, check in enumerate(checks)),
    ),
    st.sampled_from(["n1", "n2"]),
    st.integers(0, 5),
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(list(Status)),
    st.booleans(),
    st.lists(st.sampled_from(["blue", "Green", "v1"]), max_size=2).map(tuple),
    st.lists(st.sampled_from(list(Status)), max_size=2),
)
# A change: entries to set (keyed by their own key) or keys to remove.
CHANGES = st.lists(st.lists(st.one_of(ENTRIES, st.tuples(st.sampled_from(["n1", "n2"]), st.integers(0, 5))),
                            max_size=6), max_size=8)


def scratch(entries: dict[Key, Entry]) -> Snapshot:
    return Snapshot.first("internal", "n1", frozenset({Status.PASSING, Status.WARNING}),
                          Change(dict(entries), NODES, (), {}))


def tallied(snapshot: Snapshot) -> dict[str, object]:
    """Every view the build keeps, as plain values."""
    return {
        "by_key": dict(snapshot.entries_by_key.items()),
        "by_name": dict(snapshot.entries_by_name.items()),
        "answerable": dict(snapshot.answerable_by_name.items()),
        "names": dict(snapshot.discoverable_names.items()),
        "tags": dict(snapshot.discoverable_tags.items()),
        "statuses": dict(snapshot.status_counts),
        "local_statuses": dict(snapshot.local_status_counts),
        "local_checks": dict(snapshot.local_check_counts),
    }


@settings(max_examples=300, deadline=None)
@given(changes=CHANGES, whole=st.booleans())
def test_every_view_after_a_run_of_changes_is_what_a_build_from_scratch_gives(
    changes: list[list[Entry | tuple[str, int]]], whole: bool,
) -> None:
    """`whole`: every touched name regrouped by sorting, as a change of many entries in one name is."""
    with pytest.MonkeyPatch.context() as patch:
        if whole:
            patch.setattr(snapshot_module, "REGROUP_WHOLE_AT", 1)
        run_of_changes(changes)


def run_of_changes(changes: list[list[Entry | tuple[str, int]]]) -> None:
    current = scratch({})
    held: dict[Key, Entry] = {}
    for items in changes:
        delta: dict[Key, Entry | None] = {}
        for item in items:
            if isinstance(item, Entry):
                delta[item.instance.key] = item
            else:
                delta[(item[0], f"i{item[1]}")] = None
        before = current
        current = current.successor(Change(delta, NODES, (), {}))
        for key, value in delta.items():
            if value is None:
                held.pop(key, None)
            else:
                held[key] = value
        assert tallied(current) == tallied(scratch(held))
        touched = {e.instance.name for e in delta.values() if e is not None}
        touched |= {before.entries_by_key[k].instance.name for k in delta if k in before.entries_by_key}
        for name, group in before.entries_by_name.items():
            if name not in touched:
                assert current.entries_by_name[name] is group
        assert set(current.changed_since(before)) == set(delta)
    assert current.service_names() == sorted(current.discoverable_names)
    assert current.service_count() == len(current.discoverable_names)
