"""The asyncio flavour: `AsyncDiscovery`, and the stream transport that carries its steps.

The same plans as the blocking flavour (core.py), the same HTTP framing
(http_wire.py); only the waiting differs: asyncio streams under one
`asyncio.timeout` per exchange, and dnspython's asyncio queries. No aiohttp: an
application that uses another HTTP stack should not have to carry one more.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncGenerator, Callable, Mapping, TypeVar, overload

import dns.asyncquery
import dns.exception
import dns.message

from resolver.client.base import ClientBase, Statuses, Tags, json_bytes, params_of, query_of, strategy_of
from resolver.client.query import Query
from resolver.client.http_wire import HttpResponse, MalformedResponse, ResponseReader, tls_context
from resolver.client.results import Endpoints, Instances, Services, ServiceUrl
from resolver.client.selection import Strategy
from resolver.client.steps import DnsCall, Failure, HttpCall, Plan, Reply, Step
from resolver.client.watch import DEFAULT_WAIT, ConnectionChange, Watch

T = TypeVar("T")
READ_SIZE = 65536


async def perform(step: Step) -> Reply:
    return await (http_exchange(step) if isinstance(step, HttpCall) else dns_exchange(step))


async def http_exchange(call: HttpCall) -> HttpResponse | Failure:
    reader = ResponseReader(call.max_body)
    base = call.base
    context = tls_context() if base.scheme == "https" else None
    try:
        async with asyncio.timeout(call.timeout):
            stream, writer = await asyncio.open_connection(base.host, base.port, ssl=context)
            try:
                writer.write(call.payload)
                await writer.drain()
                while True:
                    data = await stream.read(READ_SIZE)
                    if not data or reader.feed(data):
                        break
            finally:
                writer.close()
                try:
                    await writer.wait_closed()
                except OSError:
                    pass  # the peer reset the connection: closed all the same
        return reader.finish()
    except TimeoutError:
        return Failure(f"no answer within {call.timeout:g}s")
    except (OSError, MalformedResponse) as exc:
        return Failure(str(exc) or type(exc).__name__)


async def dns_exchange(call: DnsCall) -> dns.message.Message | Failure:
    try:
        # UDP, then TCP when truncated: each try has the timeout, so two bound the pair.
        async with asyncio.timeout(2 * call.timeout):
            reply, _ = await dns.asyncquery.udp_with_fallback(
                call.message, call.host, timeout=call.timeout, port=call.port
            )
    except (TimeoutError, dns.exception.Timeout):
        return Failure(f"no DNS answer within {call.timeout:g}s")
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        return Failure(str(exc) or type(exc).__name__)
    return reply


async def run(plan: Plan[T]) -> T:
    """Carry every step of `plan` out, awaiting each; its result (or its exception)."""
    try:
        step = next(plan)
        while True:
            step = plan.send(await perform(step))
    except StopIteration as done:
        result: T = done.value
        return result


class AsyncDiscovery(ClientBase):
    """Service lookups through the local pilotfish daemon, for asyncio applications.

        discovery = AsyncDiscovery()
        chosen = await discovery.url("api")
        async for change in discovery.watch("redis"): ...

    The same lookups, fallbacks, cache and breaker as `Discovery` (they share one core).
    """

    async def services(self) -> Services:
        return await run(self._core.services())

    async def instances(self, name: str, *, tags: Tags = (), status: Statuses = None,
                        version: str | None = None, node: str | None = None) -> Instances:
        return await run(self._core.instances(query_of(name, tags, status, version, node)))

    async def url(self, name: str, strategy: str | Strategy = Strategy.ROUND_ROBIN, *, tags: Tags = (),
                  status: Statuses = None, version: str | None = None, node: str | None = None) -> ServiceUrl:
        return await run(self._core.url(query_of(name, tags, status, version, node), strategy_of(strategy)))

    async def endpoints(self, name: str, *, tags: Tags = (), status: Statuses = None,
                        version: str | None = None, node: str | None = None) -> Endpoints:
        return await run(self._core.endpoints(query_of(name, tags, status, version, node)))

    async def request(self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None) -> Any:
        """One call of the HTTP API, its JSON answer as it is (raises ApiError, DaemonUnavailable)."""
        return await run(self._core.request(method, path, json_bytes(body), params_of(query)))

    @overload
    def watch(self, name: str, *, tags: Tags = ..., status: Statuses = ..., wait: float = ...,
              on_connection: Callable[[ConnectionChange], None] | None = ...) -> AsyncGenerator[Instances, None]: ...

    @overload
    def watch(self, name: None = ..., *, tags: Tags = ..., status: Statuses = ..., wait: float = ...,
              on_connection: Callable[[ConnectionChange], None] | None = ...) -> AsyncGenerator[Services, None]: ...

    def watch(self, name: str | None = None, *, tags: Tags = (), status: Statuses = None, wait: float = DEFAULT_WAIT,
              on_connection: Callable[[ConnectionChange], None] | None = None) -> AsyncGenerator[Any, None]:
        """The current state of `name` (every service when None), then each change (see Discovery.watch)."""
        query: Query | None = query_of(name, tags, status, None, None) if name is not None else None
        watcher = Watch(self._core, query, wait)

        async def follow() -> AsyncGenerator[Instances | Services, None]:
            while True:
                event = await run(watcher.step())
                if event.connection is not None and on_connection is not None:
                    on_connection(event.connection)
                if event.value is not None:
                    yield event.value
                if event.pause:
                    await asyncio.sleep(event.pause)

        return follow()
