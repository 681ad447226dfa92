"""The blocking flavour: `Discovery`, and the socket transport that carries its steps.

Each HTTP exchange is one connection (HTTP/1.0), bounded by one deadline from the
connect to the last byte: the socket's timeout is set to the time left before every
send and read, so no server, however slowly it drips, holds a caller past
`timeout`. A connection per request costs about 0.1 ms on loopback, and cached
lookups make none; in exchange there is no pool to go stale when the daemon restarts.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Callable, Generator, Mapping, TypeVar, overload

import dns.exception
import dns.message
import dns.query

from resolver.client.base import ClientBase, Statuses, Tags, json_bytes, params_of, query_of, strategy_of
from resolver.client.query import Query
from resolver.client.http_wire import HttpResponse, MalformedResponse, ResponseReader, tls_context
from resolver.client.results import Endpoints, Instances, Services, ServiceUrl
from resolver.client.selection import Strategy
from resolver.client.steps import DnsCall, Failure, HttpCall, Plan, Reply, Step
from resolver.client.watch import DEFAULT_WAIT, ConnectionChange, Watch

T = TypeVar("T")
READ_SIZE = 65536


def perform(step: Step) -> Reply:
    return http_exchange(step) if isinstance(step, HttpCall) else dns_exchange(step)


def http_exchange(call: HttpCall) -> HttpResponse | Failure:
    deadline = time.monotonic() + call.timeout
    reader = ResponseReader(call.max_body)
    base = call.base
    try:
        with socket.create_connection((base.host, base.port), timeout=call.timeout) as raw:
            conn = tls_context().wrap_socket(raw, server_hostname=base.host) if base.scheme == "https" else raw
            with conn:
                _settimeout(conn, deadline)
                conn.sendall(call.payload)
                while True:
                    _settimeout(conn, deadline)
                    data = conn.recv(READ_SIZE)
                    if not data or reader.feed(data):
                        break
        return reader.finish()
    except TimeoutError:
        return Failure(f"no answer within {call.timeout:g}s")
    except (OSError, MalformedResponse) as exc:
        return Failure(str(exc) or type(exc).__name__)


def _settimeout(conn: socket.socket, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    conn.settimeout(left)


def dns_exchange(call: DnsCall) -> dns.message.Message | Failure:
    try:
        reply, _ = dns.query.udp_with_fallback(call.message, call.host, timeout=call.timeout, port=call.port)
    except dns.exception.Timeout:
        return Failure(f"no DNS answer within {call.timeout:g}s")
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        return Failure(str(exc) or type(exc).__name__)
    return reply


def run(plan: Plan[T]) -> T:
    """Carry every step of `plan` out, blocking; its result (or its exception)."""
    try:
        step = next(plan)
        while True:
            step = plan.send(perform(step))
    except StopIteration as done:
        result: T = done.value
        return result


class Discovery(ClientBase):
    """Service lookups through the local pilotfish daemon, for threads and plain scripts.

        discovery = Discovery()                      # the environment's daemon, 5 s cache
        discovery.url("api")                         # ServiceUrl; str() is the URL
        discovery.instances("redis", tags="primary")
        for change in discovery.watch("redis"): ...

    Safe to share between threads. Lookups fall back to the last good answer, DNS and
    PILOTFISH_<NAME>_URL when the daemon does not answer (core.py); `request` does not.
    """

    def services(self) -> Services:
        return run(self._core.services())

    def instances(self, name: str, *, tags: Tags = (), status: Statuses = None,
                  version: str | None = None, node: str | None = None) -> Instances:
        return run(self._core.instances(query_of(name, tags, status, version, node)))

    def url(self, name: str, strategy: str | Strategy = Strategy.ROUND_ROBIN, *, tags: Tags = (),
            status: Statuses = None, version: str | None = None, node: str | None = None) -> ServiceUrl:
        return run(self._core.url(query_of(name, tags, status, version, node), strategy_of(strategy)))

    def endpoints(self, name: str, *, tags: Tags = (), status: Statuses = None,
                  version: str | None = None, node: str | None = None) -> Endpoints:
        return run(self._core.endpoints(query_of(name, tags, status, version, node)))

    def request(self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None) -> Any:
        """One call of the HTTP API, its JSON answer as it is (raises ApiError, DaemonUnavailable)."""
        return run(self._core.request(method, path, json_bytes(body), params_of(query)))

    @overload
    def watch(self, name: str, *, tags: Tags = ..., status: Statuses = ..., wait: float = ...,
              on_connection: Callable[[ConnectionChange], None] | None = ...) -> Generator[Instances, None, None]: ...

    @overload
    def watch(self, name: None = ..., *, tags: Tags = ..., status: Statuses = ..., wait: float = ...,
              on_connection: Callable[[ConnectionChange], None] | None = ...) -> Generator[Services, None, None]: ...

    def watch(self, name: str | None = None, *, tags: Tags = (), status: Statuses = None, wait: float = DEFAULT_WAIT,
              on_connection: Callable[[ConnectionChange], None] | None = None) -> Generator[Any, None, None]:
        """The current state of `name` (every service when None), then each change, for ever.

        Survives daemon restarts: while the daemon is away the iterator just waits,
        and `on_connection` hears when it is lost (why, and when the next try is) and
        when it is back.
        """
        query: Query | None = query_of(name, tags, status, None, None) if name is not None else None
        watcher = Watch(self._core, query, wait)

        def follow() -> Generator[Instances | Services, None, None]:
            while True:
                event = run(watcher.step())
                if event.connection is not None and on_connection is not None:
                    on_connection(event.connection)
                if event.value is not None:
                    yield event.value
                if event.pause:
                    time.sleep(event.pause)

        return follow()

