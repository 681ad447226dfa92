"""What the benchmarks that run the real daemon share: starting it, on ephemeral ports, and reading where it listens.

`start_daemon` writes a config with every listener on 127.0.0.1:0 and the given
services, runs `python -m resolver.cli serve` from this checkout with its log in
`home`, and waits for the `ready` log line, which carries the ports it bound.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Started:
    """A daemon that logged `ready`: its process, the addresses it bound, its files."""

    proc: subprocess.Popen[bytes]
    bound: dict[str, list[str]]
    services: Path
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://{self.bound['http'][0]}"

    @property
    def dns(self) -> tuple[str, int]:
        """Where it answers DNS, as dnspython takes it."""
        return host_port(self.bound["dns_udp"][0])


def host_port(bound: str) -> tuple[str, int]:
    host, _, port = bound.rpartition(":")
    return host.strip("[]"), int(port)


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if it is still there ten seconds later."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_daemon(
    home: Path, node: str, files: Mapping[str, str] = {}, extra_config: str = "", launcher: Sequence[str] = (),
    within: float = 30.0, address: str = "127.0.0.1",
) -> Started:
    """The daemon of `home`, serving `files` in its services.d; `launcher` prefixes the command (taskset).

    `address` is the node's (what fleet mode publishes); its listeners stay on 127.0.0.1."""
    services = home / "services.d"
    services.mkdir()
    for name, text in files.items():
        (services / name).write_text(text)
    config = home / "pilotfish.yaml"
    config.write_text(
        f"node: {node}\naddress: {address}\nservices_dir: {services}\nstate_dir: {home / 'state'}\n"
        "dns: {listen: ['127.0.0.1:0']}\nhttp: {listen: '127.0.0.1:0'}\n" + extra_config
    )
    log_path = home / "pilotfish.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*launcher, sys.executable, "-m", "resolver.cli", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=log, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            if '"msg":"ready"' in line:
                return Started(proc, json.loads(line)["bound"], services, log_path)
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited with {proc.returncode}:\n{log_path.read_text()}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the daemon did not start within {within:g} s")
