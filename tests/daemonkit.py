"""The real daemon as a subprocess, for tests that exercise `pilotfish serve` end to end (a plugin conftest loads).

`start_daemon(...)` writes a config with every listener on 127.0.0.1:0, runs
`python -m resolver.cli serve --config FILE` with its log in a file, and waits for
the `ready` log line, which carries the ports actually bound. Every process started
is killed at teardown, whatever the test did to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import dns.message
import dns.query
import dns.rdatatype
import pytest
import yaml
from dns.message import Message

from conftest import REPO, Reply, http_request, wait_for
from registry.endpoints import parse_address

START_TIMEOUT = 20.0


@dataclass
class Daemon:
    """A running `pilotfish serve` and the ways a test talks to it."""

    proc: subprocess.Popen[bytes]
    config_path: Path
    services_dir: Path
    state_dir: Path
    log_path: Path
    http_url: str
    dns: tuple[str, int]  # where it answers DNS (UDP and TCP)
    token: str | None = None
    bound: dict[str, list[str]] = field(default_factory=dict)

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> Reply:
        return http_request(self.http_url, method, path, body, token)

    def get(self, path: str) -> Any:
        reply = self.request("GET", path)
        assert reply.status == 200, reply
        return reply.body

    def text(self, path: str) -> str:
        with urllib.request.urlopen(self.http_url + path, timeout=10) as response:
            return str(response.read().decode())

    def write(self, method: str, path: str, body: Any = None) -> Reply:
        return self.request(method, path, body, token=self.token)

    def query(self, name: str, rdtype: str = "SRV", tcp: bool = False) -> Message:
        message = dns.message.make_query(name, rdtype)
        send = dns.query.tcp if tcp else dns.query.udp
        return send(message, self.dns[0], port=self.dns[1], timeout=2)

    def srv_ports(self, name: str, tcp: bool = False) -> list[int]:
        """Ports in the SRV answer for `name` (empty on NXDOMAIN or no data)."""
        reply = self.query(name, "SRV", tcp)
        return sorted(rr.port for rrset in reply.answer for rr in rrset if rrset.rdtype == dns.rdatatype.SRV)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = self.get("/v1/status")
        return body

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"msg": line})
        return lines

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def write_config(path: Path, services_dir: Path, state_dir: Path, token: str | None, extra: dict[str, Any]) -> None:
    config: dict[str, Any] = {
        "node": "testnode",
        "address": "127.0.0.1",
        "services_dir": str(services_dir),
        "state_dir": str(state_dir),
        "dns": {"listen": ["127.0.0.1:0"], "ttl": "1s"},
        "http": {"listen": "127.0.0.1:0", "token": token},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def launch(config_path: Path, log_path: Path, env: dict[str, str] | None = None,
           open_files: tuple[int, int] | None = None) -> subprocess.Popen[bytes]:
    """`pilotfish serve` as a subprocess; `open_files` (soft, hard) is its RLIMIT_NOFILE, as `ulimit -n` sets it."""

    def limit_open_files() -> None:
        assert open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "resolver.cli", "serve", "--config", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=str(config_path.parent),
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            preexec_fn=limit_open_files if open_files is not None else None,
        )


def ready_line(log_path: Path, proc: subprocess.Popen[bytes], after: int) -> dict[str, Any]:
    """The `ready` log line written after byte `after` of the log (a restart appends)."""
    def probe() -> dict[str, Any] | None:
        text = log_path.read_bytes()[after:].decode(errors="replace")
        for line in text.splitlines():
            if '"msg":"ready"' in line:
                return dict(json.loads(line))
        if proc.poll() is not None:
            raise AssertionError(f"pilotfish serve exited with {proc.returncode}:\n{text}")
        return None

    return wait_for(probe, START_TIMEOUT, "the daemon's ready line")


class DaemonFactory:
    """Starts daemons for one test and kills every one of them at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[subprocess.Popen[bytes]] = []

    def __call__(
        self,
        token: str | None = None,
        config: dict[str, Any] | None = None,
        files: dict[str, str] | None = None,
        name: str = "d",
        open_files: tuple[int, int] | None = None,
    ) -> Daemon:
        home = self.root / name
        services_dir = home / "services.d"
        state_dir = home / "state"
        services_dir.mkdir(parents=True, exist_ok=True)
        for filename, text in (files or {}).items():
            (services_dir / filename).write_text(text)
        config_path = home / "pilotfish.yaml"
        write_config(config_path, services_dir, state_dir, token, config or {})
        return self.run(config_path, services_dir, state_dir, token, open_files)

    def restart(self, daemon: Daemon) -> Daemon:
        """The same config, state and services again (after the old process ended)."""
        return self.run(daemon.config_path, daemon.services_dir, daemon.state_dir, daemon.token)

    def run(self, config_path: Path, services_dir: Path, state_dir: Path, token: str | None,
            open_files: tuple[int, int] | None = None) -> Daemon:
        log_path = config_path.parent / "pilotfish.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        proc = launch(config_path, log_path, open_files=open_files)
        self.started.append(proc)
        ready = ready_line(log_path, proc, offset)
        bound = ready["bound"]
        dns_udp = parse_address(bound["dns_udp"][0])
        return Daemon(
            proc, config_path, services_dir, state_dir, log_path,
            http_url=f"http://{bound['http'][0]}", dns=(dns_udp.host, dns_udp.port), token=token, bound=bound,
        )

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[DaemonFactory]:
    with contextlib.closing(DaemonFactory(tmp_path)) as factory:
        yield factory


@pytest.fixture
def daemon(start_daemon: DaemonFactory) -> Daemon:
    """One daemon with an empty services.d, no token, every listener on an ephemeral port."""
    return start_daemon()
