"""registry.cluster.etcd against a real etcd: leases, writes, ranges, watches, outages.

Most tests share the module's etcd and write under a prefix of their own; the ones
that kill, freeze, restart or compact etcd start their own. Another node is played
by a plain aetcd client writing whatever it likes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

import aetcd
import pytest
from etcdkit import EtcdFactory, EtcdServer
from healthkit import run

from registry.cluster.errors import (
    BadEndpoint,
    Compacted,
    LeaseNotFound,
    RangeTooLarge,
    Unavailable,
    ValueTooLarge,
    WatchOverflow,
)
from registry.cluster.etcd import MAX_TXN_OPS, RANGE_PAGE, EtcdClient, parse_endpoint
from registry.cluster.kv import Delete, Put, Skipped, WatchBatch, WatchEvent, Write
from registry.cluster.watch import Watch
from registry.endpoints import Endpoint

# Deadlines are generous: two shared cores, other suites running at the same time.
SLACK = 3.0


def other_node(server: EtcdServer) -> aetcd.Client:
    host, _, port = server.endpoint.rpartition(":")
    return aetcd.Client(host, int(port), timeout=5)


async def eventually(probe: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Poll `probe` until true; the seconds it took."""
    start = time.monotonic()
    while not await probe():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def keys_under(client: EtcdClient, prefix: str) -> dict[str, bytes]:
    return {item.key: item.value for item in (await client.range_prefix(prefix)).items}


async def collect(watch: Watch, count: int, timeout: float = 10.0) -> list[WatchBatch]:
    """Batches until `count` events have arrived."""
    batches: list[WatchBatch] = []
    async with asyncio.timeout(timeout):
        async for batch in watch:
            batches.append(batch)
            if sum(len(b.events) for b in batches) >= count:
                return batches
    raise AssertionError("the watch ended")


