"""One etcd watch stream: the events under a prefix, a response at a time, never half a revision.

Bounded: a response is handed on whole (fragments joined) and refused past the
message limit (WatchOverflow, a resync); gRPC flow control holds the rest in etcd.
A broken stream moves its client to the next endpoint and ends in Unavailable.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, NoReturn, Protocol

import aetcd
import grpc
from aetcd import rpc

from registry.cluster.errors import Compacted, RequestRefused, RevisionWentBack, Unavailable, WatchOverflow
from registry.cluster.kv import Delete, Put, Skipped, WatchBatch, WatchEvent, decode_key, prefix_end
from registry.cluster.rpc import closed_under_us, code_of, details_of


class Connection(Protocol):
    """What a watch needs of the client that opened it (registry.cluster.etcd.EtcdClient)."""

    timeout: float
    max_message_bytes: int
    max_value_bytes: int

    @property
    def endpoint(self) -> str: ...

    async def open_client(self) -> tuple[aetcd.Client, int]: ...

    async def fail_over(self, generation: int) -> None: ...

    def endpoint_names(self) -> tuple[str, ...]: ...


class Watch:
    """One watch stream: an async iterator of `WatchBatch`, closed by `async with`.

    It ends with `Unavailable` when the stream breaks (watch again from
    `next_revision`), `ResyncNeeded` when that revision can no longer be watched, or
    `RevisionWentBack` (at the start) when etcd is not there yet: it lost history.
    """

    def __init__(self, owner: Connection, prefix: str, start_revision: int, seen: int | None = None) -> None:
        self._owner = owner
        self._key = prefix.encode()
        self.next_revision = start_revision
        # A revision etcd has already reached (a watch may start one past the last).
        self._seen = start_revision - 1 if seen is None else seen
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
        client, self._generation = await owner.open_client()
        request = rpc.WatchRequest(
            create_request=rpc.WatchCreateRequest(
                key=self._key,
                range_end=prefix_end(self._key),
                start_revision=self.next_revision,
                fragment=True,
            )
        )
        self._call = call = rpc.WatchStub(client.channel).Watch(metadata=client.metadata)

        async def create() -> Any:
            await call.write(request)
            return await call.read()

        try:
            # In a task of its own, as EtcdClient's calls (see there): a timeout must not
            # leave a cancellation pending for whoever opened the watch.
            created = await asyncio.wait_for(create(), owner.timeout)
        except TimeoutError:
            await self._broken(f"{owner.endpoint}: no answer to the watch within {owner.timeout:g}s")
        except (grpc.aio.AioRpcError, grpc.aio.UsageError) as exc:
            await self._broken(f"{owner.endpoint}: {details_of(exc)}")
        except asyncio.CancelledError:
            if not closed_under_us():
                raise
            await self._broken(f"{owner.endpoint}: the channel closed under the watch")
        if created is grpc.aio.EOF or not created.created:
            await self._broken(f"{owner.endpoint}: the watch was not created")
        await self._check(created)
        current = int(created.header.revision)
        if current < self._seen:
            # etcd would wait for revisions it already had, and then send only what follows.
            await self.aclose()
            raise RevisionWentBack(self._seen, current)

    async def _broken(self, detail: str) -> NoReturn:
        """Close the stream, move the client on, and say why (always raises)."""
        await self.aclose()
        await self._owner.fail_over(self._generation)
        raise Unavailable("watch", self._owner.endpoint_names(), (detail,))

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
                if code_of(exc) == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    # Watching again from here would meet the same response: read instead.
                    await self.aclose()
                    raise WatchOverflow(None, self._owner.max_message_bytes) from None
                await self._broken(f"{self._owner.endpoint}: {details_of(exc)}")
            except asyncio.CancelledError:
                if not closed_under_us():
                    raise
                await self._broken(f"{self._owner.endpoint}: the channel closed under the watch")
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
        key, problem = decode_key(kv.key)
        revision = int(kv.mod_revision)
        if event.type == rpc.Event.DELETE:
            return Skipped(key, problem, revision) if problem else Delete(key, revision)
        if problem is None and len(kv.value) > self._owner.max_value_bytes:
            problem = f"value is {len(kv.value)} bytes, over {self._owner.max_value_bytes}"
        return Skipped(key, problem, revision) if problem else Put(key, kv.value, revision, int(kv.lease))
