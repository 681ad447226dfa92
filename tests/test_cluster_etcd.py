"""registry.cluster.etcd against a real etcd: endpoints, ranges, writes, hostile keys and values.

Most tests share the module's etcd and write under a prefix of their own. Another
node is played by a plain aetcd client writing whatever it likes (tests/etcdkit.py).
"""

from __future__ import annotations

import pytest

from conftest import run
from etcdkit import EtcdServer, collect, keys_under, other_node
from registry.cluster.errors import BadEndpoint, RangeTooLarge, ValueTooLarge, WatchOverflow
from registry.cluster.etcd import MAX_TXN_OPS, EtcdClient, parse_endpoint
from registry.cluster.ranges import RANGE_PAGE
from registry.cluster.kv import Put, Skipped, Write
from registry.endpoints import Endpoint


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
        async with EtcdClient([etcd.endpoint]) as client:
            await client.apply([Write(etcd_prefix + "b", b"2"), Write(etcd_prefix + "a", b"1")])
            # A sibling that shares the prefix's text but not its slash stays out.
            await client.put_if_changed(etcd_prefix.rstrip("/") + "x", b"outside")
            result = await client.range_prefix(etcd_prefix)
            assert [(i.key, i.value) for i in result.items] == [(etcd_prefix + "a", b"1"), (etcd_prefix + "b", b"2")]
            assert result.skipped == ()
            latest = (await client.range_prefix("/")).revision
            assert result.revision == latest == max(i.mod_revision for i in result.items) + 1

    run(main())


def test_range_and_apply_page_through_more_than_etcd_takes_at_once(etcd: EtcdServer, etcd_prefix: str) -> None:
    count = 2 * RANGE_PAGE + 7  # more pages than one, and more ops than one txn takes
    assert count > MAX_TXN_OPS

    async def main() -> None:
        async with EtcdClient([etcd.endpoint]) as client:
            sent = await client.apply([Write(f"{etcd_prefix}{n:05}", b"%d" % n) for n in range(count)])
            assert sent == count
            result = await client.range_prefix(etcd_prefix)
            assert [i.key for i in result.items] == [f"{etcd_prefix}{n:05}" for n in range(count)]
            # Every page was read at the revision of the first one.
            assert result.revision >= max(i.mod_revision for i in result.items)
            async with EtcdClient([etcd.endpoint], max_keys=count - 1) as bounded:
                with pytest.raises(RangeTooLarge) as caught:
                    await bounded.range_prefix(etcd_prefix)
                assert (caught.value.prefix, caught.value.limit) == (etcd_prefix, count - 1)

    run(main())


def test_put_if_changed_writes_only_changes(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        key = etcd_prefix + "k"
        async with EtcdClient([etcd.endpoint]) as client:
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

    run(main())


def test_a_batch_is_one_transaction_with_puts_and_deletes(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        async with EtcdClient([etcd.endpoint]) as client:
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

    run(main())


def test_a_write_too_large_for_other_nodes_is_refused_before_sending(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        async with EtcdClient([etcd.endpoint], max_value_bytes=1024) as client:
            with pytest.raises(ValueTooLarge) as caught:
                await client.apply([Write(etcd_prefix + "small", b"ok"), Write(etcd_prefix + "big", b"x" * 1025)])
            assert (caught.value.key, caught.value.size, caught.value.limit) == (etcd_prefix + "big", 1025, 1024)
            assert await keys_under(client, etcd_prefix) == {}

    run(main())


def test_hostile_keys_and_values_are_skipped_unread(etcd: EtcdServer, etcd_prefix: str) -> None:
    async def main() -> None:
        async with EtcdClient([etcd.endpoint], max_value_bytes=1024) as client, other_node(etcd) as other:
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

    run(main())


def test_values_past_the_message_limit_are_paged_skipped_or_resynced(etcd: EtcdServer, etcd_prefix: str) -> None:
    limit = 256 * 1024

    async def main() -> None:
        async with EtcdClient([etcd.endpoint], max_message_bytes=limit) as client, other_node(etcd) as other:
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

    run(main())
