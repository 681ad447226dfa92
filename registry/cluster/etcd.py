"""The one door to etcd: the few operations fleet mode needs, with our types and errors.

Everything fleet mode asks of etcd goes through `EtcdClient`, so another client
library could replace `aetcd` by rewriting this module alone: no aetcd or gRPC type
leaves it. aetcd holds the channel, the generated protocol stubs and the unary calls;
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
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, NoReturn, Sequence, TypeVar

import aetcd
import grpc
from aetcd import rpc

from registry.endpoints import Endpoint, parse_etcd
from registry.errors import RegistryError

T = TypeVar("T")

DEFAULT_TIMEOUT = 2.0
# A value from another node larger than this is refused unread (records are ~1 KiB).
MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_BYTES = 1024
# etcd's defaults: --max-txn-ops 128 and --max-request-bytes 1.5 MiB. A batch is cut
# into transactions under both, so a large republish never trips them.
MAX_TXN_OPS = 128
MAX_TXN_BYTES = 1024 * 1024
RANGE_PAGE = 512
# A gRPC message is refused above this size: a range page or a watch response that
# would need more is read again in smaller pieces (range) or resynced (watch).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# A range holding more keys than this is refused rather than held (fleet mode
# aims at 100,000 instances).
MAX_KEYS = 1_000_000
# etcd refuses client pings more often than --grpc-keepalive-min-time (5s by default).
KEEPALIVE_PING = 10.0


class EtcdError(RegistryError):
    """Root of the errors this module raises."""


class BadEndpoint(EtcdError):
    """An endpoint in the config is not `host:port` or `http://host:port`."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"etcd endpoint {text!r}: {reason}")


class Unavailable(EtcdError):
    """No endpoint answered `operation` in time; `failures` says what each one tried did."""

    def __init__(self, operation: str, endpoints: tuple[str, ...], failures: tuple[str, ...]) -> None:
        self.operation = operation
        self.endpoints = endpoints
        self.failures = failures
        super().__init__(f"etcd unavailable for {operation} ({', '.join(endpoints)}): {'; '.join(failures)}")


class RequestRefused(EtcdError):
    """etcd answered and said no (too many operations, permission, a bad argument)."""

    def __init__(self, operation: str, code: str, detail: str) -> None:
        self.operation = operation
        self.code = code
        self.detail = detail
        super().__init__(f"etcd refused {operation}: {code}: {detail}")


class RangeTooLarge(EtcdError):
    """More keys under `prefix` than we agree to hold in memory."""

    def __init__(self, prefix: str, limit: int) -> None:
        self.prefix = prefix
        self.limit = limit
        super().__init__(f"more than {limit} keys under {prefix!r}")


class LeaseNotFound(EtcdError):
    """The lease expired or was revoked: keys written with it are gone."""

    def __init__(self, lease_id: int) -> None:
        self.lease_id = lease_id
        super().__init__(f"etcd lease {lease_id:x} not found (expired or revoked)")


