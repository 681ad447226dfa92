"""What one HTTP client may hold: header and body deadlines, a connection cap.

aiohttp reads a request for as long as the client takes to send it, and keeps every
connection it accepts: a client that sends its headers a byte every few seconds
(slowloris) holds a connection and a task for good, and a few thousand of them
leave no room for anyone else. Here each connection carries the phase it is in and
since when, and one sweep a fraction of a second apart closes those past their
deadline:

- a connection must deliver its request line and headers within `header_timeout`
  of opening, or of the first byte of its next request (keep-alive);
- a body must arrive within `body_timeout` of the headers; a response the client
  does not read within `body_timeout` is dropped too.

Both answer 408 in the API's JSON shape before closing. A running handler, and so a
blocking query waiting on the catalog, is never cut: it ends on its own (`wait` is
at most 10 minutes). Past `max_connections` a new connection takes the place of the
one that has waited longest without a handler running (idle between requests, or
still sending its headers); when every connection has a handler at work, the
newcomer is answered 503 and closed. Blocking queries may take at most three
quarters of the connections, so lookups always find room: one more is answered 503.

The lookup hot path pays two attribute writes per request for this (see the API
middleware); the sweep runs beside it, never inside a request.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from aiohttp import streams, web

from registry.background import cancel_and_wait
from registry.ratelog import RateLimitedLog
from resolver.config import HttpSettings
from resolver.http.errors import ApiError, error_response
from resolver.metrics import HTTP_REQUESTS

log = logging.getLogger("pilotfish.http")

# Share of max_connections that blocking queries may hold at once.
BLOCKING_SHARE = 0.75
# The sweep runs at a quarter of the shorter timeout, within these bounds.
SWEEP_INTERVAL = (0.05, 1.0)
# aiohttp's keep-alive timeout: an idle connection is closed after this. Idle
# connections are also the first to go when the cap is reached.
KEEPALIVE_TIMEOUT = 75.0
# How much of aiohttp's parser message a 400 answer repeats to the client.
MAX_DETAIL = 200
# Requests that never reached a route are counted under this route and method.
NO_ROUTE = "-"


class Phase(enum.Enum):
    HEADERS = "headers"  # new, or a request arriving: header_timeout runs
    BODY = "body"  # a handler waits for the body: body_timeout runs
    BUSY = "busy"  # a handler runs (a blocking query included): no deadline here
    IDLE = "idle"  # between requests; body_timeout runs while a response is unread


def _canned(status: int, reason: str, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response written straight to the transport, closing it."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


HEADER_TIMEOUT = _canned(408, "Request Timeout", "request_timeout", "the request's headers took too long to arrive")
BODY_TIMEOUT = _canned(408, "Request Timeout", "request_timeout", "the request's body took too long to arrive")
TOO_MANY = _canned(
    503, "Service Unavailable", "too_many_connections", "every HTTP connection is in use; try again shortly"
)


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's connection protocol, with its phase for the guard and JSON 400s."""

    __slots__ = ("guard", "clock", "phase", "since", "body")

    def __init__(
        self, manager: web.Server, guard: "ConnectionGuard", loop: asyncio.AbstractEventLoop, **kwargs: Any
    ) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self.guard = guard
        self.clock = loop.time
        self.phase = Phase.HEADERS
        self.since = 0.0
        self.body: streams.StreamReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.since = self.clock()
        self.guard.admit(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.phase is Phase.IDLE:
            self.phase = Phase.HEADERS
            self.since = self.clock()
        super().data_received(data)

    # The two calls below are on the lookup hot path (the API middleware makes them):
    # attribute writes and at most one clock read each.

    def request_started(self, request: web.BaseRequest) -> None:
        """The headers are in and a handler starts."""
        if request.body_exists and not request.content.is_eof():
            self.phase = Phase.BODY
            self.body = request.content
            self.since = self.clock()
        else:
            self.phase = Phase.BUSY  # no deadline, so no clock

    def request_finished(self) -> None:
        self.phase = Phase.IDLE
        self.since = self.clock()
        self.body = None

    def close_with(self, response: bytes) -> None:
        """Answer with a canned response and close, whatever aiohttp was doing."""
        if self.transport is not None:
            self.transport.write(response)
        self.force_close()

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """aiohttp's answer to a request its parser refused: ours is JSON, and logged
        once per interval without a traceback (the client's fault is not our bug).
        A 5xx here is a bug of ours, and keeps aiohttp's full report."""
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        detail = (message or str(exc) or "malformed request")[:MAX_DETAIL]
        self.guard.malformed_log.note(client=request.remote, status=status, error=detail)
        HTTP_REQUESTS[(NO_ROUTE, NO_ROUTE, status)] += 1
        response = error_response(status, "bad_request", f"malformed HTTP request: {detail}", {})
        response.force_close()
        return response


class ConnectionGuard:
    """Every open API connection, its deadlines and the cap; one per HTTP server.

    `settings` is read again at each sweep and each new connection, so a SIGHUP that
    changes the limits applies without a restart.
    """

    def __init__(self, settings: Callable[[], HttpSettings]) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        # Every open connection; a dict for O(1) removal when one closes.
        self._connections: dict[GuardedRequestHandler, None] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.blocking = 0
        self.malformed_log = RateLimitedLog(log, logging.WARNING, "malformed HTTP requests answered 400")
        self.slow_log = RateLimitedLog(log, logging.WARNING, "slow HTTP clients cut off (408)")
        self.refused_log = RateLimitedLog(log, logging.WARNING, "HTTP connections refused: every one is in use")

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "ConnectionGuard.start() was not called"
        return self._loop

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def protocol_factory(self, server: web.Server) -> Callable[[], GuardedRequestHandler]:
        """What `loop.create_server` calls for each accepted connection."""
        loop = self.loop

        def build() -> GuardedRequestHandler:
            return GuardedRequestHandler(
                server, self, loop=loop, keepalive_timeout=KEEPALIVE_TIMEOUT, access_log=None
            )

        return build

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="pilotfish-http-guard")

    async def stop(self) -> None:
        await cancel_and_wait(self._sweeper)
        self._sweeper = None

    # -- the cap ---------------------------------------------------------

    def admit(self, connection: GuardedRequestHandler) -> None:
        cap = self.settings().max_connections
        while len(self._connections) >= cap:
            victim = self._longest_waiting()
            if victim is None:
                self.refused_log.note(open=len(self._connections), max_connections=cap)
                HTTP_REQUESTS[(NO_ROUTE, NO_ROUTE, 503)] += 1
                connection.close_with(TOO_MANY)
                return
            # Gone from the table now: its connection_lost comes later.
            del self._connections[victim]
            victim.force_close()
        self._connections[connection] = None

    def forget(self, connection: GuardedRequestHandler) -> None:
        self._connections.pop(connection, None)

    def _longest_waiting(self) -> GuardedRequestHandler | None:
        """The connection that has waited longest with no handler at work, if any."""
        best: GuardedRequestHandler | None = None
        for connection in self._connections:
            if connection.phase is Phase.HEADERS or (connection.phase is Phase.IDLE and not _unsent(connection)):
                if best is None or connection.since < best.since:
                    best = connection
        return best

    @contextmanager
    def blocking_query(self) -> Iterator[None]:
        """Hold one of the blocking-query places for the duration of a wait."""
        limit = max(1, int(self.settings().max_connections * BLOCKING_SHARE))
        if self.blocking >= limit:
            raise ApiError(
                503, "too_many_waiting",
                f"{self.blocking} blocking queries are waiting already (at most {limit}); retry shortly",
            )
        self.blocking += 1
        try:
            yield
        finally:
            self.blocking -= 1

    # -- deadlines -------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            settings = self.settings()
            low, high = SWEEP_INTERVAL
            await asyncio.sleep(min(high, max(low, min(settings.header_timeout, settings.body_timeout) / 4)))
            self.sweep(settings)

    def sweep(self, settings: HttpSettings) -> None:
        """Close every connection past its phase's deadline."""
        now = self.loop.time()
        header_deadline = now - settings.header_timeout
        body_deadline = now - settings.body_timeout
        for connection in list(self._connections):
            phase = connection.phase
            if phase is Phase.HEADERS:
                if connection.since < header_deadline:
                    self._cut(connection, HEADER_TIMEOUT, phase)
            elif phase is Phase.BODY:
                if connection.body is None or connection.body.is_eof():
                    connection.phase = Phase.BUSY
                elif connection.since < body_deadline:
                    self._cut(connection, BODY_TIMEOUT, phase)
            elif phase is Phase.IDLE and connection.since < body_deadline and _unsent(connection):
                # The client does not read its answer: there is no one to answer.
                self._cut(connection, b"", phase)

    def _cut(self, connection: GuardedRequestHandler, response: bytes, phase: Phase) -> None:
        self.slow_log.note(client=_peer(connection), phase=phase.value)
        HTTP_REQUESTS[(NO_ROUTE, NO_ROUTE, 408)] += 1
        del self._connections[connection]
        connection.close_with(response)


def _unsent(connection: GuardedRequestHandler) -> int:
    transport = connection.transport
    return transport.get_write_buffer_size() if transport is not None else 0


def _peer(connection: GuardedRequestHandler) -> str | None:
    transport = connection.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if isinstance(peer, tuple) else None
