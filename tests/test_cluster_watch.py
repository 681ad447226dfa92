"""registry.cluster against a real etcd over time: watches, leases kept alive, outages and fail-over.

Most tests share the module's etcd and write under a prefix of their own; the ones
that kill, freeze, restart or compact etcd start their own (tests/etcdkit.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Awaitable, Callable

import pytest

from conftest import eventually, run
from etcdkit import SLACK, EtcdFactory, EtcdServer, collect, keys_under, other_node
from registry.cluster.errors import Compacted, LeaseNotFound, Unavailable
from registry.cluster.etcd import EtcdClient
from registry.cluster.kv import Delete, Put, WatchEvent, Write


def test_watch_sees_puts_and_deletes_in_order(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        async with EtcdClient([etcd.endpoint]) as client:
            await client.put_if_changed(etcd_prefix + "before", b"0")
            start = (await client.range_prefix(etcd_prefix)).revision + 1
            async with client.watch_prefix(etcd_prefix, start) as watch:
                await client.put_if_changed(etcd_prefix + "a", b"1")
                await client.apply(
                    [Write(etcd_prefix + "b", b"2"), Write(etcd_prefix + "c", b"3")], deletes=[etcd_prefix + "before"]
                )
                await client.apply([], deletes=[etcd_prefix + "a"])
                batches = await collect(watch, 5)
            events: list[WatchEvent] = [e for b in batches for e in b.events]
            assert [(type(e), e.key) for e in events] == [
                (Put, etcd_prefix + "a"),
                (Put, etcd_prefix + "b"),
                (Put, etcd_prefix + "c"),
                (Delete, etcd_prefix + "before"),
                (Delete, etcd_prefix + "a"),
            ]
            assert isinstance(events[0], Put) and events[0].value == b"1"
            # The transaction's three events share a revision and arrive in one batch.
            assert len({e.mod_revision for e in events[1:4]}) == 1
            assert any(len(b.events) == 3 for b in batches)
            assert batches[-1].next_revision == events[-1].mod_revision + 1 == watch.next_revision

    run(main())


def test_a_response_etcd_cuts_into_fragments_arrives_as_one_batch(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        async with EtcdClient([etcd.endpoint]) as client:
            start = (await client.range_prefix(etcd_prefix)).revision + 1
            # 2.7 MB: over etcd's fragment size (--max-request-bytes + 512 KiB of gRPC overhead)
            for n in range(45):
                await client.put_if_changed(f"{etcd_prefix}{n:02}", b"v" * 60_000)
            async with client.watch_prefix(etcd_prefix, start) as watch:
                batches = await collect(watch, 45)
            assert [len(b.events) for b in batches] == [45]

    run(main())


def test_watch_from_an_old_revision_replays_history(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        async with EtcdClient([etcd.endpoint]) as client:
            await client.put_if_changed(etcd_prefix + "a", b"1")
            first = (await client.range_prefix(etcd_prefix)).revision
            await client.put_if_changed(etcd_prefix + "a", b"2")
            await client.apply([], deletes=[etcd_prefix + "a"])
            async with client.watch_prefix(etcd_prefix, first) as watch:
                events = [e for b in await collect(watch, 3) for e in b.events]
            assert [type(e) for e in events] == [Put, Put, Delete]
            assert [e.value for e in events if isinstance(e, Put)] == [b"1", b"2"]

    run(main())


def test_a_compacted_start_revision_raises_compacted(start_etcd: EtcdFactory) -> None:
    server = start_etcd()

    async def main() -> None:
        async with EtcdClient([server.endpoint]) as client, other_node(server) as other:
            await client.put_if_changed("/p/a", b"1")
            old = (await client.range_prefix("/p/")).revision
            await client.put_if_changed("/p/a", b"2")
            latest = (await client.range_prefix("/p/")).revision
            await other.compact(latest)
            with pytest.raises(Compacted) as caught:
                async with client.watch_prefix("/p/", old) as watch:
                    await collect(watch, 1)
            assert caught.value.requested == old and caught.value.revision == latest
            # A watch from the compaction point on works.
            async with client.watch_prefix("/p/", latest) as watch:
                events = [e for b in await collect(watch, 1) for e in b.events]
            assert isinstance(events[0], Put) and events[0].value == b"2"

    run(main())


def test_lease_expiry_removes_leased_keys_and_keep_alive_holds_them(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        async with EtcdClient([etcd.endpoint]) as client:
            held = await client.grant_lease(1)
            dropped = await client.grant_lease(1)
            assert held.ttl == dropped.ttl == 1
            keepalive = client.keep_alive(held)
            await client.apply(
                [
                    Write(etcd_prefix + "held", b"h", held),
                    Write(etcd_prefix + "dropped", b"d", dropped),
                    Write(etcd_prefix + "plain", b"p"),
                ]
            )
            started = time.monotonic()
            await eventually(lambda: _absent(client, etcd_prefix + "dropped"), 1 + SLACK, "the unrefreshed lease to expire")
            took = time.monotonic() - started
            assert took > 0.5  # not deleted at once: it lived out (most of) its TTL
            # Written in the same transaction, so "held" has outlived its TTL too: refreshed.
            assert set(await keys_under(client, etcd_prefix)) == {etcd_prefix + "held", etcd_prefix + "plain"}
            assert keepalive.loss is None
            # Writing with the expired lease says so.
            with pytest.raises(LeaseNotFound) as caught:
                await client.put_if_changed(etcd_prefix + "late", b"x", dropped)
            assert caught.value.lease_id == dropped.id
            await client.revoke(held)
            assert (await keepalive.lost()).stopped

    run(main())


async def _absent(client: EtcdClient, key: str) -> bool:
    return key not in await keys_under(client, key.rsplit("/", 1)[0] + "/")


def test_revoke_removes_leased_keys_at_once(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        async with EtcdClient([etcd.endpoint]) as client:
            lease = await client.grant_lease(60)
            await client.apply([Write(etcd_prefix + "a", b"1", lease), Write(etcd_prefix + "b", b"2")])
            await client.revoke(lease)
            assert set(await keys_under(client, etcd_prefix)) == {etcd_prefix + "b"}
            await client.revoke(lease)  # already gone: fine
            # The view forgot the revoked key: writing the same value again goes out.
            fresh = await client.grant_lease(60)
            assert await client.put_if_changed(etcd_prefix + "a", b"1", fresh) is True
            await client.revoke(fresh)

    run(main())


def test_keep_alive_reports_a_lease_revoked_elsewhere(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        async with EtcdClient([etcd.endpoint]) as client, other_node(etcd) as other:
            lease = await client.grant_lease(2)
            keepalive = client.keep_alive(lease)
            await other.revoke_lease(lease.id)
            async with asyncio.timeout(2 + SLACK):
                loss = await keepalive.lost()
            assert loss.lease_id == lease.id and not loss.stopped and "revoked" in loss.reason

    run(main())


def test_a_frozen_etcd_makes_every_call_raise_unavailable_in_time(start_etcd: EtcdFactory) -> None:
    server = start_etcd()
    timeout = 0.3

    async def main() -> None:
        async with EtcdClient([server.endpoint], timeout=timeout) as client:
            await client.connect()
            lease = await client.grant_lease(30)
            server.freeze()  # the socket stays open; nothing answers
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "connect": client.connect,
                "range": lambda: client.range_prefix("/"),
                "put": lambda: client.put_if_changed("/k", b"v"),
                "grant": lambda: client.grant_lease(10),
                "refresh": lambda: client.refresh(lease),
                "revoke": lambda: client.revoke(lease),
                "watch": lambda: client.watch_prefix("/", 1).__aenter__(),
            }
            for name, call in calls.items():
                start = time.monotonic()
                with pytest.raises(Unavailable) as caught:
                    await call()
                    pytest.fail(f"{name} answered from a frozen etcd")
                took = time.monotonic() - start
                assert took < timeout + SLACK, f"{name} took {took:.1f}s"
                assert server.endpoint in caught.value.endpoints

    run(main())


def test_a_killed_etcd_breaks_the_watch_and_the_lease_then_a_restart_serves_again(start_etcd: EtcdFactory) -> None:
    server = start_etcd()

    async def main() -> None:
        async with EtcdClient([server.endpoint], timeout=0.5) as client:
            lease = await client.grant_lease(1)
            keepalive = client.keep_alive(lease)
            await client.put_if_changed("/n/a", b"1", lease)
            async with client.watch_prefix("/n/", 1) as watch:
                await collect(watch, 1)
                server.kill()
                with pytest.raises(Unavailable):
                    async with asyncio.timeout(SLACK):
                        await collect(watch, 1)
            with pytest.raises(Unavailable):
                await client.range_prefix("/n/")
            async with asyncio.timeout(1 + SLACK):
                loss = await keepalive.lost()
            assert not loss.stopped and "unreachable" in loss.reason
            server.start()  # same ports, same data
            await eventually(_connects(client), SLACK, "a connection to the restarted etcd")
            fresh = await client.grant_lease(5)
            assert await client.put_if_changed("/n/b", b"2", fresh) is True
            assert (await keys_under(client, "/n/"))["/n/b"] == b"2"

    run(main())


def _connects(client: EtcdClient) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        try:
            await client.connect()
        except Unavailable:
            return False
        return True

    return probe


def test_calls_fail_over_to_the_next_endpoint(start_etcd: EtcdFactory) -> None:
    dead, frozen, live = start_etcd(), start_etcd(), start_etcd()
    dead.kill()
    frozen.freeze()

    async def main() -> None:
        async with EtcdClient([dead.endpoint, frozen.endpoint, live.endpoint], timeout=0.5) as client:
            start = time.monotonic()
            await client.connect()
            assert time.monotonic() - start < 2 * 0.5 + SLACK
            assert client.endpoint == live.endpoint
            assert await client.put_if_changed("/f/a", b"1") is True
            live.kill()
            with pytest.raises(Unavailable) as caught:
                await client.range_prefix("/f/")
            # Each endpoint was tried once, starting with the one that had answered.
            assert [f.split(": ")[0] for f in caught.value.failures] == [live.endpoint, dead.endpoint, frozen.endpoint]

    run(main())


def test_a_fail_over_under_an_open_watch_ends_it_as_unavailable(etcd: EtcdServer, etcd_prefix: str) -> None:
    """Closing the channel (another call failing over) cancels the calls on it inside gRPC:
    the watch must say Unavailable, not end its task as if the task had been cancelled."""

    async def main() -> None:
        async with EtcdClient([etcd.endpoint]) as client:
            start = (await client.range_prefix(etcd_prefix)).revision + 1
            async with client.watch_prefix(etcd_prefix, start) as watch:
                waiting = asyncio.ensure_future(watch.__anext__())
                await asyncio.sleep(0.1)
                _, generation = await client.open_client()
                await client.fail_over(generation)
                with pytest.raises(Unavailable):
                    await waiting
            # And a unary call in flight when the channel closes under it.
            _, generation = await client.open_client()
            call = asyncio.ensure_future(client.range_prefix(etcd_prefix))
            await asyncio.sleep(0)
            await client.fail_over(generation)
            with contextlib.suppress(Unavailable):  # what it says; never a cancellation, nor a stub gone
                await call

    run(main())