@pytest.mark.parametrize(
    "text, endpoint",
    [
        ("127.0.0.1:2379", Endpoint("127.0.0.1", 2379)),
        ("http://10.0.0.1:2379", Endpoint("10.0.0.1", 2379)),
        ("http://etcd.internal:2379/", Endpoint("etcd.internal", 2379)),
        ("[::1]:2379", Endpoint("::1", 2379)),
        ("http://[fd00::1]:23790", Endpoint("fd00::1", 23790)),
    ],
)
def test_endpoint_forms(text: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(text) == endpoint


@pytest.mark.parametrize(
    "text, reason",
    [
        ("127.0.0.1", "host:port"),
        ("127.0.0.1:0", "1..65535"),
        ("127.0.0.1:65536", "1..65535"),
        ("127.0.0.1:http", "host:port"),
        ("https://10.0.0.1:2379", "https is not supported"),
        ("::1:2379", "not a host name"),
        ("[::1:2379", "[addr]:port"),
        ("[not-v6]:2379", "not an IPv6 address"),
        ("http://a b:2379", "not a host name"),
        (":2379", "host:port"),
    ],
)
def test_bad_endpoints_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(BadEndpoint) as caught:
        parse_endpoint(text)
    assert caught.value.text == text and reason in caught.value.reason


def test_a_client_needs_an_endpoint() -> None:
    with pytest.raises(BadEndpoint):
        EtcdClient([])


def test_range_returns_the_prefix_at_one_revision(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        client = EtcdClient([etcd.endpoint])
        try:
            await client.apply([Write(etcd_prefix + "b", b"2"), Write(etcd_prefix + "a", b"1")])
            # A sibling that shares the prefix's text but not its slash stays out.
            await client.put_if_changed(etcd_prefix.rstrip("/") + "x", b"outside")
            result = await client.range_prefix(etcd_prefix)
            assert [(i.key, i.value) for i in result.items] == [(etcd_prefix + "a", b"1"), (etcd_prefix + "b", b"2")]
            assert result.skipped == ()
            latest = (await client.range_prefix("/")).revision
            assert result.revision == latest == max(i.mod_revision for i in result.items) + 1
        finally:
            await client.close()

    run(main())


def test_range_and_apply_page_through_more_than_etcd_takes_at_once(etcd: EtcdServer, etcd_prefix: str) -> None:
    count = 2 * RANGE_PAGE + 7  # more pages than one, and more ops than one txn takes
    assert count > MAX_TXN_OPS

    async def main() -> None:
        client = EtcdClient([etcd.endpoint])
        try:
            sent = await client.apply([Write(f"{etcd_prefix}{n:05}", b"%d" % n) for n in range(count)])
            assert sent == count
            result = await client.range_prefix(etcd_prefix)
            assert [i.key for i in result.items] == [f"{etcd_prefix}{n:05}" for n in range(count)]
            # Every page was read at the revision of the first one.
            assert result.revision >= max(i.mod_revision for i in result.items)
            bounded = EtcdClient([etcd.endpoint], max_keys=count - 1)
            try:
                with pytest.raises(RangeTooLarge) as caught:
                    await bounded.range_prefix(etcd_prefix)
                assert (caught.value.prefix, caught.value.limit) == (etcd_prefix, count - 1)
            finally:
                await bounded.close()
        finally:
            await client.close()

    run(main())


def test_put_if_changed_writes_only_changes(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        client = EtcdClient([etcd.endpoint])
        key = etcd_prefix + "k"
        try:
            assert await client.put_if_changed(key, b"one") is True
            first = (await client.range_prefix(etcd_prefix)).items[0].mod_revision
            assert await client.put_if_changed(key, b"one") is False
            assert (await client.range_prefix(etcd_prefix)).items[0].mod_revision == first
            assert await client.put_if_changed(key, b"two") is True
            lease = await client.grant_lease(30)
            assert await client.put_if_changed(key, b"two", lease) is True  # same value, now leased
            assert await client.put_if_changed(key, b"two", lease) is False
            client.forget()
            assert await client.put_if_changed(key, b"two", lease) is True
            await client.revoke(lease)
        finally:
            await client.close()

    run(main())


def test_a_batch_is_one_transaction_with_puts_and_deletes(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        client = EtcdClient([etcd.endpoint])
        try:
            lease = await client.grant_lease(30)
            await client.apply([Write(etcd_prefix + "gone", b"x"), Write(etcd_prefix + "kept", b"1")])
            sent = await client.apply(
                [
                    Write(etcd_prefix + "kept", b"1"),
                    Write(etcd_prefix + "leased", b"2", lease),
                    Write(etcd_prefix + "plain", b"3"),
                ],
                deletes=[etcd_prefix + "gone"],
            )
            assert sent == 3  # "kept" was unchanged
            items = (await client.range_prefix(etcd_prefix)).items
            assert [i.key for i in items] == [etcd_prefix + "kept", etcd_prefix + "leased", etcd_prefix + "plain"]
            revisions = {i.key: i.mod_revision for i in items}
            leased, plain, kept = (revisions[etcd_prefix + name] for name in ("leased", "plain", "kept"))
            assert leased == plain > kept
            with pytest.raises(ValueError):
                await client.apply([Write(etcd_prefix + "x", b"1")], deletes=[etcd_prefix + "x"])
            await client.revoke(lease)
        finally:
            await client.close()

    run(main())


def test_a_write_too_large_for_other_nodes_is_refused_before_sending(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        client = EtcdClient([etcd.endpoint], max_value_bytes=1024)
        try:
            with pytest.raises(ValueTooLarge) as caught:
                await client.apply([Write(etcd_prefix + "small", b"ok"), Write(etcd_prefix + "big", b"x" * 1025)])
            assert (caught.value.key, caught.value.size, caught.value.limit) == (etcd_prefix + "big", 1025, 1024)
            assert await keys_under(client, etcd_prefix) == {}
        finally:
            await client.close()

    run(main())


def test_hostile_keys_and_values_are_skipped_unread(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        client = EtcdClient([etcd.endpoint], max_value_bytes=1024)
        other = other_node(etcd)
        try:
            start = (await client.range_prefix(etcd_prefix)).revision + 1
            await other.put((etcd_prefix + "ok").encode(), b"fine")
            await other.put((etcd_prefix + "big").encode(), b"x" * 2000)
            await other.put(etcd_prefix.encode() + b"\xff\xfe", b"fine")
            await other.put((etcd_prefix + "k" * 1100).encode(), b"fine")
            result = await client.range_prefix(etcd_prefix)
            assert [i.key for i in result.items] == [etcd_prefix + "ok"]
            reasons = {s.key[len(etcd_prefix):len(etcd_prefix) + 3]: s.reason for s in result.skipped}
            assert set(reasons) == {"big", "\\xf", "kkk"}
            assert "2000 bytes" in reasons["big"] and "UTF-8" in reasons["\\xf"] and "over 1024" in reasons["kkk"]
            async with client.watch_prefix(etcd_prefix, start) as watch:
                events = [e for b in await collect(watch, 4) for e in b.events]
            assert [type(e) for e in events] == [Put, Skipped, Skipped, Skipped]
        finally:
            await other.close()
            await client.close()

    run(main())


def test_values_past_the_message_limit_are_paged_skipped_or_resynced(etcd: EtcdServer, etcd_prefix: str) -> None:
    limit = 256 * 1024

    async def main() -> None:
        client = EtcdClient([etcd.endpoint], max_message_bytes=limit)
        other = other_node(etcd)
        try:
            start = (await client.range_prefix(etcd_prefix)).revision + 1
            for n in range(20):  # 600 KiB in all: more than one message holds
                await other.put(f"{etcd_prefix}{n:02}".encode(), b"v" * 30_000)
            await other.put((etcd_prefix + "huge").encode(), b"h" * 300_000)  # over the limit alone
            result = await client.range_prefix(etcd_prefix)
            assert [i.key for i in result.items] == [f"{etcd_prefix}{n:02}" for n in range(20)]
            assert [(s.key, s.reason) for s in result.skipped] == [
                (etcd_prefix + "huge", "value over the message limit")
            ]
            # A watch response that big cannot be read: the caller must read the prefix instead.
            with pytest.raises(WatchOverflow) as caught:
                async with client.watch_prefix(etcd_prefix, start) as watch:
                    await collect(watch, 21)
            assert caught.value.limit == limit
            async with client.watch_prefix(etcd_prefix, result.revision + 1) as watch:
                await other.put((etcd_prefix + "00").encode(), b"small")
                events = [e for b in await collect(watch, 1) for e in b.events]
            assert isinstance(events[0], Put) and events[0].value == b"small"
        finally:
            await other.close()
            await client.close()

    run(main())


def test_watch_sees_puts_and_deletes_in_order(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        client = EtcdClient([etcd.endpoint])
        try:
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
        finally:
            await client.close()

    run(main())


def test_a_response_etcd_cuts_into_fragments_arrives_as_one_batch(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        client = EtcdClient([etcd.endpoint])
        try:
            start = (await client.range_prefix(etcd_prefix)).revision + 1
            # 2.7 MB: over etcd's fragment size (--max-request-bytes + 512 KiB of gRPC overhead)
            for n in range(45):
                await client.put_if_changed(f"{etcd_prefix}{n:02}", b"v" * 60_000)
            async with client.watch_prefix(etcd_prefix, start) as watch:
                batches = await collect(watch, 45)
            assert [len(b.events) for b in batches] == [45]
        finally:
            await client.close()

    run(main())


def test_watch_from_an_old_revision_replays_history(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        client = EtcdClient([etcd.endpoint])
        try:
            await client.put_if_changed(etcd_prefix + "a", b"1")
            first = (await client.range_prefix(etcd_prefix)).revision
            await client.put_if_changed(etcd_prefix + "a", b"2")
            await client.apply([], deletes=[etcd_prefix + "a"])
            async with client.watch_prefix(etcd_prefix, first) as watch:
                events = [e for b in await collect(watch, 3) for e in b.events]
            assert [type(e) for e in events] == [Put, Put, Delete]
            assert [e.value for e in events if isinstance(e, Put)] == [b"1", b"2"]
        finally:
            await client.close()

    run(main())


def test_a_compacted_start_revision_raises_compacted(start_etcd: EtcdFactory) -> None:
    server = start_etcd()

    async def main() -> None:
        client = EtcdClient([server.endpoint])
        other = other_node(server)
        try:
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
        finally:
            await other.close()
            await client.close()

    run(main())


def test_lease_expiry_removes_leased_keys_and_keep_alive_holds_them(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        client = EtcdClient([etcd.endpoint])
        try:
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
            took = await eventually(
                lambda: _absent(client, etcd_prefix + "dropped"), 1 + SLACK, "the unrefreshed lease to expire"
            )
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
        finally:
            await client.close()

    run(main())


async def _absent(client: EtcdClient, key: str) -> bool:
    return key not in await keys_under(client, key.rsplit("/", 1)[0] + "/")


def test_revoke_removes_leased_keys_at_once(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        client = EtcdClient([etcd.endpoint])
        try:
            lease = await client.grant_lease(60)
            await client.apply([Write(etcd_prefix + "a", b"1", lease), Write(etcd_prefix + "b", b"2")])
            await client.revoke(lease)
            assert set(await keys_under(client, etcd_prefix)) == {etcd_prefix + "b"}
            await client.revoke(lease)  # already gone: fine
            # The view forgot the revoked key: writing the same value again goes out.
            fresh = await client.grant_lease(60)
            assert await client.put_if_changed(etcd_prefix + "a", b"1", fresh) is True
            await client.revoke(fresh)
        finally:
            await client.close()

    run(main())


def test_keep_alive_reports_a_lease_revoked_elsewhere(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        client = EtcdClient([etcd.endpoint])
        other = other_node(etcd)
        try:
            lease = await client.grant_lease(2)
            keepalive = client.keep_alive(lease)
            await other.revoke_lease(lease.id)
            async with asyncio.timeout(2 + SLACK):
                loss = await keepalive.lost()
            assert loss.lease_id == lease.id and not loss.stopped and "revoked" in loss.reason
        finally:
            await other.close()
            await client.close()

    run(main())


def test_a_frozen_etcd_makes_every_call_raise_unavailable_in_time(start_etcd: EtcdFactory) -> None:
    server = start_etcd()
    timeout = 0.3

    async def main() -> None:
        client = EtcdClient([server.endpoint], timeout=timeout)
        try:
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
        finally:
            await client.close()

    run(main())


def test_a_killed_etcd_breaks_the_watch_and_the_lease_then_a_restart_serves_again(start_etcd: EtcdFactory) -> None:
    server = start_etcd()

    async def main() -> None:
        client = EtcdClient([server.endpoint], timeout=0.5)
        try:
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
        finally:
            await client.close()

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
        client = EtcdClient([dead.endpoint, frozen.endpoint, live.endpoint], timeout=0.5)
        try:
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
        finally:
            await client.close()

    run(main())
