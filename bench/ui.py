"""Status page benchmark: what `/ui/` costs to render on a big catalog, and how big it gets.

Builds a catalog of `--services` services x 3 instances (as bench/registry.py does),
then renders the page as the handler does (resolver.http.ui_page.render_page, no
HTTP): the first render after a change (the search index and the catalog part are
built), a repeated render (the catalog part comes from the snapshot's memo; the node
part is rendered again), a filtered render, and the same three on a hostile catalog:
a page of services whose instances carry the longest tags, meta and versions, made of
quotes (which escape six-fold). The last line is one JSON object for tooling.

    python3 bench/ui.py [--services 10000] [--repeat 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

# The repository instead of bench/ (whose http.py would shadow the standard library's).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from registry.catalog import Catalog  # noqa: E402
from registry.model import NodeIdentity  # noqa: E402
from registry.schema import load_text  # noqa: E402
from registry.store import Store  # noqa: E402
from resolver.config import Config  # noqa: E402
from resolver.http.ui_catalog import INSTANCES_SHOWN  # noqa: E402
from resolver.http.ui_page import render_page  # noqa: E402
from resolver.http.ui_view import PAGE_SERVICES, View  # noqa: E402
from resolver.state import DaemonState  # noqa: E402

DEFAULTS = NodeIdentity("bench-node", "10.0.0.1")


def ordinary(services: int) -> str:
    """One file of `services` services x 3 instances, the shape of bench/registry.py's."""
    return "services:\n" + "".join(
        f"  - {{name: svc-{n}, id: svc-{n}-{i}, port: {8000 + i}, address: 10.{(n >> 8) & 255}.{n & 255}.{i + 1},"
        f" protocol: http, tags: [v{i}, bench], meta: {{team: t{n % 17}, shard: '{i}'}}}}\n"
        for n in range(services) for i in range(3)
    )


def hostile() -> str:
    """A page's worth of services whose instances carry the most the page clips."""
    quotes = "'" + '"' * 500 + "'"
    tags = ", ".join(f"{n:02}" + "t" * 61 for n in range(20))
    meta = ", ".join(f"key{k}: {quotes}" for k in range(10))
    return "services:\n" + "".join(
        f"  - {{name: h{n:02}, id: h{n:02}-{i}, port: {1000 + n * 100 + i}, tags: [{tags}], meta: {{{meta}}},"
        f" version: {quotes}}}\n"
        for n in range(PAGE_SERVICES) for i in range(INSTANCES_SHOWN + 1)
    )


def timed(render: Callable[[], bytes], repeat: int) -> tuple[float, int]:
    """Median milliseconds of `repeat` renders, and the page's size in bytes."""
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        size = len(render())
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), size


def measure(state: DaemonState, text: str, repeat: int, words: str) -> dict[str, float]:
    catalog = state.catalog
    catalog.apply_file("/bench/services.yaml", load_text(text, "/bench/services.yaml", DEFAULTS))
    cold = timed(lambda: render_page(state, catalog.current, View()), 1)
    warm = timed(lambda: render_page(state, catalog.current, View()), repeat)
    filtered = timed(lambda: render_page(state, catalog.current, View(words)), 1)
    return {
        "first_render_ms": round(cold[0], 2),
        "memoised_render_ms": round(warm[0], 3),
        "filtered_first_render_ms": round(filtered[0], 2),
        "page_bytes": cold[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    results = {}
    for label, text, words in (("ordinary", ordinary(args.services), "svc-99"), ("hostile", hostile(), "h1")):
        with tempfile.TemporaryDirectory() as directory:
            store = Store(Path(directory) / "pilotfish.db")
            try:
                state = DaemonState(Config(node=DEFAULTS.node, address=DEFAULTS.address), Catalog(store, DEFAULTS),
                                    store, DEFAULTS)
                results[label] = measure(state, text, args.repeat, words)
            finally:
                store.close()
        print(f"{label}: {results[label]}")
    print(json.dumps({"services": args.services, **results}))


if __name__ == "__main__":
    main()
