"""The HTTP listener: the API app behind the connection guard.

aiohttp's own TCPSite hands every connection to a plain RequestHandler; this site
hands it to `GuardedRequestHandler`, which carries the deadlines and the cap of
resolver/http/guard.py. Everything else (routing, middleware, graceful shutdown) is
aiohttp's AppRunner as the daemon used it before. The daemon, the test harness and
bench/http.py all serve through this class, so what is measured is what runs.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from resolver.http.appkeys import GUARD
from resolver.http.guard import ConnectionGuard

# Handlers still running at shutdown (blocking queries) are cut after this, so that
# SIGTERM exits within a few seconds even with clients waiting on `?wait=10m`.
SHUTDOWN_SECONDS = 1.0
# Connections the kernel may queue before we accept them.
BACKLOG = 512


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections are `GuardedRequestHandler`s."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self.runner = runner
        self.host = host
        self.port = port
        self.guard = guard

    @property
    def name(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self.runner.server
        assert server is not None, "the runner is set up before its sites start"
        factory = self.guard.protocol_factory(server)
        loop = asyncio.get_running_loop()
        # BaseSite.stop() closes self._server and AppRunner.addresses reads it.
        self._server = await loop.create_server(factory, self.host, self.port, reuse_address=True, backlog=BACKLOG)


class HttpServer:
    """The API app on one address: `start()`, `addresses`, `stop()`."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.guard = app[GUARD]
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        await self._runner.setup()
        self.guard.start()
        await GuardedSite(self._runner, host, port, self.guard).start()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        assert self._runner is not None
        return [(str(address[0]), int(address[1])) for address in self._runner.addresses]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.guard.stop()
