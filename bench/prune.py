"""Pruning benchmark: the cost of keeping the event log within events.max_rows.

Fills a real SQLite store (WAL, synchronous=FULL, as the daemon opens it) with
`--events` events, sets max_rows to `--keep`, and prunes it the way the daemon's
job does, one batch (one transaction) at a time. Prints the whole pruning's time
and the slowest batch: the longest a writer or a read of `/v1/events` could wait
behind it (lookups never read SQLite). The last line is one JSON object for tooling.

    python3 bench/prune.py [--events 100000] [--keep 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry.events import Event, EventKind  # noqa: E402
from registry.store import PRUNE_BATCH, Retention, Store  # noqa: E402

FILL_CHUNK = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--keep", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "pilotfish.db")
        for start in range(0, args.events, FILL_CHUNK):
            count = min(FILL_CHUNK, args.events - start)
            store.write_batch([Event(EventKind.HEALTH, f"svc-{n}", {"check": f"svc-{n}:tcp", "to": "passing"})
                               for n in range(start, start + count)])
        store.set_retention(Retention(max_age=30 * 86400.0, max_rows=args.keep))
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
    print(f"events:        {args.events}, kept {kept} (max_rows {args.keep})")
    print(f"pruned:        {deleted} in {total:.3f} s, {len(batches)} batches of up to {PRUNE_BATCH}")
    print(f"one batch:     median {median:.1f} ms, slowest {worst:.1f} ms")
    print(json.dumps({"bench": "prune", "deleted": deleted, "total_s": round(total, 3),
                      "batch_median_ms": round(median, 2), "batch_max_ms": round(worst, 2)}))


if __name__ == "__main__":
    main()
