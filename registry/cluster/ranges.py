"""Whole reads of a prefix: paged at one pinned revision, bounded in keys and bytes.

A part of `EtcdClient` (registry.cluster.etcd). aetcd's own range helper can neither
page at a pinned revision nor stop at a key count, so the pages are asked of its
stub directly; a page too large for a gRPC message is asked for again in halves.
"""

from __future__ import annotations

import abc
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import aetcd
import grpc
from aetcd import rpc

from registry.cluster.errors import Compacted, RangeTooLarge, RequestRefused
from registry.cluster.kv import KeyValue, RangeResult, Skipped, decode_key, prefix_end

T = TypeVar("T")

# Keys a range page asks for. Each page costs etcd a fixed share of its time: 4,096
# (about 2.5 MB of records) reads 100,000 keys in under a second where 512 took four.
# Pages of large values are halved until they fit a message (below).
RANGE_PAGE = 4096


class RangeReads(abc.ABC):
    """`range_prefix`, for the client that owns the connection and its limits."""

    timeout: float
    max_keys: int
    max_value_bytes: int

    @abc.abstractmethod
    async def _call(self, operation: str, op: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """Run `op` on a connected client, failing over and mapping gRPC's errors to ours."""

    async def range_prefix(
        self, prefix: str, on_page: Callable[[Sequence[KeyValue]], None] | None = None
    ) -> RangeResult:
        """Every key under `prefix`, read in pages at one revision.

        `on_page` is handed each page's items as it arrives, so that a reader can work
        on them while etcd prepares the next one.
        """
        start = prefix.encode()
        end = prefix_end(start)
        revision = 0
        limit = RANGE_PAGE
        items: list[KeyValue] = []
        skipped: list[Skipped] = []
        while True:
            page = await self._range_page(start, end, revision, limit)
            if page is None and limit > 1:
                limit //= 2  # a page of large values: read fewer at a time
                continue
            if page is None:
                # One value alone is over the message limit: name it and go past it.
                page = await self._range_page(start, end, revision, 1, keys_only=True)
                if page is None:
                    raise RequestRefused("range", "RESOURCE_EXHAUSTED", "one key alone is over the message limit")
                revision = revision or int(page.header.revision)
                for kv in page.kvs:
                    skipped.append(Skipped(decode_key(kv.key)[0], "value over the message limit", kv.mod_revision))
                    start = kv.key + b"\0"
                if page.kvs:
                    continue
                return RangeResult(revision, tuple(items), tuple(skipped))
            revision = revision or int(page.header.revision)
            if len(items) + len(skipped) + len(page.kvs) > self.max_keys:
                raise RangeTooLarge(prefix, self.max_keys)
            first = len(items)
            for kv in page.kvs:
                key, problem = decode_key(kv.key)
                if problem is None and len(kv.value) > self.max_value_bytes:
                    problem = f"value is {len(kv.value)} bytes, over {self.max_value_bytes}"
                if problem is None:
                    items.append(KeyValue(key, kv.value, kv.mod_revision, int(kv.lease)))
                else:
                    skipped.append(Skipped(key, problem, kv.mod_revision))
            if on_page is not None and len(items) > first:
                on_page(items[first:])
            if not page.more or not page.kvs:
                return RangeResult(revision, tuple(items), tuple(skipped))
            start = page.kvs[-1].key + b"\0"
            limit = RANGE_PAGE

    async def _range_page(self, start: bytes, end: bytes, revision: int, limit: int, keys_only: bool = False) -> Any:
        """One page, or None when it is larger than a message may be."""
        request = rpc.RangeRequest(key=start, range_end=end, limit=limit, revision=revision, keys_only=keys_only)

        async def page(client: aetcd.Client) -> Any:
            try:
                return await client.kvstub.Range(request, timeout=self.timeout, metadata=client.metadata)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return None
                raise

        try:
            return await self._call("range", page)
        except RequestRefused as exc:
            if exc.code == "OUT_OF_RANGE" and "compacted" in exc.detail:
                # The pinned revision went while we paged: the caller reads again.
                raise Compacted(revision) from None
            raise
