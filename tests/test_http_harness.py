"""A real HTTP API on 127.0.0.1 port 0 for the test_http_* modules (fixtures only, no tests).

The app runs on its own event loop in a thread, exactly as the daemon runs it
(resolver.http.server.HttpServer), over a real Catalog and a real SQLite Store in tmp_path; tests talk to it
with urllib. Catalog writes made by a test go through `ApiServer.call`, on the loop's
thread, because the catalog is single-threaded by design.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest

from registry.catalog import Catalog
from registry.model import NodeIdentity
from registry.schema import load_text
from registry.store import Store
from resolver.config import Config, HttpSettings
from resolver.http.app import build_app
from resolver.http.server import HttpServer
from resolver.state import DaemonState

T = TypeVar("T")
NODE = "node1"
ADDRESS = "10.0.0.1"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any = None
    text: str = ""

    @property
    def index(self) -> int:
        return int(self.headers["X-Pilotfish-Index"])

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict) and "error" in self.body, self.text
        return self.body["error"]  # type: ignore[no-any-return]


@dataclass
class ApiServer:
    tmp_path: Path
    token: str | None = None
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = Store(self.tmp_path / "state" / "pilotfish.db")
        self.identity = NodeIdentity(NODE, ADDRESS)
        self.catalog: Catalog = self.call(lambda: Catalog(self.store, self.identity))
        config = Config(node=NODE, address=ADDRESS, http=HttpSettings(token=self.token))
        self.state = DaemonState(config, self.catalog, self.store, self.identity)
        self.app = build_app(self.state)
        self.server = HttpServer(self.app)
        self.port = self.run(self._start())
        self.base = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        await self.server.start("127.0.0.1", 0)
        host, port = self.server.addresses[0]
        self.state.bound["http"] = [f"{host}:{port}"]
        return port

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's loop thread (catalog writes)."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())  # type: ignore[no-any-return]

    def apply_yaml(self, path: str, text: str) -> None:
        instances = load_text(text, path, self.identity)
        self.call(lambda: self.catalog.apply_file(path, instances))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        raw: bytes | None = None,
        timeout: float = 10,
    ) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, headers, payload = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, headers, payload = exc.code, dict(exc.headers), exc.read()
            exc.close()
        text = payload.decode()
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        return Reply(status, headers, parsed, text)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("PUT", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
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
