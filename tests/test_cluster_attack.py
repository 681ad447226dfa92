"""Fleet mode against what others do to etcd: keys of ours deleted or written by someone
else, a second daemon with our node name, an etcd restored from a backup.

Each is a real ClusterSync on a real catalog and SQLite, and a real etcd; the other
writer is a plain aetcd client, as an operator's `etcdctl` would be.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from conftest import eventually, run
from etcdkit import EtcdFactory, EtcdServer, keys_under, other_node
from registry.cluster.etcd import EtcdClient
from registry.cluster.keys import instance_key, node_key
from test_cluster_sync import WITHIN, member, register


async def holds(reader: EtcdClient, prefix: str, *keys: str) -> bool:
    found = await keys_under(reader, prefix)
    return all(key in found for key in keys)


def test_keys_of_ours_deleted_by_someone_else_are_written_again(tmp_path: Path, etcd: EtcdServer,
                                                                etcd_prefix: str) -> None:
    """Without this, `etcdctl del` of our keys hid this node from the fleet until its lease ended."""

    async def main() -> None:
        async with (member(tmp_path, etcd, etcd_prefix, "a", 0) as a, member(tmp_path, etcd, etcd_prefix, "b", 1) as b,
                    EtcdClient([etcd.endpoint]) as reader, other_node(etcd) as other):
            register(a.catalog, {"name": "web", "port": 80})
            ours = (node_key(etcd_prefix, "a"), instance_key(etcd_prefix, "a", "web-80"))
            await eventually(lambda: holds(reader, etcd_prefix, *ours), WITHIN, "a published")
            await other.delete_prefix(etcd_prefix.encode())
            await eventually(lambda: holds(reader, etcd_prefix, *ours), WITHIN, "a's keys written again")
            await eventually(lambda: b.catalog.current.entry("web-80", "a"), WITHIN, "web back on b")
            assert a.foreign_writes == 0  # deletions are not someone writing our keys
            # What we delete ourselves stays deleted.
            a.catalog.deregister("web-80")

            async def gone() -> bool:
                return ours[1] not in await keys_under(reader, etcd_prefix)

            await eventually(gone, WITHIN, "web taken down")
            await asyncio.sleep(0.3)
            assert await gone()

    run(main())


def test_two_daemons_with_one_node_name_say_so_and_do_not_fight(
    tmp_path: Path, etcd: EtcdServer, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "pilotfish.cluster")
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()

    async def main() -> None:
        async with member(tmp_path / "1", etcd, etcd_prefix, "a", 0) as first, EtcdClient([etcd.endpoint]) as reader:
            register(first.catalog, {"name": "web", "port": 80})
            web = instance_key(etcd_prefix, "a", "web-80")
            await eventually(lambda: holds(reader, etcd_prefix, web), WITHIN, "web published")
            async with member(tmp_path / "2", etcd, etcd_prefix, "a", 1) as second:
                register(second.catalog, {"name": "db", "port": 5432})
                # The second took down web as its own leftover; the first put it back.
                await eventually(lambda: first.foreign_writes and second.foreign_writes, WITHIN, "both to notice")
                assert first.status()["foreign_writes"] == first.foreign_writes
                assert any("second daemon with this node name" in r.getMessage() for r in caplog.records)
                # No war: once settled, neither rewrites what the other wrote.
                await asyncio.sleep(0.5)
                before = (await reader.range_prefix(etcd_prefix)).revision
                await asyncio.sleep(1.0)
                assert (await reader.range_prefix(etcd_prefix)).revision - before <= 2
            # The second's clean stop revoked its lease, taking the node record it wrote last.
            await eventually(lambda: holds(reader, etcd_prefix, node_key(etcd_prefix, "a"), web), WITHIN,
                             "the first's keys back")

    run(main())


def test_an_etcd_restored_from_a_backup_gets_our_keys_again(tmp_path: Path, start_etcd: EtcdFactory,
                                                             etcd_prefix: str) -> None:
    """The revision goes back and our lease survives: without this, nobody noticed, ever."""
    server = start_etcd()

    async def main() -> None:
        async with member(tmp_path, server, etcd_prefix, "a", 0) as a, member(tmp_path, server, etcd_prefix, "b", 1) as b:
            register(a.catalog, {"name": "web", "port": 80})
            await eventually(lambda: b.catalog.current.entry("web-80", "a"), WITHIN, "web on b")
            server.save(tmp_path / "backup.db")
            register(a.catalog, {"name": "db", "port": 5432})
            await eventually(lambda: b.catalog.current.entry("db-5432", "a"), WITHIN, "db on b")
            server.restore(tmp_path / "backup.db")  # without db: a wrote it after the backup
            async with EtcdClient([server.endpoint]) as reader:
                await eventually(lambda: holds(reader, etcd_prefix, instance_key(etcd_prefix, "a", "db-5432")),
                                 WITHIN + 3, "db written again")
            await eventually(lambda: b.catalog.current.entry("db-5432", "a"), WITHIN, "db on b again")
            await eventually(lambda: a.state.value == "synced" and b.state.value == "synced", WITHIN, "both synced")
            # Which way a noticed (its revision went back, or its own keys read after the
            # break) depends on who reconnects first: either way db is back, on both.

    run(main(), timeout=60)
