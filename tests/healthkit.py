"""Test support for the health tests: real servers that go up and down, and the status of an instance.

Every server binds 127.0.0.1 port 0; a server taken down and brought back keeps
its port, as a restarted service would.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Self, TypeVar

from aiohttp import web

from conftest import NODE, entry_of, eventually, run, started, status_of
from registry.catalog import Catalog
from registry.health.runner import HealthRunner
from registry.model import Instance, Status
from registry.schema import parse_registration

T = TypeVar("T")
# The "+ slack" of every deadline: interval + timeout + SLACK. A wait returns as soon as
# the change shows, so a generous slack costs nothing when it passes; a tight one fails
# on a loaded 2-core machine where a loop may stall for hundreds of milliseconds.
SLACK = 1.0


def register(catalog: Catalog, body: dict[str, Any]) -> Instance:
    entry, _ = catalog.register(parse_registration(body, NODE))
    return entry.instance


def output_of(catalog: Catalog, instance_id: str) -> str:
    """The first check's output, or "" while the instance is unknown."""
    entry = entry_of(catalog, instance_id)
    return entry.checks[0].output if entry is not None and entry.checks else ""


def run_checks(catalog: Catalog, scenario: Callable[[], Awaitable[T]], **runner: Any) -> T:
    """Run `scenario` on a fresh loop while a HealthRunner(catalog, **runner) runs the checks."""

    async def running() -> T:
        async with started(HealthRunner(catalog, **runner)):
            return await scenario()

    return run(running())


async def wait_status(catalog: Catalog, instance_id: str, status: Status | None, within: float) -> float:
    """Wait for `instance_id` to reach `status` (None: gone); the seconds it took."""
    started = time.monotonic()
    await eventually(lambda: status_of(catalog, instance_id) is status, within,
                     f"{instance_id} {status}, is {status_of(catalog, instance_id)}")
    return time.monotonic() - started


async def serve_handler(path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                        ssl_context: Any = None) -> tuple[web.AppRunner, str]:
    """One handler on a fresh port: the runner (to clean up) and the URL of `path`."""
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
    scheme = "https" if ssl_context is not None else "http"
    return runner, f"{scheme}://127.0.0.1:{runner.addresses[0][1]}{path}"


class Service:
    """A local server a check probes; `down()` and `up()` again keep its port, as a restarted service would."""

    def __init__(self) -> None:
        self.port = 0
        self._close: Callable[[], Awaitable[None]] | None = None

    async def up(self) -> Self:
        self._close = await self._open()
        return self

    async def down(self) -> None:
        close, self._close = self._close, None
        if close is not None:
            await close()

    async def _open(self) -> Callable[[], Awaitable[None]]:
        """Listen on 127.0.0.1 at `self.port` (0: any, then set it); how to close again."""
        raise NotImplementedError


class TcpService(Service):
    """A listener that accepts and closes."""

    async def _open(self) -> Callable[[], Awaitable[None]]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = server.sockets[0].getsockname()[1]

        async def close() -> None:
            server.close()
            await server.wait_closed()

        return close

    @staticmethod
    async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()


class HttpService(Service):
    """An aiohttp server whose answer is switched by `mode`: ok, 500, hang, redirect, 429."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.body = "all good"
        self.requests: list[tuple[str, dict[str, str]]] = []  # (method, headers) as received
        self._hung = asyncio.Event()

    async def _open(self) -> Callable[[], Awaitable[None]]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self.port = runner.addresses[0][1]

        async def close() -> None:
            self._hung.set()  # a hanging request ends with the server
            await runner.cleanup()
            self._hung = asyncio.Event()

        return close

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, dict(request.headers)))
        if self.mode == "500":
            return web.Response(status=500, text="boom")
        if self.mode == "429":
            return web.Response(status=429, text="slow down")
        if self.mode == "redirect":
            raise web.HTTPFound("/elsewhere")
        if self.mode == "hang":
            await self._hung.wait()
        return web.Response(text=self.body)
