"""Pruning benchmark: the cost of keeping the event log within events.max_rows.

The store part fills a real SQLite store (WAL, synchronous=FULL, as the daemon opens
it) with `--events` events, sets max_rows to `--keep`, and prunes it the way the
daemon's job does, one batch (one transaction) at a time. It prints the whole
pruning's time and the slowest batch: the longest a writer or a read of `/v1/events`
could wait behind it.

The lookup part (skipped with `--no-lookups`) runs the real daemon (`pilotfish
serve`, pinned to one core) on a state_dir holding `--lookup-events` events, with
max_rows far above them so that nothing is pruned at start. One keep-alive client,
pinned to the other core, asks `GET /v1/services/web` as fast as it can and records
when each request was sent and how long it took. Once it has run a second, the
config's max_rows becomes `--keep` and SIGHUP starts the pruning; its `event log
pruned` log line says when it ended and how long it took, which is the window during
the pruning. The same length of time right after it ended is the window to compare
with: p50, p99, max and count of each, and the ratio of the p99s (during / after).
A batch runs on the daemon's event loop, so a lookup that arrives during one waits
for it: the figures say how much that shows.

The last line is one JSON object for tooling.

    python3 bench/prune.py [--events 100000] [--keep 1000] [--lookup-events 150000] [--no-lookups]
"""

from __future__ import annotations

import sys
from pathlib import Path

# The one import from this directory, before it leaves the import path: bench/http.py
# would shadow the standard library's `http` package.
HERE = Path(__file__).resolve().parent
from benchkit import REPO, host_port, start_daemon, stop_process  # noqa: E402

sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

from registry.events import Event, EventKind  # noqa: E402
from registry.store import PRUNE_BATCH, Retention, Store  # noqa: E402

FILL_CHUNK = 10_000
SERVICE = "web"
# Three instances with tags and meta, as bench/http.py asks for.
SERVICES_YAML = "services:\n" + "".join(
    f"  - {{name: {SERVICE}, id: web-{i}, port: {8000 + i}, protocol: http, tags: [blue, v{i}], "
    f"meta: {{team: edge, shard: '{i}'}}}}\n"
    for i in range(3)
)
WARM_UP = 1.0  # seconds of lookups before the pruning starts
PRUNE_WITHIN = 120.0


def fill(store: Store, count: int) -> None:
    for start in range(0, count, FILL_CHUNK):
        chunk = min(FILL_CHUNK, count - start)
        store.write_batch([Event(EventKind.HEALTH, f"svc-{n}", {"check": f"svc-{n}:tcp", "to": "passing"})
                           for n in range(start, start + chunk)])


def measure_store(events: int, keep: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "pilotfish.db")
        fill(store, events)
        store.set_retention(Retention(max_age=30 * 86400.0, max_rows=keep))
        batches: list[float] = []
        began = time.perf_counter()
        deleted = 0
        while True:
            clock = time.perf_counter()
            went = store.prune_events_batch()
            batches.append(time.perf_counter() - clock)
            deleted += went
            if not went:
                break
        total = time.perf_counter() - began
        kept = store.count_events()
        store.close()
    worst, median = max(batches) * 1000, statistics.median(batches) * 1000
    print(f"events:        {events}, kept {kept} (max_rows {keep})")
    print(f"pruned:        {deleted} in {total:.3f} s, {len(batches)} batches of up to {PRUNE_BATCH}")
    print(f"one batch:     median {median:.1f} ms, slowest {worst:.1f} ms")
    return {"deleted": deleted, "total_s": round(total, 3), "batch_median_ms": round(median, 2),
            "batch_max_ms": round(worst, 2)}


@dataclass(frozen=True)
class Window:
    """Lookup latencies (ms) of the requests sent within one stretch of time."""

    latencies: list[float]

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]

    def line(self, label: str, seconds: float) -> str:
        return (f"{label} ({seconds:.2f} s): {len(self.latencies)} lookups, p50 {self.percentile(0.5):.2f} ms, "
                f"p99 {self.percentile(0.99):.2f} ms, max {max(self.latencies):.2f} ms")

    def figures(self) -> dict[str, float]:
        return {"count": len(self.latencies), "p50_ms": round(self.percentile(0.5), 3),
                "p99_ms": round(self.percentile(0.99), 3), "max_ms": round(max(self.latencies), 3)}


