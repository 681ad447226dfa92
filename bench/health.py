"""Health benchmark: thousands of TCP checks against local listeners; the checker's CPU share.

Registers `--checks` instances (one TCP check each, `--interval` apart) against
`--listeners` ports served by a separate process (so accepting costs the checker
nothing), runs the real HealthRunner on the daemon's event loop (uvloop) for
`--seconds`, and prints:

- the checker's CPU share of one core, from the process's CPU times, over the
  steady window (after the first interval, when every check has started once)
  and over the whole run (start-up included);
- the spread of check times: how long probes took (steady, and in the first
  interval when every check starts at once), how far apart a check's runs
  were against the interval, and how evenly runs fell across the seconds.

The last line is one JSON object for tooling.

    python3 bench/health.py [--checks 5000] [--interval 10] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

# The repository instead of bench/ itself: bench/http.py would shadow the stdlib's http.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from registry.catalog import Catalog  # noqa: E402
from registry.health.runner import HealthRunner  # noqa: E402
from registry.model import CheckKind, CheckSpec, Instance, NodeIdentity, Source, Status  # noqa: E402
from registry.store import Store  # noqa: E402

DEFAULTS = NodeIdentity("bench-node", "127.0.0.1")


def serve_listeners(count: int) -> None:
    """Child process: `count` listeners that accept and close, until stdin closes."""
    selector = selectors.DefaultSelector()
    ports = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(4096)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        ports.append(sock.getsockname()[1])
    selector.register(sys.stdin, selectors.EVENT_READ)
    print(json.dumps(ports), flush=True)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sys.stdin:
                return
            listener = key.fileobj
            assert isinstance(listener, socket.socket)
            try:
                while True:
                    conn, _ = listener.accept()
                    conn.close()
            except (BlockingIOError, ConnectionAbortedError):
                pass


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }


def instances(checks: int, ports: list[int], interval: float) -> list[Instance]:
    out = []
    for n in range(checks):
        spec = CheckSpec(
            id=f"bench-{n}:tcp", kind=CheckKind.TCP, target=f"127.0.0.1:{ports[n % len(ports)]}",
            interval=interval, timeout=2.0,
        )
        # Distinct ports so that the implicit address/port conflict rule never fires.
        out.append(Instance(id=f"bench-{n}", name=f"svc-{n % 500}", node=DEFAULTS.node, address="127.0.0.1",
                            port=10000 + n, checks=(spec,), source=Source.file("bench")))
    return out


async def bench(args: argparse.Namespace, ports: list[int], state_dir: str) -> dict[str, object]:
    catalog = Catalog(Store(os.path.join(state_dir, "pilotfish.db")), DEFAULTS)
    starts: dict[str, list[float]] = defaultdict(list)
    durations: list[tuple[float, float]] = []  # (start, seconds)

    def observe(check_id: str, started: float, took: float) -> None:
        starts[check_id].append(started)
        durations.append((started, took))

    runner = HealthRunner(catalog, concurrency=args.concurrency, observer=observe)
    loop = asyncio.get_running_loop()
    await runner.start()
    cpu0, wall0 = time.process_time(), loop.time()
    catalog.apply_file("bench", instances(args.checks, ports, args.interval))
    steady_from = min(args.seconds / 2, args.interval)
    await asyncio.sleep(steady_from)
    cpu1, wall1 = time.process_time(), loop.time()
    await asyncio.sleep(args.seconds - steady_from)
    cpu2, wall2 = time.process_time(), loop.time()
    counts = catalog.current.counts_by_status()
    await runner.stop()
    catalog.store.close()

    gaps = [b - a for runs in starts.values() for a, b in zip(runs[1:], runs[2:])]
    steady_runs = [t for runs in starts.values() for t in runs if t >= wall1]
    per_second = Counter(int(t - wall1) for t in steady_runs)
    seconds = [per_second.get(s, 0) for s in range(int(wall2 - wall1))]
    return {
        "checks": args.checks,
        "runs": sum(len(runs) for runs in starts.values()),
        "passing": counts[Status.PASSING.value],
        "cpu_share": (cpu2 - cpu1) / (wall2 - wall1),
        "cpu_share_with_startup": (cpu2 - cpu0) / (wall2 - wall0),
        "probe_ms": {k: round(v * 1000, 2) for k, v in percentiles([d for t, d in durations if t >= wall1]).items()},
        "probe_ms_first_interval": {
            k: round(v * 1000, 2) for k, v in percentiles([d for t, d in durations if t < wall1]).items()
        },
        # From the 2nd run on (the 1st gap is the deliberate start-up spread).
        "gap_s": {k: round(v, 3) for k, v in percentiles(gaps).items()},
        "gap_min_s": round(min(gaps), 3) if gaps else 0.0,
        "runs_per_second": {
            "min": min(seconds, default=0), "mean": round(statistics.fmean(seconds), 1) if seconds else 0.0,
            "max": max(seconds, default=0),
        },
        "steady_window_s": round(wall2 - wall1, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--listeners", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=256, help="the runner's bound (the daemon's is 64)")
    parser.add_argument("--serve-listeners", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_listeners:
        serve_listeners(args.serve_listeners)
        return
    child = subprocess.Popen([sys.executable, __file__, "--serve-listeners", str(args.listeners)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        ports = json.loads(child.stdout.readline())
        with tempfile.TemporaryDirectory(prefix="pilotfish-bench-health-") as state_dir:
            try:
                import uvloop
                result = asyncio.Runner(loop_factory=uvloop.new_event_loop).run(bench(args, ports, state_dir))
            except ImportError:
                result = asyncio.run(bench(args, ports, state_dir))
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    print(f"checks: {result['checks']} TCP every {args.interval:g}s against {args.listeners} listeners, "
          f"{args.seconds:g}s run, {result['runs']} probe runs, {result['passing']} passing at the end")
    print(f"checker CPU: {result['cpu_share']:.1%} of one core steady "
          f"({result['steady_window_s']}s window), {result['cpu_share_with_startup']:.1%} including start-up")
    print(f"probe time ms, steady: {result['probe_ms']}; first interval (every check starts at once): "
          f"{result['probe_ms_first_interval']}")
    print(f"gap between runs of a check (s): {result['gap_s']}, min {result['gap_min_s']}")
    print(f"runs per second (steady): {result['runs_per_second']}")
    print(json.dumps({"bench": "health", "checks": result["checks"], "interval_s": args.interval,
                      "cpu_share": round(float(result["cpu_share"]), 4), "seconds": args.seconds,
                      "cpu_share_with_startup": round(float(result["cpu_share_with_startup"]), 4),
                      "probe_ms": result["probe_ms"], "gap_s": result["gap_s"],
                      "runs_per_second": result["runs_per_second"]}))


if __name__ == "__main__":
    main()
