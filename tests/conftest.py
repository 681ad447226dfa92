"""What every suite shares: one node, one catalog, a loop in a thread, one way to wait, one reply.

Tests talk to real parts: a Catalog on a real SQLite file in tmp_path, servers on
127.0.0.1 port 0, real clients. What only some suites need comes as plugins loaded
here: the daemon as a subprocess (daemonkit), the HTTP API on a loop thread
(apikit), a DNS server on a loop thread (dnskit), a real etcd (etcdkit).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Protocol, TypeVar, overload

import pytest

from registry.catalog import Catalog
from registry.model import Entry, NodeIdentity, Status
from registry.states import Hold, NodeState, Trigger
from registry.store import Store

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["daemonkit", "apikit", "dnskit", "etcdkit"]
T = TypeVar("T")

# The node every in-process test registers on, unless it is about another one.
NODE = NodeIdentity("node1", "10.0.0.1")


# -- waiting ---------------------------------------------------------------------


def wait_for(probe: Callable[[], T | None], timeout: float = 5.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)



def holds_for(probe: Callable[[], object], seconds: float, what: str) -> None:
    """Fail as soon as `probe` is falsy within the next `seconds`: a bounded wait for an absence
    (a blocking query still parked, a state that must not move)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert probe(), what
        time.sleep(0.02)


@overload
async def eventually(probe: Callable[[], Coroutine[Any, Any, T | None]], within: float, what: str = ...) -> T: ...


@overload
async def eventually(probe: Callable[[], T | None], within: float, what: str = ...) -> T: ...


async def eventually(probe: Callable[[], Any], within: float, what: str = "condition") -> Any:
    """`wait_for` on an event loop: poll `probe` (a function or a coroutine function) until truthy.

    Returns what it returned; fails past `within` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within:.3f}s")
        await asyncio.sleep(0.005)


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


@contextlib.asynccontextmanager
async def started(part: S) -> AsyncIterator[S]:
    """`part` started for the block, and stopped after it whatever happened (runners, watchers, monitors)."""
    await part.start()
    try:
        yield part
    finally:
        await part.stop()


def run(coro: Awaitable[T], timeout: float = 60.0) -> T:
    """Run `coro` on a fresh event loop, failing it past `timeout` seconds."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


class LoopThread:
    """An event loop in a thread, as the daemon runs its servers; `run(coro)` waits for a result.

    Whatever touches the catalog (single-threaded by design) goes through `call`.
    """

    def __init__(self, name: str = "test-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the loop's thread."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


# -- ports ------------------------------------------------------------------------


def bound_socket(kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket bound to a free port of 127.0.0.1 (a TCP one also listening); `.getsockname()[1]` is it."""
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        sock.listen(64)
    return sock


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A 127.0.0.1 port nothing listens on: bound, then closed (connections to it are refused)."""
    with bound_socket(kind) as sock:
        return int(sock.getsockname()[1])


# -- the catalog as a test reads it ------------------------------------------------------


def entry_of(catalog: Catalog, instance_id: str) -> Entry | None:
    return catalog.current.entry(instance_id)


def status_of(catalog: Catalog, instance_id: str) -> Status | None:
    entry = entry_of(catalog, instance_id)
    return entry.status if entry is not None else None


def hold(catalog: Catalog, instance_id: str, reason: str | None) -> None:
    """Hold one of NODE's instances as an immediate window would (None: release it), without a scheduler."""
    held = None if reason is None else Hold(NodeState.MAINTENANCE, reason, None, 0)
    catalog.hold_instance((NODE.node, instance_id), held, Trigger.API)


# -- HTTP -------------------------------------------------------------------------


@dataclass
class Reply:
    """An HTTP answer: status, headers, the JSON body (None when it is not JSON) and its text."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    text: str = ""

    @property
    def index(self) -> int:
        return int(self.headers["X-Pilotfish-Index"])

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict) and "error" in self.body, self.text
        error: dict[str, Any] = self.body["error"]
        return error


def http_request(
    base: str, method: str, path: str, body: Any = None, token: str | None = None, raw: bytes | None = None,
    timeout: float = 10,
) -> Reply:
    """One request with urllib; `raw` is sent as the body instead of `body` as JSON."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, headers, payload = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            status, headers, payload = exc.code, dict(exc.headers), exc.read()
    text = payload.decode()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = None
    return Reply(status, headers, parsed, text)


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real SQLite store in tmp_path, closed at teardown."""
    with contextlib.closing(Store(tmp_path / "state" / "pilotfish.db")) as opened:
        yield opened


@pytest.fixture
def catalog(store: Store) -> Catalog:
    """A catalog on `store`, for NODE."""
    return Catalog(store, NODE)


@pytest.fixture
def make_read_only() -> Iterator[Callable[[Path], None]]:
    """Make a file (or a directory) impossible to write, for real, whoever runs the tests.

    File modes do not stop root, so as root the file gets the immutable attribute
    (`chattr +i`, which root obeys too) and loses it at teardown; otherwise its
    mode becomes 0444 (0555 for a directory). The test is skipped only where neither works (root on a
    filesystem without file attributes).
    """
    made: list[Path] = []

    def make(path: Path) -> None:
        if os.geteuid() != 0:
            path.chmod(0o555 if path.is_dir() else 0o444)
            return
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"running as root, and chattr +i failed ({done.stderr.strip()}): no way to make a file read-only")
        made.append(path)

    try:
        yield make
    finally:
        for path in made:
            subprocess.run(["chattr", "-i", str(path)], check=True)
