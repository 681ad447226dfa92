"""Registry benchmark: build a 10,000-service x 3-instance catalog, change one file, measure RSS.

Prints the parse time of the YAML files, the full snapshot build time, the time to
apply one changed file (read, validate, conflict-check, swap a new snapshot) and the
process RSS; then, into that catalog, one file of `--big` instances (a TCP check
each) edited by one line: the catalog's part of it must cost the change, not the
file. The last line is one JSON object for tooling.

    python3 bench/registry.py [--services 10000] [--changes 50] [--big 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry.catalog import Catalog  # noqa: E402
from registry.model import NodeIdentity  # noqa: E402
from registry.schema import load_file  # noqa: E402
from registry.store import Store  # noqa: E402

DEFAULTS = NodeIdentity("bench-node", "10.0.0.1")


def service_yaml(n: int, base_port: int) -> str:
    """One file, one service, three instances: the shape of a real drop-in."""
    return (
        "services:\n"
        + "".join(
            f"  - name: svc-{n}\n"
            f"    id: svc-{n}-{i}\n"
            f"    port: {base_port + i}\n"
            f"    address: 10.{(n >> 8) & 255}.{n & 255}.{i + 1}\n"
            f"    protocol: http\n"
            f"    tags: [v{i}, bench]\n"
            f"    meta: {{team: t{n % 17}, shard: \"{i}\"}}\n"
            for i in range(3)
        )
    )


def big_yaml(count: int, first_port: int) -> str:
    """One file of `count` checked instances of 100 services; only the first port varies."""
    lines = ["services:"]
    for n in range(count):
        port = first_port if n == 0 else 40000 + n % 20000
        lines.append(f"  - {{name: big-{n % 100}, id: big-{n}, address: 10.255.{n // 250}.{n % 250 + 1}, port: {port},"
                     f" checks: [{{tcp: '127.0.0.1:{port}'}}]}}")
    return "\n".join(lines) + "\n"


def big_file_edit(catalog: Catalog, directory: Path, count: int) -> dict[str, float]:
    """Seconds to read+validate and to apply a one-line edit of a `count`-instance file."""
    path = directory / "big.yaml"
    path.write_text(big_yaml(count, 30000))
    max_bytes = 64 * 2**20  # the file is past the 1 MiB default: a site with such files raises limits.file_size
    catalog.apply_file(str(path), load_file(path, DEFAULTS, max_bytes))
    path.write_text(big_yaml(count, 30001))
    started = time.perf_counter()
    instances = load_file(path, DEFAULTS, max_bytes)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    catalog.apply_file(str(path), instances)
    apply_s = time.perf_counter() - started
    assert catalog.current.entry("big-0") is not None and catalog.current.entry("big-0").instance.port == 30001  # type: ignore[union-attr]
    return {"read_s": read_s, "apply_s": apply_s, "bytes": path.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--big", type=int, default=20_000, help="instances in the one big file edited by one line")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        services_dir = Path(tmp) / "services.d"
        services_dir.mkdir()
        paths = []
        for n in range(args.services):
            path = services_dir / f"svc-{n}.yaml"
            path.write_text(service_yaml(n, 20000))
            paths.append(str(path))

        store = Store(Path(tmp) / "pilotfish.db")
        catalog = Catalog(store, DEFAULTS)

        started = time.perf_counter()
        parsed = [(path, load_file(path, DEFAULTS)) for path in paths]
        parse_s = time.perf_counter() - started

        started = time.perf_counter()
        with catalog.batch():
            for path, instances in parsed:
                catalog.apply_file(path, instances)
        build_s = time.perf_counter() - started
        del parsed
        instances_total = len(catalog.current.entries_by_key)

        timings = []
        target = paths[len(paths) // 2]
        for change in range(args.changes):
            Path(target).write_text(service_yaml(len(paths) // 2, 30000 + 10 * change))
            started = time.perf_counter()
            catalog.apply_file(target, load_file(target, DEFAULTS))
            timings.append((time.perf_counter() - started) * 1000)
        assert catalog.current.query("svc-%d" % (len(paths) // 2))[0].instance.port == 30000 + 10 * (args.changes - 1)

        rss_mb = psutil.Process().memory_info().rss / 2**20
        change_ms = statistics.median(timings)
        big = big_file_edit(catalog, Path(tmp), args.big)
        store.close()

    print(f"instances:          {instances_total} ({args.services} services x 3)")
    print(f"parse YAML files:   {parse_s:.2f} s ({parse_s / args.services * 1e6:.0f} us per file)")
    print(f"full build:         {build_s:.3f} s (target < 1 s)")
    print(f"one-file change:    median {change_ms:.2f} ms, max {max(timings):.2f} ms over {args.changes} (target < 20 ms)")
    print(f"process RSS:        {rss_mb:.0f} MB (target < 150 MB)")
    print(f"{args.big}-instance file ({big['bytes'] / 2**20:.1f} MiB), one-line edit: apply {big['apply_s'] * 1000:.0f} ms "
          f"(target < 500 ms); read + validate {big['read_s']:.2f} s")
    print(json.dumps({"bench": "registry", "build_s": round(build_s, 4), "change_ms": round(change_ms, 3), "rss_mb": round(rss_mb, 1),
                      "big_edit_apply_ms": round(big["apply_s"] * 1000, 1), "big_edit_read_s": round(big["read_s"], 3)}))


if __name__ == "__main__":
    main()
