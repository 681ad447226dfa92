"""The one door to etcd: the few operations fleet mode needs, with our types and errors.

Everything fleet mode asks of etcd goes through `EtcdClient`, so another client
library could replace `aetcd` by rewriting this module, its reads and watch (registry.cluster.ranges, .watch)
and registry.cluster.rpc alone: no aetcd or gRPC type leaves them; callers get
registry.cluster.kv values and registry.cluster.errors. aetcd holds the channel, the generated protocol stubs and the unary calls;
ranges and watches call its stubs directly, because its own helpers can neither page
a range at a pinned revision nor bound a watch (they queue every event without limit
and lose the response boundaries fleet mode batches on).

Rules every caller may rely on:
- No call waits longer than `timeout` per endpoint; a dead or frozen etcd raises
  `Unavailable`, never hangs. Only an open watch waits without a deadline (gRPC
  keepalive pings find a dead peer under it).
- Values come from other nodes and are not trusted: a key or value over the limits is
  reported as `Skipped` and never handed on.
- Memory is bounded: ranges are read in pages, a watch hands on one response at a
  time (gRPC flow control holds the rest in etcd), batches of writes are cut into
  transactions etcd accepts.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Iterable, Sequence, TypeVar

import aetcd
import grpc
from aetcd import rpc

from registry.cluster.errors import (
    BadEndpoint,
    LeaseNotFound,
    RequestRefused,
    Unavailable,
    ValueTooLarge,
)
from registry.cluster.keepalive import KeepAlive
from registry.cluster.kv import MAX_KEY_BYTES, Lease, Write
from registry.cluster.ranges import RangeReads
from registry.cluster.rpc import closed_under_us, code_of, details_of, unreached
from registry.cluster.watch import Watch
from registry.endpoints import Endpoint, parse_etcd

T = TypeVar("T")

DEFAULT_TIMEOUT = 2.0
# A value from another node larger than this is refused unread (records are ~1 KiB).
MAX_VALUE_BYTES = 64 * 1024
# etcd's defaults: --max-txn-ops 128 and --max-request-bytes 1.5 MiB. A batch is cut
# into transactions under both, so a large republish never trips them.
MAX_TXN_OPS = 128
MAX_TXN_BYTES = 1024 * 1024
# A gRPC message is refused above this size: a range page or a watch response that
# would need more is read again in smaller pieces (range) or resynced (watch).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# A range holding more keys than this is refused rather than held (fleet mode
# aims at 100,000 instances).
MAX_KEYS = 1_000_000
# etcd refuses client pings more often than --grpc-keepalive-min-time (5s by default).
KEEPALIVE_PING = 10.0


async def _awaited(call: Awaitable[T]) -> T:
    return await call


def parse_endpoint(text: str) -> Endpoint:
    """An etcd endpoint from the config's text; BadEndpoint saying why not."""
    try:
        return parse_etcd(text)
    except ValueError as exc:
        raise BadEndpoint(text, str(exc)) from None


