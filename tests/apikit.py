"""A real HTTP API on 127.0.0.1 port 0 for the test_http_* suites (a plugin conftest loads).

The app runs on its own event loop in a thread, exactly as the daemon runs it
(resolver.http.server.HttpServer), over a real Catalog and a real SQLite Store in
tmp_path; tests talk to it with urllib. Catalog writes made by a test go through
`ApiServer.call`, on the loop's thread, because the catalog is single-threaded by design.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest

from conftest import NODE, LoopThread, Reply, http_request
from registry.catalog import Catalog
from registry.maintenance import MaintenanceScheduler
from registry.schema import load_text
from registry.store import Store
from resolver.config import Config, HttpSettings
from resolver.http.app import build_app
from resolver.http.server import HttpServer
from resolver.state import DaemonState

T = TypeVar("T")


class ApiServer:
    def __init__(self, tmp_path: Path, token: str | None = None) -> None:
        self.loop = LoopThread("api-test-loop")
        self.store = Store(tmp_path / "state" / "pilotfish.db")
        self.identity = NODE
        self.catalog: Catalog = self.call(lambda: Catalog(self.store, self.identity))
        config = Config(node=NODE.node, address=NODE.address, http=HttpSettings(token=token))
        self.state = DaemonState(config, self.catalog, self.store, self.identity)
        self.state.maintenance = self.scheduler = self.call(lambda: MaintenanceScheduler(self.catalog))
        self.app = build_app(self.state)
        self.server = HttpServer(self.app)
        self.port = self.loop.run(self._start())
        self.base = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        self.scheduler.load()
        await self.scheduler.start()
        await self.server.start("127.0.0.1", 0)
        host, port = self.server.addresses[0]
        self.state.bound["http"] = [f"{host}:{port}"]
        return port

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's loop thread (catalog writes)."""
        return self.loop.call(fn)

    def apply_yaml(self, path: str, text: str) -> None:
        instances = load_text(text, path, self.identity)
        self.call(lambda: self.catalog.apply_file(path, instances))

    def request(self, method: str, path: str, body: Any = None, token: str | None = None, raw: bytes | None = None,
                timeout: float = 10) -> Reply:
        return http_request(self.base, method, path, body, token, raw, timeout)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("PUT", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.loop.run(self.server.stop())
        self.loop.run(self.scheduler.stop())
        self.loop.close()
        self.store.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path)
    yield server
    server.close()


@pytest.fixture
def api_with_token(tmp_path: Path) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path, token="s3cret-token")
    yield server
    server.close()
