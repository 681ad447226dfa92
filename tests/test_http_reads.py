"""resolver/http/reads.py: a body is taken over from the snapshot before only while all it is made of is unchanged."""

from __future__ import annotations

from registry.model import Entry, Instance, Node, Status
from registry.snapshot import Change, Snapshot
from resolver.http.reads import INDEX_HEADER, memo_body, memo_representation

NODES = {"n1": Node("n1", "10.0.0.1")}
WEB = Instance("web-1", "web", "n1", "10.0.0.1", 80)
DB = Instance("db-1", "db", "n1", "10.0.0.1", 5432)


def first() -> Snapshot:
    entries: dict[tuple[str, str], Entry | None] = {WEB.key: Entry(WEB, Status.PASSING), DB.key: Entry(DB, Status.PASSING)}
    return Snapshot.first("internal", "n1", frozenset({Status.PASSING}), Change(entries, NODES, (), {}))


def body(snapshot: Snapshot) -> bytes:
    """A body of web made of web's entries and the node map, stamped with the index it was built at."""
    return memo_body(snapshot, ("http", "test", "web"), lambda: snapshot.index,
                     (snapshot.entries_by_name.get("web"), snapshot.nodes))


def test_a_body_is_taken_over_while_what_it_is_made_of_is_the_same() -> None:
    before = first()
    assert body(before) == b"1"
    after = before.successor(Change({DB.key: None}, NODES, (), {}))
    assert body(after) == b"1"


def test_a_body_is_rebuilt_when_its_own_entries_change() -> None:
    before = first()
    body(before)
    after = before.successor(Change({WEB.key: Entry(WEB, Status.CRITICAL)}, NODES, (), {}))
    assert body(after) == b"2"


def test_a_body_is_rebuilt_when_only_the_nodes_change() -> None:
    """A fleet node renumbered: its instances are the same objects, the body names its new address."""
    before = first()
    body(before)
    after = before.successor(Change({}, {"n1": Node("n1", "10.0.0.9")}, (), {}))
    assert after.entries_by_name["web"] is before.entries_by_name["web"]
    assert body(after) == b"2"


def test_a_body_is_rebuilt_when_the_snapshot_before_is_gone() -> None:
    before = first()
    body(before)
    after = before.successor(Change({DB.key: None}, NODES, (), {}))
    del before
    assert body(after) == b"2"


def test_an_answer_taken_over_keeps_its_body_and_etag_under_the_new_index() -> None:
    """`GET /v1/services/{name}` answers carry the snapshot's index: a body taken over says the new one."""
    before = first()
    basis = (before.entries_by_name.get("web"),)
    old = memo_representation(before, ("http", "test", "web"), lambda: before.index, basis)
    after = before.successor(Change({DB.key: None}, NODES, (), {}))
    new = memo_representation(after, ("http", "test", "web"), lambda: after.index, (after.entries_by_name.get("web"),))
    assert new.plain.body == old.plain.body == b"1"
    assert new.plain.headers[INDEX_HEADER] == "2" and new.plain.headers["ETag"] == old.plain.headers["ETag"]