class EtcdClient(RangeReads):
    """A connection to one etcd cluster through any of its endpoints.

    Calls go to the current endpoint; one that fails to answer moves every later call
    to the next endpoint, so a call is tried once per endpoint at most. It keeps a
    view of what it wrote (`apply` skips writes etcd already holds from us) and owns
    the keep-alive tasks it starts: `close` stops them.
    """

    def __init__(
        self,
        endpoints: Sequence[str | Endpoint],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_value_bytes: int = MAX_VALUE_BYTES,
        max_txn_ops: int = MAX_TXN_OPS,
        keepalive_ping: float = KEEPALIVE_PING,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_keys: int = MAX_KEYS,
    ) -> None:
        if not endpoints:
            raise BadEndpoint("", "at least one endpoint is needed")
        self.endpoints = tuple(e if isinstance(e, Endpoint) else parse_endpoint(e) for e in endpoints)
        self.timeout = timeout
        self.max_value_bytes = max_value_bytes
        self.max_txn_ops = max_txn_ops
        self.max_message_bytes = max_message_bytes
        self.max_keys = max_keys
        self._options = {
            "grpc.max_receive_message_length": max_message_bytes,
            "grpc.max_send_message_length": max_message_bytes,
            "grpc.keepalive_time_ms": int(keepalive_ping * 1000),
            "grpc.keepalive_timeout_ms": int(max(timeout, 1.0) * 1000),
            "grpc.keepalive_permit_without_calls": 0,
            # A restarted etcd is found quickly; we fail over ourselves, so no retries.
            "grpc.initial_reconnect_backoff_ms": 200,
            "grpc.max_reconnect_backoff_ms": 2000,
            "grpc.enable_retries": 0,
        }
        self._current = 0
        self._client: aetcd.Client | None = None
        self._generation = 0
        self._written: dict[str, tuple[bytes, int]] = {}
        # Keys of failed transactions: etcd may or may not hold what we sent.
        self._unsure: set[str] = set()
        self._keepalives: set[KeepAlive] = set()
        self._closed = False

    @property
    def endpoint(self) -> str:
        """The endpoint calls go to now."""
        return str(self.endpoints[self._current])

    # -- connection ---------------------------------------------------------

    async def connect(self) -> None:
        """Check that some endpoint answers; Unavailable if none does."""
        await self._call("connect", lambda c: c.maintenancestub.Status(rpc.StatusRequest(), timeout=self.timeout))

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every keep-alive and close the channel; safe to call twice."""
        self._closed = True
        for keepalive in list(self._keepalives):
            await keepalive.stop()
        await self._drop_client()

    async def open_client(self) -> tuple[aetcd.Client, int]:
        if self._closed:
            raise Unavailable("call", self.endpoint_names(), ("the client is closed",))
        if self._client is None:
            endpoint = self.endpoints[self._current]
            # Set before the first await, so that concurrent callers share one channel.
            self._client = aetcd.Client(endpoint.host, endpoint.port, timeout=self.timeout, options=self._options)
            self._generation += 1
            await self._client.connect()  # builds the channel; no I/O until the first call
        return self._client, self._generation

    async def fail_over(self, generation: int) -> None:
        """Move to the next endpoint, unless another call already moved past `generation`."""
        if generation != self._generation or self._client is None:
            return
        # Move first: a call starting while the old channel closes goes to the new endpoint.
        self._current = (self._current + 1) % len(self.endpoints)
        await self._drop_client()

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def endpoint_names(self) -> tuple[str, ...]:
        return tuple(str(endpoint) for endpoint in self.endpoints)

    async def _call(self, operation: str, op: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """Run `op` on the current endpoint, failing over to the others; typed errors only."""
        failures: list[str] = []
        for _ in self.endpoints:
            client, generation = await self.open_client()
            endpoint = self.endpoint
            try:
                # wait_for runs the call in a task of its own and cancels only that one.
                # asyncio.timeout cancels the caller, and when the call ends with an error
                # of its own in the same turn, Python 3.11 leaves that cancellation pending
                # for the caller's next await, where it ends whatever loop made the call.
                return await asyncio.wait_for(_awaited(op(client)), self.timeout)
            except TimeoutError:
                failures.append(f"{endpoint}: no answer within {self.timeout:g}s")
            except asyncio.CancelledError:
                if not closed_under_us():
                    raise
                failures.append(f"{endpoint}: the channel closed under the call")
            except (aetcd.ClientError, grpc.aio.AioRpcError, grpc.aio.UsageError) as exc:
                if not unreached(exc):
                    raise self._refusal(operation, exc) from None
                failures.append(f"{endpoint}: {details_of(exc)}")
            except Exception as exc:
                if self._client is client:
                    raise
                # Another call failed over while this one started on the old channel
                # (aetcd's stubs are gone once it is closed): it never reached etcd.
                failures.append(f"{endpoint}: the channel closed under the call ({type(exc).__name__})")
            await self.fail_over(generation)
        raise Unavailable(operation, self.endpoint_names(), tuple(failures))

    @staticmethod
    def _refusal(operation: str, exc: BaseException) -> RequestRefused:
        code = code_of(exc)
        return RequestRefused(operation, code.name if code is not None else type(exc).__name__, details_of(exc))

    # -- leases ---------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> Lease:
        granted = await self._call("lease grant", lambda c: c.lease(ttl))
        return Lease(int(granted.id), int(granted.ttl))

    def keep_alive(self, lease: Lease) -> KeepAlive:
        """Start refreshing `lease` until `stop`, `revoke` or `close`; watch `lost` for its end."""
        keepalive = KeepAlive(lease, self.refresh, self._keepalives.discard)
        self._keepalives.add(keepalive)
        return keepalive

    async def refresh(self, lease: Lease) -> int:
        """One keep-alive: the TTL left, or LeaseNotFound when the lease is gone."""
        reply = await self._call("lease keep-alive", lambda c: c.refresh_lease(lease.id))
        if reply is None:  # the stream closed without a word: a connection problem, not a verdict
            raise Unavailable("lease keep-alive", self.endpoint_names(), (f"{self.endpoint}: no reply",))
        ttl = int(reply.TTL)
        if ttl <= 0:
            self._forget_lease(lease.id)
            raise LeaseNotFound(lease.id)
        return ttl

    async def revoke(self, lease: Lease) -> None:
        """Delete every key written with `lease` now; a lease already gone is fine."""
        for keepalive in [k for k in self._keepalives if k.lease.id == lease.id]:
            await keepalive.stop()
        try:
            await self._call("lease revoke", lambda c: c.revoke_lease(lease.id))
        except RequestRefused as exc:
            if exc.code != "NOT_FOUND":
                raise
        self._forget_lease(lease.id)

    def _forget_lease(self, lease_id: int) -> None:
        for key in [key for key, (_, owner) in self._written.items() if owner == lease_id]:
            del self._written[key]

    # -- writes ---------------------------------------------------------------

    async def put_if_changed(self, key: str, value: bytes, lease: Lease | None = None) -> bool:
        """Write `key` unless we already wrote this value with this lease; True if written."""
        return await self.apply([Write(key, value, lease)]) > 0

    async def apply(self, writes: Sequence[Write], deletes: Sequence[str] = ()) -> int:
        """Apply puts and deletes in as few transactions as etcd allows; the operations sent.

        Puts of a value we already wrote (same bytes, same lease) are left out. A batch
        over etcd's per-transaction limits is cut into several transactions applied in
        order; if one fails, the ones before it stay applied and the error says why.
        """
        ops: dict[str, Write | None] = {}
        for write in writes:
            self._check_sizes(write.key, len(write.value))
            ops[write.key] = write
        for key in deletes:
            self._check_sizes(key, 0)
            if key in ops:
                raise ValueError(f"{key!r} is both written and deleted in one batch")
            ops[key] = None
        pending = [(key, op) for key, op in ops.items() if op is None or not self._holds(op)]
        for chunk in self._chunks(pending):
            await self._transaction(chunk)
        return len(pending)

    def forget(self, keys: Iterable[str] | None = None) -> None:
        """Drop the view of what we wrote (of `keys`, or all), so their next writes go out whole.

        All after a reconnect; some when etcd lost them under us (deleted by someone else).
        """
        if keys is None:
            self._written.clear()
            self._unsure.clear()
            return
        for key in keys:
            self._written.pop(key, None)

    def may_hold(self, key: str) -> bool:
        """Whether etcd may hold `key` from us since the last `forget`: written and not deleted, or unsure."""
        return key in self._written or key in self._unsure

    def _holds(self, write: Write) -> bool:
        return self._written.get(write.key) == (write.value, write.lease.id if write.lease else 0)

    def _check_sizes(self, key: str, size: int) -> None:
        if not key:
            raise ValueError("an etcd key cannot be empty")
        if size > self.max_value_bytes:
            raise ValueTooLarge(key, size, self.max_value_bytes)
        if len(key.encode()) > MAX_KEY_BYTES:
            raise ValueTooLarge(key, len(key.encode()), MAX_KEY_BYTES)

    def _chunks(self, ops: list[tuple[str, Write | None]]) -> list[list[tuple[str, Write | None]]]:
        chunks: list[list[tuple[str, Write | None]]] = []
        size = 0
        for key, op in ops:
            cost = len(key.encode()) + (len(op.value) if op else 0) + 64
            if not chunks or len(chunks[-1]) >= self.max_txn_ops or size + cost > MAX_TXN_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append((key, op))
            size += cost
        return chunks

    async def _transaction(self, chunk: list[tuple[str, Write | None]]) -> None:
        def build(client: aetcd.Client) -> list[Any]:
            return [
                client.transactions.put(key.encode(), op.value, lease=op.lease.id if op.lease else 0)
                if op is not None
                else client.transactions.delete(key.encode())
                for key, op in chunk
            ]

        try:
            await self._call("txn", lambda c: c.transaction(compare=[], success=build(c), failure=[]))
        except BaseException as exc:
            # Whether a failed transaction was applied is unknown: write these again next time.
            for key, _ in chunk:
                self._written.pop(key, None)
                self._unsure.add(key)
            leases = {op.lease.id for _, op in chunk if op is not None and op.lease is not None}
            if isinstance(exc, RequestRefused) and "lease not found" in exc.detail and len(leases) == 1:
                raise LeaseNotFound(leases.pop()) from None
            raise
        for key, op in chunk:
            self._unsure.discard(key)
            if op is None:
                self._written.pop(key, None)
            else:
                self._written[key] = (op.value, op.lease.id if op.lease else 0)

    def watch_prefix(self, prefix: str, start_revision: int, seen: int | None = None) -> Watch:
        """Events under `prefix` from `start_revision` on; use as `async with ... as watch`.

        `seen` is a revision read before (default: the one before `start_revision`): an
        etcd behind it lost history, and the watch raises RevisionWentBack.
        """
        return Watch(self, prefix, start_revision, seen)