class LookupClient(threading.Thread):
    """One keep-alive connection asking for the lookup back to back: (wall time sent, seconds taken) each."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(name="lookups")
        self.address = address
        self.samples: list[tuple[float, float]] = []
        self.failure: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection(*self.address, timeout=10)
        try:
            while not self.stop.is_set():
                sent, clock = time.time(), time.perf_counter()
                connection.request("GET", f"/v1/services/{SERVICE}")
                response = connection.getresponse()
                body = response.read()
                taken = time.perf_counter() - clock
                if response.status != 200 or not body:
                    raise RuntimeError(f"lookup answered {response.status}: {body[:200]!r}")
                self.samples.append((sent, taken))
        except BaseException as exc:  # noqa: BLE001 - the main thread reports it
            self.failure = exc
        finally:
            connection.close()

    def window(self, start: float, end: float) -> Window:
        return Window([taken * 1000 for sent, taken in self.samples if start <= sent < end])


def pruned_line(log_path: Path) -> dict[str, Any] | None:
    for line in log_path.read_text().splitlines():
        if '"msg":"event log pruned"' in line:
            return dict(json.loads(line))
    return None


def measure_lookups(events: int, keep: int) -> dict[str, Any]:
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = cores[0], cores[-1]
    with tempfile.TemporaryDirectory(prefix="pilotfish-bench-") as tmp:
        home = Path(tmp)
        store = Store(home / "state" / "pilotfish.db")
        fill(store, events)
        store.close()
        config_events = "events: {max_rows: %d, max_age: 30d}\n"
        daemon = start_daemon(home, "bench", {"web.yaml": SERVICES_YAML}, config_events % 100_000_000,
                              launcher=("taskset", "-c", str(server_core)), within=60)
        client = LookupClient(host_port(daemon.bound["http"][0]))
        try:
            os.sched_setaffinity(0, {client_core})
            client.start()
            time.sleep(WARM_UP)
            config = home / "pilotfish.yaml"
            config.write_text(config.read_text().replace(config_events % 100_000_000, config_events % keep))
            daemon.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + PRUNE_WITHIN
            while (line := pruned_line(daemon.log_path)) is None:
                if time.monotonic() > deadline or client.failure is not None:
                    raise SystemExit(f"no pruning within {PRUNE_WITHIN:g} s (client: {client.failure!r})")
                time.sleep(0.02)
            end, seconds = float(line["ts"]), float(line["seconds"])
            while time.time() < end + seconds + 0.2 and client.failure is None:
                time.sleep(0.02)
        finally:
            client.stop.set()
            client.join(15)
            stop_process(daemon.proc)
            os.sched_setaffinity(0, cores)
    if client.failure is not None:
        raise SystemExit(f"a lookup failed: {client.failure!r}")
    during, after = client.window(end - seconds, end), client.window(end, end + seconds)
    if not during.latencies or not after.latencies:
        raise SystemExit("no lookup was sent in one of the windows")
    ratio = during.percentile(0.99) / after.percentile(0.99)
    print(f"daemon:        {events} events, max_rows {100_000_000} -> {keep} by SIGHUP; daemon on core {server_core}, "
          f"one keep-alive client on core {client_core}")
    print(f"pruning:       {line['deleted']} events in {seconds:.3f} s (its log line)")
    print(during.line("during pruning", seconds))
    print(after.line("right after   ", seconds))
    print(f"p99 during / after: {ratio:.2f}")
    return {"lookup_events_deleted": line["deleted"], "lookup_prune_s": seconds,
            "during": during.figures(), "after": after.figures(), "p99_ratio": round(ratio, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the store part")
    parser.add_argument("--keep", type=int, default=1000, help="max_rows to prune to (the config allows 100 up)")
    parser.add_argument("--lookup-events", type=int, default=150_000, help="events in the daemon's state_dir")
    parser.add_argument("--no-lookups", action="store_true", help="skip the part that runs the daemon")
    args = parser.parse_args()
    figures: dict[str, Any] = {"bench": "prune", **measure_store(args.events, args.keep)}
    if not args.no_lookups:
        figures["lookups"] = measure_lookups(args.lookup_events, args.keep)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
