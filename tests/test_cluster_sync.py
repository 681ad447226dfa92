"""ClusterSync in process: real catalogs on real SQLite following one real etcd.

Another program writing into etcd (an older pilotfish, a broken one, an attacker) is
played by a plain aetcd client. Each test has a prefix of its own on the module's etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import AsyncIterator

import pytest

from conftest import eventually, free_port, run
from etcdkit import EtcdFactory, EtcdServer, keys_under, other_node
from registry.catalog import Catalog
from registry.cluster.etcd import EtcdClient
from registry.cluster.keys import instance_key, node_key
from registry.cluster.kv import Write
from registry.cluster.records import encode_instance
from registry.cluster.settings import Backoff, FleetSettings
from registry.cluster.sync import STOP_TIMEOUT, ClusterSync
from registry.endpoints import parse_etcd
from registry.health.runner import HealthRunner
from registry.configvalues import ConfigValue
from registry.model import CLUSTER, Entry, Node, NodeIdentity, Status
from registry.remote import RemoteBatch, RemoteLimits
from registry.schema import parse_registration
from registry.states import Hold, NodeState, Trigger
from registry.store import Store

WITHIN = 5.0


@contextlib.asynccontextmanager
async def member(tmp_path: Path, etcd: EtcdServer, prefix: str, node: str, n: int) -> AsyncIterator[ClusterSync]:
    """One node of the fleet: a catalog on its own SQLite, following `prefix`, until the block ends."""
    store = Store(tmp_path / f"{node}.db")
    catalog = Catalog(store, NodeIdentity(node, f"127.0.0.{51 + n}"))
    sync = ClusterSync(catalog, FleetSettings((parse_etcd(etcd.endpoint),), prefix, 2, "dc1"), "test")
    await sync.start()
    try:
        await eventually(lambda: sync.state.value == "synced", WITHIN, f"{node} to join")
        yield sync
    finally:
        await sync.stop()
        store.close()


def status_on(sync: ClusterSync, node: str, instance_id: str) -> Status | None:
    entry = sync.catalog.current.entry(instance_id, node)
    return entry.status if entry is not None else None


def register(catalog: Catalog, body: dict[str, object]) -> Entry:
    entry, _ = catalog.register(parse_registration(body, catalog.identity))
    return entry


def foreign_entry(node: str, address: str, body: dict[str, object]) -> bytes:
    instance = parse_registration(body, NodeIdentity(node, address))
    return encode_instance(Entry(instance, Status.PASSING))


def test_one_watch_response_is_one_snapshot(tmp_path: Path, etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        async with member(tmp_path, etcd, etcd_prefix, "a", 0) as a, EtcdClient([etcd.endpoint]) as writer:
            before = a.catalog.current.index
            writes = [Write(instance_key(etcd_prefix, "x", f"web{n}"),
                            foreign_entry("x", "10.9.0.1", {"name": "web", "id": f"web{n}", "port": 8000 + n}))
                      for n in range(100)]
            await writer.apply(writes)  # one transaction
            await eventually(lambda: len(a.catalog.current.answerable("web")) == 100, WITHIN, "the batch")
            assert a.catalog.current.index == before + 1
            entry = a.catalog.current.entry("web7", "x")
            assert entry is not None and str(entry.instance.source) == "cluster" and entry.instance.node == "x"

    run(main())


def test_hostile_keys_are_skipped_logged_once_and_our_node_is_ours(
    tmp_path: Path, etcd: EtcdServer, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with member(tmp_path, etcd, etcd_prefix, "a", 0) as a, other_node(etcd) as other:
            register(a.catalog, {"name": "db", "port": 5432})
            good = foreign_entry("x", "10.9.0.1", {"name": "web", "port": 80})
            bad_key = f"{etcd_prefix}instances/x/bad id"
            for _ in range(3):  # the same bad key again and again: one line
                await other.put(bad_key.encode(), good)
            await other.put(f"{etcd_prefix}instances/x/notjson".encode(), b"{nope")
            await other.put(f"{etcd_prefix}nodes/x".encode(), b'{"node": "y", "address": "10.9.0.1", "state": "online"}')
            # Another writer claiming our node, with a value that would decode fine.
            await other.put(instance_key(etcd_prefix, "a", "intruder").encode(),
                            foreign_entry("a", "10.6.6.6", {"name": "intruder", "id": "intruder", "port": 1}))
            await other.put(instance_key(etcd_prefix, "x", "web-80").encode(), good)
            await eventually(lambda: a.catalog.current.answerable("web"), WITHIN, "the good key")
            snapshot = a.catalog.current
            assert snapshot.answerable("intruder") == () and "x" not in snapshot.nodes
            assert [e.instance.id for e in snapshot.answerable("db")] == ["db-5432"]
            assert a.follower.bad_records == 5
            # One line now, the rest counted into the next (rate-limited), whoever keeps writing.
            [refused] = [r for r in caplog.records if r.msg == "etcd key refused; treated as absent"]
            assert getattr(refused, "key") == bad_key and "instance id" in getattr(refused, "reason")
            # A bad value replacing a good one takes the good one away.
            await other.put(instance_key(etcd_prefix, "x", "web-80").encode(), b"[]")
            await eventually(lambda: not a.catalog.current.answerable("web"), WITHIN, "the bad value to remove it")

    caplog.set_level(logging.WARNING, "pilotfish.cluster")
    run(main())


def test_a_fleet_cannot_make_a_daemon_hold_without_bound(
    tmp_path: Path, etcd: EtcdServer, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with member(tmp_path, etcd, etcd_prefix, "a", 0) as a, EtcdClient([etcd.endpoint]) as writer:
            a.catalog.remote.limits = RemoteLimits(instances=10, nodes=10, rules=10, config=10)
            await writer.apply([Write(instance_key(etcd_prefix, "x", f"w{n}"),
                                      foreign_entry("x", "10.9.0.1", {"name": "w", "id": f"w{n}", "port": 1000 + n}))
                                for n in range(25)])
            await eventually(lambda: a.refused["instances"] == 15, WITHIN, "the refusals")
            assert len(a.catalog.current.entries_by_name["w"]) == 10
            assert any(r.msg == "fleet view full: keys refused" for r in caplog.records)
            # What is held still changes; room made by a removal is taken by the next new key.
            await writer.apply([], [instance_key(etcd_prefix, "x", "w0")])
            await eventually(lambda: len(a.catalog.current.entries_by_name["w"]) == 9, WITHIN, "the removal")

    caplog.set_level(logging.WARNING, "pilotfish.cluster")
    run(main())


def test_only_the_owner_checks_and_the_others_serve_its_status(tmp_path: Path, etcd: EtcdServer,
                                                                etcd_prefix: str) -> None:
    async def main() -> None:
        async with member(tmp_path, etcd, etcd_prefix, "a", 0) as a, member(tmp_path, etcd, etcd_prefix, "b", 1) as b:
            runners = [HealthRunner(a.catalog), HealthRunner(b.catalog)]
            for runner in runners:
                await runner.start()
            try:
                # Nothing listens on this port: a's check fails, and b must not run it at all.
                register(a.catalog, {"name": "web", "port": 1, "address": "127.0.0.1",
                                     "checks": [{"tcp": "127.0.0.1:1", "interval": "1s"}]})
                await eventually(lambda: b.catalog.current.entry("web-1", "a"), WITHIN, "web on b")
                await eventually(lambda: status_on(b, "a", "web-1") is Status.CRITICAL, WITHIN, "the check's result")
                entry = b.catalog.current.entry("web-1", "a")
                assert entry is not None and [c.status for c in entry.checks] == [Status.CRITICAL]
                assert runners[0].scheduled() == 1 and runners[1].scheduled() == 0
                # The owner's maintenance is what the others serve.
                a.catalog.set_node_maintenance(Hold(NodeState.MAINTENANCE, "disk swap", None, 1), Trigger.API)
                await eventually(lambda: b.catalog.current.nodes["a"].state is NodeState.MAINTENANCE, WITHIN, "node")
                await eventually(lambda: status_on(b, "a", "web-1") is Status.MAINTENANCE, WITHIN, "maintenance on b")
            finally:
                for runner in runners:
                    await runner.stop()

    run(main())


def remote(node: str, body: dict[str, object]) -> Entry:
    instance = parse_registration(body, NodeIdentity(node, "10.0.0.9"), source=CLUSTER)
    return Entry(instance, Status.PASSING)


def test_ours_wins_a_key_the_fleet_also_holds(store: Store) -> None:
    catalog = Catalog(store, NodeIdentity("a", "127.0.0.51"))
    theirs = remote("x", {"name": "ext", "port": 80})
    # An instance registered here for node x (an external service), and the fleet's under the same key.
    ours, _ = catalog.register(parse_registration({"name": "ext", "port": 80, "node": "x", "address": "10.0.0.1"},
                                                  catalog.identity))
    catalog.apply_remote(RemoteBatch(instances={theirs.instance.key: theirs}))
    assert catalog.current.entry("ext-80", "x") == ours
    catalog.deregister("ext-80", "x")
    assert catalog.current.entry("ext-80", "x") == theirs  # ours leaving uncovers theirs


def test_the_fleet_has_no_say_on_this_node(store: Store) -> None:
    catalog = Catalog(store, NodeIdentity("a", "127.0.0.51"))
    claim = remote("a", {"name": "web", "port": 80})
    outcome = catalog.apply_remote(RemoteBatch(instances={claim.instance.key: claim},
                                               nodes={"a": Node("a", "10.6.6.6")}))
    assert outcome.ignored_own == 2 and not outcome.changed
    assert catalog.current.entry("web-80") is None and catalog.current.nodes["a"].address == "127.0.0.51"


def test_fleet_config_moves_the_index_so_blocking_config_reads_wake(store: Store) -> None:
    catalog = Catalog(store, NodeIdentity("a", "127.0.0.51"))
    before = catalog.current.index
    pool = ConfigValue("pool", 8, "int", "global", None)
    assert catalog.apply_remote(RemoteBatch(config={(None, "pool"): pool})).changed
    assert catalog.current.index > before
    assert not catalog.apply_remote(RemoteBatch(config={(None, "pool"): pool})).changed  # the same value: no wake


def test_remote_instances_take_no_part_in_this_nodes_conflicts(store: Store) -> None:
    catalog = Catalog(store, NodeIdentity("a", "127.0.0.51"))
    theirs = remote("x", {"name": "redis-server", "port": 6379, "address": "127.0.0.51"})
    catalog.apply_remote(RemoteBatch(instances={theirs.instance.key: theirs}))
    # Same address, port and a shipped rule's other side: on another node, none of it matters here.
    register(catalog, {"name": "redis-stack-server", "port": 6379})
    assert len(catalog.current.entries_by_key) == 2


def test_a_restarted_daemon_takes_down_what_it_no_longer_owns(tmp_path: Path, etcd: EtcdServer,
                                                               etcd_prefix: str) -> None:
    async def main() -> None:
        async with EtcdClient([etcd.endpoint]) as writer:
            # A previous run of node a, killed: its keys live on under a lease that is still valid.
            lease = await writer.grant_lease(60)
            await writer.apply([
                Write(node_key(etcd_prefix, "a"), b'{"node":"a","address":"127.0.0.51","state":"online"}', lease),
                Write(instance_key(etcd_prefix, "a", "gone-1"),
                      foreign_entry("a", "127.0.0.51", {"name": "gone", "port": 1}), lease),
            ])
            async with member(tmp_path, etcd, etcd_prefix, "a", 0) as a:
                register(a.catalog, {"name": "kept", "port": 2})
                await eventually(lambda: keys_of(writer, etcd_prefix, "a"), WITHIN, "a published")

                async def published() -> bool:
                    return await keys_of(writer, etcd_prefix, "a") == {"nodes/a", "instances/a/kept-2"}

                await eventually(published, WITHIN, "only what a owns now")
            await writer.revoke(lease)

    run(main())


async def keys_of(client: EtcdClient, prefix: str, node: str) -> set[str]:
    keys = await keys_under(client, prefix)
    return {key[len(prefix):] for key in keys if key.endswith(f"/{node}") or f"/{node}/" in key}


def test_a_slow_etcd_delays_no_local_change_and_changes_are_coalesced(
    tmp_path: Path, start_etcd: EtcdFactory, etcd_prefix: str
) -> None:
    server = start_etcd()

    async def main() -> None:
        async with member(tmp_path, server, etcd_prefix, "a", 0) as a, EtcdClient([server.endpoint]) as reader:
            server.freeze()
            try:
                started = time.perf_counter()
                for n in range(200):  # one instance changed over and over while etcd does not answer
                    register(a.catalog, {"name": "web", "id": "web", "port": 1000 + n})
                assert time.perf_counter() - started < 1.0
                assert a.catalog.current.entry("web") is not None
                await eventually(lambda: a.state.value == "stale", WITHIN, "stale")
                assert a.publisher.pending <= 2  # one key and the node record, not 200 writes
            finally:
                server.thaw()
            written = a.publisher.written
            await eventually(lambda: a.state.value == "synced", WITHIN + 5, "back in sync")

            async def latest() -> bool:
                value = (await keys_under(reader, etcd_prefix)).get(instance_key(etcd_prefix, "a", "web"))
                return value is not None and b'"port":1199' in value

            await eventually(latest, WITHIN, "the latest value")
            assert a.publisher.written - written <= 4

    run(main(), timeout=60)


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(first=0.25, cap=3.0)
    delays = [backoff.next() for _ in range(50)]
    assert all(0 <= d <= 3.0 for d in delays) and len(set(delays)) > 40
    assert max(delays[:2]) <= 0.5
    backoff.reset()
    assert backoff.next() <= 0.25


def test_stop_gives_up_on_a_dead_etcd_within_its_bound(tmp_path: Path, start_etcd: EtcdFactory,
                                                       etcd_prefix: str) -> None:
    server = start_etcd()

    async def main() -> None:
        async with member(tmp_path, server, etcd_prefix, "a", 0) as a:
            register(a.catalog, {"name": "web", "port": 80})
            await asyncio.sleep(0)
            server.kill()
            started = time.monotonic()
        # The revoke gave up within its bound (STOP_TIMEOUT), with slack for a loaded machine;
        # unbounded, it would wait on the dead etcd until the test's own timeout.
        assert time.monotonic() - started < STOP_TIMEOUT + 6
        assert a.lease is None

    run(main(), timeout=60)


def test_ids_that_come_and_go_while_etcd_is_down_leave_nothing_to_publish(tmp_path: Path, store: Store) -> None:
    """The publisher's set holds what we own and what etcd may hold from us: nothing else grows it."""

    async def main() -> None:
        catalog = Catalog(store, NodeIdentity("a", "127.0.0.51"))
        nobody = parse_etcd(f"127.0.0.1:{free_port()}")
        sync = ClusterSync(catalog, FleetSettings((nobody,), "/t/", 2, "dc1"), "test", client_timeout=0.2)
        await sync.start()
        try:
            register(catalog, {"name": "kept", "port": 1})
            for n in range(1000):
                register(catalog, {"name": "brief", "id": f"brief{n}", "port": 2})
                catalog.deregister(f"brief{n}")
            assert sync.publisher.pending <= 2  # `kept` and the node record
        finally:
            await sync.stop()

    run(main(), timeout=60)
