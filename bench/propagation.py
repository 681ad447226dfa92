"""Propagation benchmark: from writing a YAML file to the DNS answer reflecting it.

    python3 bench/propagation.py [--changes 100]

Runs the real daemon (`python -m resolver.cli serve`) on ephemeral ports over a fresh
services.d, then rewrites one registration file `--changes` times, alternating a new
port for one instance and a new instance (new id, new port) replacing the other.
After each write it polls `SRV _bench._tcp.service.internal` with dnspython until the
answer shows the change, and records the time from just before the write. This is the whole path an
operator sees: inotify, the watcher's debounce, YAML parsing, the catalog swap and
the DNS answer. The last line printed is one JSON object for machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Before this script's directory leaves the import path (below).
from benchkit import start_daemon, stop_process

# bench/dns.py would shadow dnspython's `dns` package: drop this script's directory
# from the import path before importing it.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rdatatype  # noqa: E402

NAME = "_bench._tcp.service.internal"
TIMEOUT = 5.0


def srv_ports(server: tuple[str, int]) -> list[int]:
    reply = dns.query.udp(dns.message.make_query(NAME, "SRV"), server[0], port=server[1], timeout=1)
    return sorted(rr.port for rrset in reply.answer if rrset.rdtype == dns.rdatatype.SRV for rr in rrset)


def registration(instances: list[tuple[str, int]]) -> str:
    items = "".join(f"  - {{name: bench, id: {iid}, port: {port}}}\n" for iid, port in instances)
    return "services:\n" + items


def measure(path: Path, server: tuple[str, int], changes: int) -> list[float]:
    instances = [("bench-a", 20000), ("bench-0", 30000)]
    path.write_text(registration(instances))
    wait_for_ports(server, [port for _, port in instances])
    samples = []
    for n in range(1, changes + 1):
        if n % 2:
            instances = [("bench-a", 20000 + n), instances[1]]  # a new port
        else:
            instances = [instances[0], (f"bench-{n}", 30000 + n)]  # a new instance in place of the old one
        started = time.perf_counter()
        path.write_text(registration(instances))
        wait_for_ports(server, [port for _, port in instances])
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def wait_for_ports(server: tuple[str, int], ports: list[int]) -> None:
    deadline = time.perf_counter() + TIMEOUT
    wanted = sorted(ports)
    while srv_ports(server) != wanted:
        if time.perf_counter() > deadline:
            raise SystemExit(f"change to {wanted} not visible after {TIMEOUT}s")
        time.sleep(0.001)  # leave the second core to the daemon


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pilotfish-bench-") as tmp:
        daemon = start_daemon(Path(tmp), "bench")
        try:
            samples = measure(daemon.services / "bench.yaml", daemon.dns, args.changes)
        finally:
            stop_process(daemon.proc)
    p50, p99 = percentile(samples, 0.50), percentile(samples, 0.99)
    print(f"{len(samples)} changes, write -> DNS answer: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"mean {statistics.fmean(samples):.1f} ms, max {max(samples):.1f} ms")
    print(json.dumps({"bench": "propagation", "p50_ms": round(p50, 1), "p99_ms": round(p99, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
