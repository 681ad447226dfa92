"""Test support for the health tests: real servers that go up and down, and the status of an instance.

Every server binds 127.0.0.1 port 0; a server taken down and brought back keeps
its port, as a restarted service would.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

from conftest import NODE, entry_of, eventually, status_of
from registry.catalog import Catalog
from registry.model import Instance, Status
from registry.schema import parse_registration

SLACK = 0.1  # the "+ 100 ms" of every deadline: interval + timeout + SLACK


def register(catalog: Catalog, body: dict[str, Any]) -> Instance:
    entry, _ = catalog.register(parse_registration(body, NODE))
    return entry.instance


def output_of(catalog: Catalog, instance_id: str) -> str:
    """The first check's output, or "" while the instance is unknown."""
    entry = entry_of(catalog, instance_id)
    return entry.checks[0].output if entry is not None and entry.checks else ""


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


class TcpService:
    """A listener that accepts and closes; `down()` and `up()` keep its port."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def up(self) -> "TcpService":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @staticmethod
    async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()


class HttpService:
    """An aiohttp server whose answer is switched by `mode`: ok, 500, hang, redirect, 429."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.body = "all good"
        self.port = 0
        self.requests: list[tuple[str, dict[str, str]]] = []  # (method, headers) as received
        self._runner: web.AppRunner | None = None
        self._hung = asyncio.Event()

    async def up(self) -> "HttpService":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def down(self) -> None:
        if self._runner is not None:
            self._hung.set()
            await self._runner.cleanup()
            self._runner = None
            self._hung = asyncio.Event()

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
