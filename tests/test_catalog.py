"""The catalog writer: snapshots are immutable, changes are all-or-nothing, refusals change nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from conftest import NODE, hold, status_of
from registry.catalog import Catalog
from registry.errors import (
    ConflictError,
    DuplicateIdError,
    NotFoundError,
    ReadOnlyError,
    StorageError,
    ValidationError,
)
from registry.events import Event, EventKind
from registry.instances import NOT_CHECKED
from registry.model import CheckKind, CheckSpec, CheckState, Instance, Source, Status
from registry.schema import load_text, parse_registration
from registry.states import Hold, NodeState, Trigger
from registry.store import Store


def api(body: dict[str, object]) -> Instance:
    return parse_registration(body, NODE)


def test_api_registration_is_stored_and_visible_in_one_snapshot(catalog: Catalog) -> None:
    before = catalog.current
    entry, created = catalog.register(api({"name": "web", "port": 8080, "protocol": "http", "tags": ["blue"]}))
    assert created and entry.status is Status.PASSING
    after = catalog.current
    assert after.index == before.index + 1
    assert [e.instance.id for e in after.query("web")] == ["web-8080"]
    assert before.query("web") == []  # the old snapshot never changes
    assert [b["id"] for b in catalog.store.registrations()] == ["web-8080"]
    _, created = catalog.register(api({"name": "web", "port": 8080, "protocol": "http", "tags": ["green"]}))
    assert not created
    assert catalog.current.query("web")[0].instance.tags == ("green",)


def test_refused_registration_leaves_store_and_snapshot_unchanged(catalog: Catalog) -> None:
    catalog.register(api({"name": "redis-server"}))
    snapshot, stored = catalog.current, catalog.store.registrations()
    with pytest.raises(ConflictError) as info:
        catalog.register(api({"name": "redis-stack-server", "port": 6380}))
    assert info.value.rule is not None and info.value.incumbent.name == "redis-server"
    with pytest.raises(ConflictError):
        catalog.register(api({"name": "other", "port": 6379}))  # same socket, no rule needed
    assert catalog.current is snapshot
    assert catalog.store.registrations() == stored
    # The refusal is in the event log.
    assert catalog.store.events(kind="rejection")[0].subject == "api:other-6379"


def test_file_lifecycle_and_rejection_keeps_previous_state(catalog: Catalog, tmp_path: Path) -> None:
    path = str(tmp_path / "redis.yaml")
    catalog.apply_file(path, load_text("name: redis\nport: 6379\n", path, NODE))
    assert [e.instance.port for e in catalog.current.query("redis")] == [6379]
    catalog.reject_file(path, [])
    assert path in catalog.current.file_errors
    assert [e.instance.port for e in catalog.current.query("redis")] == [6379]
    catalog.apply_file(path, load_text("name: redis\nport: 6380\n", path, NODE))
    assert path not in catalog.current.file_errors
    assert [e.instance.port for e in catalog.current.query("redis")] == [6380]
    catalog.remove_file(path)
    assert catalog.current.query("redis", statuses=None) == []
    assert "redis" not in catalog.current.entries_by_name


def test_conflicting_file_is_rejected_whole(catalog: Catalog, tmp_path: Path) -> None:
    catalog.register(api({"name": "nginx"}))
    path = str(tmp_path / "web.yaml")
    text = "services:\n  - name: api\n    port: 9000\n  - name: apache2\n    port: 8081\n"
    snapshot_before = catalog.current.index
    with pytest.raises(ConflictError):
        catalog.apply_file(path, load_text(text, path, NODE))
    assert catalog.current.query("api") == []
    problems = catalog.current.file_errors[path]
    assert "conflicts with nginx" in problems[0].message
    assert catalog.current.index == snapshot_before + 1  # only the error was published


def test_file_cannot_take_an_api_id_and_api_cannot_delete_file_instances(catalog: Catalog, tmp_path: Path) -> None:
    catalog.register(api({"name": "web", "port": 8080}))
    path = str(tmp_path / "web.yaml")
    with pytest.raises(DuplicateIdError):
        catalog.apply_file(path, load_text("name: web\nport: 8080\n", path, NODE))
    other = str(tmp_path / "db.yaml")
    catalog.apply_file(other, load_text("name: postgresql\n", other, NODE))
    with pytest.raises(ReadOnlyError) as info:
        catalog.deregister("postgresql-5432")
    assert other in str(info.value)
    with pytest.raises(DuplicateIdError):
        catalog.register(api({"name": "postgresql"}))
    with pytest.raises(NotFoundError):
        catalog.deregister("nope")


def test_query_filters(catalog: Catalog) -> None:
    for port, tags, version, meta in [
        (1, ["a", "b"], "1", {"zone": "x"}),
        (2, ["a"], "2", {"zone": "y"}),
        (3, ["b"], "1", {"zone": "x"}),
    ]:
        catalog.register(api({"name": "svc", "port": port, "tags": tags, "version": version, "meta": meta}))
    catalog.register(api({"name": "svc", "port": 4, "discoverable": False}))
    snap = catalog.current

    def ports(**filters: object) -> list[int]:
        return [e.instance.port for e in snap.query("svc", **filters)]  # type: ignore[arg-type]

    assert ports() == [1, 2, 3]
    assert ports(tags=["a"]) == [1, 2]
    assert ports(tags=["a", "b"]) == [1]
    assert ports(version="1") == [1, 3]
    assert ports(meta={"zone": "x"}, tags=["b"]) == [1, 3]
    assert ports(node="elsewhere") == []
    assert [e.instance.port for e in snap.answerable("svc")] == [1, 2, 3]
    assert snap.service_names() == ["svc"]


def test_health_changes_publish_only_on_status_change(catalog: Catalog) -> None:
    entry, _ = catalog.register(
        api({"name": "web", "port": 80, "checks": [{"tcp": "127.0.0.1:80"}, {"ttl": "30s"}]})
    )
    instance = entry.instance
    assert entry.status is Status.CRITICAL  # not checked yet
    assert catalog.current.answerable("web") == ()
    assert catalog.current.entries_by_name["web"]  # known, so DNS says NODATA, not NXDOMAIN
    index = catalog.current.index
    catalog.set_check_state(instance, CheckState("web-80:tcp", Status.PASSING, "ok", 1.0))
    assert status_of(catalog, "web-80") is Status.CRITICAL  # the ttl check is still critical
    assert catalog.set_check_state(instance, CheckState("web-80:ttl", Status.PASSING, "ok", 2.0))
    assert status_of(catalog, "web-80") is Status.PASSING
    index = catalog.current.index
    assert not catalog.set_check_state(instance, CheckState("web-80:ttl", Status.PASSING, "still ok", 3.0))
    assert catalog.current.index == index
    assert catalog.store.events(kind="health")[0].detail["to"] == "passing"


def test_node_and_instance_maintenance_drain_answers(catalog: Catalog) -> None:
    catalog.register(api({"name": "web", "port": 80}))
    catalog.register(api({"name": "web", "port": 81}))
    hold(catalog, "web-80", "disk swap")
    assert [e.instance.port for e in catalog.current.answerable("web")] == [81]
    catalog.set_node_maintenance(Hold(NodeState.MAINTENANCE, "kernel upgrade", None, 1), Trigger.API)
    assert catalog.current.answerable("web") == ()
    assert status_of(catalog, "web-81") is Status.MAINTENANCE
    catalog.set_node_maintenance(None, Trigger.API)
    hold(catalog, "web-80", None)
    assert len(catalog.current.answerable("web")) == 2
    assert [e.detail["to"] for e in catalog.store.events(kind="node")] == ["online", "maintenance"]


def test_api_registrations_and_health_survive_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "p.db")
    first = Catalog(store, NODE)
    entry, _ = first.register(api({"name": "web", "port": 80, "checks": [{"ttl": "30s"}]}))
    first.set_check_state(entry.instance, CheckState("web-80:ttl", Status.WARNING, "slow", 1.0))
    store.close()
    store = Store(tmp_path / "p.db")
    again = Catalog(store, dataclasses.replace(NODE, address="10.0.0.9"))
    assert again.load_api_registrations(lambda body: parse_registration(body, again.identity)) == []
    restored = again.current.entry("web-80")
    assert restored is not None and restored.status is Status.WARNING
    assert restored.instance.address == "10.0.0.9"  # a defaulted address follows the node
    store.close()


def test_batch_publishes_one_snapshot(catalog: Catalog) -> None:
    index = catalog.current.index
    with catalog.batch():
        for port in range(10):
            catalog.register(api({"name": "web", "port": 9000 + port}))
    assert catalog.current.index == index + 1
    assert len(catalog.current.query("web")) == 10


def test_wait_past_returns_on_change_or_timeout(catalog: Catalog) -> None:
    async def scenario() -> tuple[int, int]:
        start = catalog.current.index
        from_before_a_restart = await asyncio.wait_for(catalog.wait_past(start + 100, 10), 1)
        assert from_before_a_restart.index == start
        timed_out = await catalog.wait_past(start, 0.05)
        waiter = asyncio.ensure_future(catalog.wait_past(start, 10))
        await asyncio.sleep(0)
        assert not waiter.done()
        catalog.register(api({"name": "web", "port": 80}))
        released = await asyncio.wait_for(waiter, 1)
        return timed_out.index - start, released.index - start

    assert asyncio.run(scenario()) == (0, 1)


def test_invalid_body_never_reaches_the_catalog(catalog: Catalog) -> None:
    with pytest.raises(ValidationError):
        catalog.register(api({"name": "web"}))
    assert catalog.current.index == 1


def test_instance_ttl_expires_unless_refreshed(catalog: Catalog) -> None:
    import time

    catalog.register(api({"name": "job", "port": 7000, "ttl": "30s"}))
    catalog.register(api({"name": "job", "port": 7001}))
    now = time.monotonic()
    assert catalog.expire_due(now + 10) == []
    catalog.register(api({"name": "job", "port": 7000, "ttl": "30s"}))  # the refresh
    assert catalog.expire_due(now + 29) == []
    [gone] = catalog.expire_due(now + 31)
    assert gone.id == "job-7000"
    assert [e.instance.port for e in catalog.current.query("job")] == [7001]
    assert [b["id"] for b in catalog.store.registrations()] == ["job-7001"]
    assert catalog.store.events(kind="deregistration")[0].detail == {"reason": "ttl expired"}


def test_a_batch_that_changes_nothing_publishes_nothing(catalog: Catalog) -> None:
    index = catalog.current.index
    with catalog.batch():
        assert catalog.expire_due() == []
    assert catalog.current.index == index


def file_instances(count: int, path: str, first_port: int = 10_000) -> list[Instance]:
    """`count` checked instances of 100 services, as one services.d file would register them."""
    return [
        Instance(
            id=f"i{n}", name=f"svc{n % 100}", node=NODE.node, address=NODE.address, port=first_port if n == 0 else 20_000 + n,
            checks=(CheckSpec(f"i{n}:tcp", CheckKind.TCP, f"127.0.0.1:{20_000 + n}"),), source=Source.file(path),
        )
        for n in range(count)
    ]


def test_a_one_line_edit_of_a_big_file_touches_only_what_changed(catalog: Catalog) -> None:
    path = "/srv/services.d/big.yaml"
    catalog.apply_file(path, file_instances(10_000, path))
    before = catalog.current
    started = time.perf_counter()
    catalog.apply_file(path, file_instances(10_000, path, first_port=10_001))
    seconds = time.perf_counter() - started
    after = catalog.current
    assert after.entry("i0") is not None and after.entry("i0").instance.port == 10_001  # type: ignore[union-attr]
    # The other 9,999 entries are the very objects of the previous snapshot: the edit
    # did one instance's work, not the file's.
    assert all(after.entry(f"i{n}") is before.entry(f"i{n}") for n in range(1, 10_000))
    # Quadratic, this took 7 s; linear in the change it takes milliseconds (bench/registry.py).
    assert seconds < 3.0


def test_an_instance_moving_between_files_in_one_batch_keeps_checks_and_maintenance(catalog: Catalog) -> None:
    text = "name: web\nport: 8080\nchecks:\n  - tcp: 127.0.0.1:8080\n"
    old, new = "/srv/services.d/a.yaml", "/srv/services.d/b.yaml"
    catalog.apply_file(old, load_text(text, old, NODE))
    catalog.apply_file("/srv/services.d/db.yaml", load_text(text.replace("web", "db").replace("8080", "5432"),
                                                             "/srv/services.d/db.yaml", NODE))
    web, db = catalog.instance("web-8080"), catalog.instance("db-5432")
    assert web is not None and db is not None
    for instance in (web, db):
        catalog.set_check_state(instance, CheckState(instance.checks[0].id, Status.PASSING, "connected", time.time()))
    hold(catalog, "db-5432", "resharding")
    with catalog.batch():  # `mv a.yaml b.yaml` as the watcher applies it: removal first
        catalog.remove_file(old)
        catalog.apply_file(new, load_text(text, new, NODE))
        catalog.remove_file("/srv/services.d/db.yaml")
        catalog.apply_file("/srv/services.d/db2.yaml", load_text(text.replace("web", "db").replace("8080", "5432"),
                                                                  "/srv/services.d/db2.yaml", NODE))
    moved = catalog.current.entry("web-8080")
    assert moved is not None and moved.instance.source == Source.file(new)
    assert (moved.status, moved.checks[0].output) == (Status.PASSING, "connected")
    assert [e.instance.id for e in catalog.current.answerable("web")] == ["web-8080"]
    drained = catalog.current.entry("db-5432")
    assert drained is not None and (drained.status, drained.maintenance_reason) == (Status.MAINTENANCE, "resharding")


def test_a_check_changed_by_the_move_starts_afresh_and_a_later_return_is_new(catalog: Catalog) -> None:
    old, new = "/srv/a.yaml", "/srv/b.yaml"
    catalog.apply_file(old, load_text("name: web\nport: 8080\nchecks:\n  - tcp: 127.0.0.1:8080\n", old, NODE))
    web = catalog.instance("web-8080")
    assert web is not None
    catalog.set_check_state(web, CheckState(web.checks[0].id, Status.PASSING, "connected", time.time()))
    hold(catalog, "web-8080", "resharding")
    with catalog.batch():
        catalog.remove_file(old)
        catalog.apply_file(new, load_text("name: web\nport: 8080\nchecks:\n  - tcp: 127.0.0.1:9999\n", new, NODE))
    moved = catalog.current.entry("web-8080")
    assert moved is not None and moved.checks[0].output == NOT_CHECKED and moved.status is Status.MAINTENANCE
    catalog.remove_file(new)  # published: what it held is forgotten
    catalog.apply_file(old, load_text("name: web\nport: 8080\n", old, NODE))
    back = catalog.current.entry("web-8080")
    assert back is not None and back.status is Status.PASSING and back.maintenance_reason is None


def test_a_change_is_served_even_when_its_events_cannot_be_saved(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(tmp_path / "p.db", max_bytes=64 * 1024)
    catalog = Catalog(store, NODE)
    try:
        with pytest.raises(StorageError):
            for n in range(10_000):  # fill the database with API registrations
                catalog.register(api({"name": "big", "id": f"big-{n}", "port": 1000 + n, "meta": {"pad": "x" * 2000}}))
        registered = len(store.registrations())
        assert len(catalog.current.query("big")) == registered  # the refused one is not served
        with pytest.raises(StorageError):
            for n in range(10_000):  # and the last free bytes of its pages
                store.append_event(Event(EventKind.HEALTH, str(n), {}))
        # A file change (and a health result) is what happened, whatever SQLite says:
        # it is served, and its event waits for the next write that succeeds.
        catalog.apply_file("/srv/web.yaml", load_text("name: web\nport: 80\n", "/srv/web.yaml", NODE))
        assert [e.instance.id for e in catalog.current.query("web")] == ["web-80"]
        assert "events and health states not saved" in caplog.text
        store.limit_size(None)
        n = 0

        def saved() -> bool:
            nonlocal n
            n += 1  # each change tries again once UNSAVED_RETRY has passed
            path = f"/srv/other-{n}.yaml"
            catalog.apply_file(path, load_text(f"name: other\nid: other-{n}\nport: {2000 + n}\n", path, NODE))
            return any(e.subject == "file:/srv/web.yaml" for e in store.events(kind="registration"))

        deadline = time.monotonic() + 10
        while not saved():
            assert time.monotonic() < deadline, "the waiting event was never saved"
            time.sleep(0.05)
    finally:
        store.close()