class ValueTooLarge(EtcdError):
    """A write we were asked to make is larger than any node would accept to read."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        self.key = key
        self.size = size
        self.limit = limit
        super().__init__(f"value for {key!r} is {size} bytes, over the {limit}-byte limit")


class ResyncNeeded(EtcdError):
    """The watch cannot continue from where it is: read the prefix again, then watch."""


class Compacted(ResyncNeeded):
    """`requested` was compacted away; `revision` is the oldest left (None if etcd did not say)."""

    def __init__(self, requested: int, revision: int | None = None) -> None:
        self.requested = requested
        self.revision = revision
        oldest = f" (oldest is {revision})" if revision is not None else ""
        super().__init__(f"etcd revision {requested} was compacted{oldest}")


class WatchOverflow(ResyncNeeded):
    """One watch response was larger than we hold in memory (`size` None: gRPC refused it)."""

    def __init__(self, size: int | None, limit: int) -> None:
        self.size = size
        self.limit = limit
        told = f"of {size} bytes " if size is not None else ""
        super().__init__(f"a watch response {told}is over the {limit}-byte limit")


def parse_endpoint(text: str) -> Endpoint:
    """An etcd endpoint from the config's text; BadEndpoint saying why not."""
    try:
        return parse_etcd(text)
    except ValueError as exc:
        raise BadEndpoint(text, str(exc)) from None


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted lease: `ttl` is what etcd granted, which may exceed what was asked."""

    id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class Write:
    """One put of a batch; `lease` None writes a key that outlives this daemon."""

    key: str
    value: bytes
    lease: Lease | None = None


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Delete:
    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """A key or value refused unread. `key` is printable even when etcd's was not UTF-8.

    A reader holding the key should drop it: whatever it held is no longer current.
    """

    key: str
    reason: str
    mod_revision: int


WatchEvent = Put | Delete | Skipped


@dataclass(frozen=True, slots=True)
class RangeResult:
    """Every key under a prefix as it was at `revision`; watch from `revision + 1`."""

    revision: int
    items: tuple[KeyValue, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """The events of one watch response, in order; `next_revision` resumes after them."""

    events: tuple[WatchEvent, ...]
    next_revision: int


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """Why a kept-alive lease ended; unless `stopped` (we ended it), its keys are gone."""

    lease_id: int
    reason: str
    stopped: bool = False


def _code_of(exc: BaseException) -> Any:
    """The gRPC status code behind an aetcd or gRPC error, if there is one."""
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, grpc.aio.AioRpcError):
            return candidate.code()
    return None


def _details_of(exc: BaseException) -> str:
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, grpc.aio.AioRpcError):
            return str(candidate.details() or candidate.code().name)
    return str(exc) or type(exc).__name__


# Codes that mean "this endpoint did not answer" rather than "etcd said no"; gRPC
# reports some transport failures (a reset stream, a proxy in the way) as UNKNOWN or
# INTERNAL, and another endpoint may do better.
_UNREACHED = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}


def _unreached(exc: BaseException) -> bool:
    code = _code_of(exc)
    # aetcd errors without a gRPC cause come from a closed or half-built channel.
    return code is None or code in _UNREACHED


def _decode_key(raw: bytes) -> tuple[str, str | None]:
    """The key as text, and why it is refused (None when it is fine)."""
    try:
        key = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw[:MAX_KEY_BYTES].decode("utf-8", "backslashreplace"), "key is not UTF-8"
    if len(raw) > MAX_KEY_BYTES:
        return key[:MAX_KEY_BYTES], f"key is {len(raw)} bytes, over {MAX_KEY_BYTES}"
    return key, None


def _prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (etcd's range_end)."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


class EtcdClient:
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

    async def close(self) -> None:
        """Stop every keep-alive and close the channel; safe to call twice."""
        self._closed = True
        for keepalive in list(self._keepalives):
            await keepalive.stop()
        await self._drop_client()

    async def _open(self) -> tuple[aetcd.Client, int]:
        if self._closed:
            raise Unavailable("call", self._names(), ("the client is closed",))
        if self._client is None:
            endpoint = self.endpoints[self._current]
            # Set before the first await, so that concurrent callers share one channel.
            self._client = aetcd.Client(endpoint.host, endpoint.port, timeout=self.timeout, options=self._options)
            self._generation += 1
            await self._client.connect()  # builds the channel; no I/O until the first call
        return self._client, self._generation

    async def _fail_over(self, generation: int) -> None:
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

    def _names(self) -> tuple[str, ...]:
        return tuple(str(endpoint) for endpoint in self.endpoints)

    async def _call(self, operation: str, op: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """Run `op` on the current endpoint, failing over to the others; typed errors only."""
        failures: list[str] = []
        for _ in self.endpoints:
            client, generation = await self._open()
            endpoint = self.endpoint
            try:
                async with asyncio.timeout(self.timeout):
                    return await op(client)
            except TimeoutError:
                failures.append(f"{endpoint}: no answer within {self.timeout:g}s")
            except (aetcd.ClientError, grpc.aio.AioRpcError, grpc.aio.UsageError) as exc:
                if not _unreached(exc):
                    raise self._refusal(operation, exc) from None
                failures.append(f"{endpoint}: {_details_of(exc)}")
            await self._fail_over(generation)
        raise Unavailable(operation, self._names(), tuple(failures))

    @staticmethod
    def _refusal(operation: str, exc: BaseException) -> RequestRefused:
        code = _code_of(exc)
        return RequestRefused(operation, code.name if code is not None else type(exc).__name__, _details_of(exc))

    # -- leases ---------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> Lease:
        granted = await self._call("lease grant", lambda c: c.lease(ttl))
        return Lease(int(granted.id), int(granted.ttl))

    def keep_alive(self, lease: Lease) -> KeepAlive:
        """Start refreshing `lease` until `stop`, `revoke` or `close`; watch `lost` for its end."""
        keepalive = KeepAlive(self, lease)
        self._keepalives.add(keepalive)
        return keepalive

    async def refresh(self, lease: Lease) -> int:
        """One keep-alive: the TTL left, or LeaseNotFound when the lease is gone."""
        reply = await self._call("lease keep-alive", lambda c: c.refresh_lease(lease.id))
        if reply is None:  # the stream closed without a word: a connection problem, not a verdict
            raise Unavailable("lease keep-alive", self._names(), (f"{self.endpoint}: no reply",))
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

    def forget(self) -> None:
        """Drop the view of what we wrote, so the next writes go out whole (after a reconnect)."""
        self._written.clear()

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
            leases = {op.lease.id for _, op in chunk if op is not None and op.lease is not None}
            if isinstance(exc, RequestRefused) and "lease not found" in exc.detail and len(leases) == 1:
                raise LeaseNotFound(leases.pop()) from None
            raise
        for key, op in chunk:
            if op is None:
                self._written.pop(key, None)
            else:
                self._written[key] = (op.value, op.lease.id if op.lease else 0)

    # -- reads ----------------------------------------------------------------

    async def range_prefix(self, prefix: str) -> RangeResult:
        """Every key under `prefix`, read in pages at one revision."""
        start = prefix.encode()
        end = _prefix_end(start)
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
                    skipped.append(Skipped(_decode_key(kv.key)[0], "value over the message limit", kv.mod_revision))
                    start = kv.key + b"\0"
                if page.kvs:
                    continue
                return RangeResult(revision, tuple(items), tuple(skipped))
            revision = revision or int(page.header.revision)
            if len(items) + len(skipped) + len(page.kvs) > self.max_keys:
                raise RangeTooLarge(prefix, self.max_keys)
            for kv in page.kvs:
                key, problem = _decode_key(kv.key)
                if problem is None and len(kv.value) > self.max_value_bytes:
                    problem = f"value is {len(kv.value)} bytes, over {self.max_value_bytes}"
                if problem is None:
                    items.append(KeyValue(key, kv.value, kv.mod_revision))
                else:
                    skipped.append(Skipped(key, problem, kv.mod_revision))
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

    def watch_prefix(self, prefix: str, start_revision: int) -> Watch:
        """Events under `prefix` from `start_revision` on; use as `async with ... as watch`."""
        return Watch(self, prefix, start_revision)


class Watch:
    """One watch stream: an async iterator of `WatchBatch`, closed by `async with`.

    It ends with `Unavailable` when the stream breaks (watch again from
    `next_revision`), or `ResyncNeeded` when that revision can no longer be watched.
    """

    def __init__(self, owner: EtcdClient, prefix: str, start_revision: int) -> None:
        self._owner = owner
        self._key = prefix.encode()
        self.next_revision = start_revision
        self._call: Any = None
        self._generation = 0

    async def __aenter__(self) -> Watch:
        await self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[WatchBatch]:
        return self

    async def aclose(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    async def _start(self) -> None:
        owner = self._owner
        client, self._generation = await owner._open()
        request = rpc.WatchRequest(
            create_request=rpc.WatchCreateRequest(
                key=self._key,
                range_end=_prefix_end(self._key),
                start_revision=self.next_revision,
                fragment=True,
            )
        )
        self._call = rpc.WatchStub(client.channel).Watch(metadata=client.metadata)
        try:
            async with asyncio.timeout(owner.timeout):
                await self._call.write(request)
                created = await self._call.read()
        except TimeoutError:
            await self._broken(f"{owner.endpoint}: no answer to the watch within {owner.timeout:g}s")
        except (grpc.aio.AioRpcError, grpc.aio.UsageError) as exc:
            await self._broken(f"{owner.endpoint}: {_details_of(exc)}")
        if created is grpc.aio.EOF or not created.created:
            await self._broken(f"{owner.endpoint}: the watch was not created")
        await self._check(created)

    async def _broken(self, detail: str) -> NoReturn:
        """Close the stream, move the client on, and say why (always raises)."""
        await self.aclose()
        await self._owner._fail_over(self._generation)
        raise Unavailable("watch", self._owner._names(), (detail,))

    async def _check(self, response: Any) -> None:
        """Raise (with the stream closed) when etcd ended the watch."""
        if response.compact_revision:
            await self.aclose()
            raise Compacted(self.next_revision, int(response.compact_revision))
        if response.canceled:
            await self.aclose()
            raise RequestRefused("watch", "CANCELED", response.cancel_reason or "canceled by etcd")

    async def __anext__(self) -> WatchBatch:
        if self._call is None:
            raise StopAsyncIteration
        events: list[WatchEvent] = []
        size = 0
        while True:
            try:
                response = await self._call.read()
            except (grpc.aio.AioRpcError, grpc.aio.UsageError) as exc:
                if _code_of(exc) == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    # Watching again from here would meet the same response: read instead.
                    await self.aclose()
                    raise WatchOverflow(None, self._owner.max_message_bytes) from None
                await self._broken(f"{self._owner.endpoint}: {_details_of(exc)}")
            if response is grpc.aio.EOF:
                await self._broken(f"{self._owner.endpoint}: the watch stream ended")
            await self._check(response)
            for event in response.events:
                size += len(event.kv.key) + len(event.kv.value)
                events.append(self._event(event))
            if size > self._owner.max_message_bytes:
                await self.aclose()
                raise WatchOverflow(size, self._owner.max_message_bytes)
            # Fragments of one response are handed on together, never half a revision.
            if response.fragment or not events:
                continue
            self.next_revision = events[-1].mod_revision + 1
            return WatchBatch(tuple(events), self.next_revision)

    def _event(self, event: Any) -> WatchEvent:
        kv = event.kv
        key, problem = _decode_key(kv.key)
        revision = int(kv.mod_revision)
        if event.type == rpc.Event.DELETE:
            return Skipped(key, problem, revision) if problem else Delete(key, revision)
        if problem is None and len(kv.value) > self._owner.max_value_bytes:
            problem = f"value is {len(kv.value)} bytes, over {self._owner.max_value_bytes}"
        return Skipped(key, problem, revision) if problem else Put(key, kv.value, revision)


class KeepAlive:
    """Refreshes one lease every third of its TTL until stopped or lost.

    `lost()` returns why the lease ended: etcd says it is gone, or etcd could not be
    reached for a whole TTL (then etcd has dropped it too, or will any moment), or
    `stop` ended the refreshing (`stopped`), so that nobody waits on it forever.
    """

    def __init__(self, owner: EtcdClient, lease: Lease) -> None:
        self.lease = lease
        self._owner = owner
        self._lost: asyncio.Future[LeaseLost] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name=f"etcd-keepalive-{lease.id:x}")

    @property
    def loss(self) -> LeaseLost | None:
        """Why the lease was lost, or None while it is held."""
        return self._lost.result() if self._lost.done() else None

    async def lost(self) -> LeaseLost:
        return await asyncio.shield(self._lost)

    async def stop(self) -> None:
        self._owner._keepalives.discard(self)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        if not self._lost.done():
            self._lost.set_result(LeaseLost(self.lease.id, "keep-alive stopped", stopped=True))

    async def _run(self) -> None:
        try:
            await self._refresh_until_lost()
        except Exception as exc:  # the owner waits on `lost()`: it must hear of any end
            self._end(f"keep-alive failed: {exc!r}")

    async def _refresh_until_lost(self) -> None:
        deadline = time.monotonic() + self.lease.ttl
        delay = self.lease.ttl / 3
        while True:
            await asyncio.sleep(delay)
            sent = time.monotonic()
            try:
                ttl = await self._owner.refresh(self.lease)
            except LeaseNotFound:
                self._end("etcd no longer has the lease (expired or revoked)")
                return
            except EtcdError as exc:
                if time.monotonic() >= deadline:
                    self._end(f"etcd unreachable for the whole TTL ({self.lease.ttl}s): {exc}")
                    return
                # Try again soon, but not in a busy loop while etcd is down.
                delay = min(max(self.lease.ttl / 10, 0.1), max(deadline - time.monotonic(), 0.1))
                continue
            deadline = sent + ttl
            delay = ttl / 3

    def _end(self, reason: str) -> None:
        self._owner._keepalives.discard(self)
        if not self._lost.done():
            self._lost.set_result(LeaseLost(self.lease.id, reason))
