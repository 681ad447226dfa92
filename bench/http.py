"""HTTP benchmark: lookups per second on `GET /v1/services/{name}`, against a bare aiohttp handler.

It also measures the Consul-compatible `GET /v1/health/service/{name}` on the same
server against our own lookup: after each round's lookup measurement, short slices
of the two alternate in ABBA order (Consul, ours, ours, Consul, ...), each pair of
neighbouring slices gives a ratio, and the median of those ratios is reported (target:
at least 90%), so that drift on a shared host hits both sides of each ratio alike.
Both are one memo lookup per request; the Consul body is Consul's shape, about 2.5
times ours for the same three instances, and that size is most of the difference.

It also measures the two conditional ways of asking the same lookup, on the same
server after each round's lookup measurement: with `Accept-Encoding: gzip` (the
memoised gzip body) and with `If-None-Match: <its ETag>` (a 304 without a body),
each reported beside the plain lookup of the same round.

Both servers run in their own process pinned to one core (taskset), one after the
other, with uvloop as the daemon uses it and access logging off; wrk runs pinned to
another core. The bare server answers the same route template with a fixed JSON body
of exactly the size of ours, so the ratio is what our routing, middlewares, blocking
query check, memo lookup and index header cost over aiohttp itself. The two servers
are measured alternately, several rounds each, and the best round of each counts:
other work on a shared host only ever lowers a figure, so the best round is the one
least disturbed. It also prints the server's CPU time per request (user + system
from /proc/<pid>/stat, median of the rounds), which shared cores disturb less. Prints
every round, both figures and the ratio; the last line is one JSON object for tooling.

With `--against DIR` it measures nothing of the above: it serves the plain lookup
from this checkout and from another one (DIR, e.g. `git worktree add /tmp/main main`)
side by side on the same core, and alternates 2-second wrk slices between them in
ABBA order; the medians of the neighbouring-slice ratios (requests/s and CPU per
request) say whether a change slowed the hot path, on a host too busy for the
absolute figures to mean much.

    python3 bench/http.py [--duration 8] [--connections 50] [--rounds 3]
    python3 bench/http.py --against /tmp/main [--pairs 20]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named http.py, so its own directory (first on sys.path when run as a
# script) would shadow the standard library's `http` package: take it off first.
HERE = Path(__file__).resolve().parent
from benchkit import stop_process  # noqa: E402  (the one import from this directory, before it goes)

sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass

from registry.catalog import Catalog
from registry.model import NodeIdentity
from registry.schema import load_text
from registry.store import Store

SERVICE = "web"
PATH = f"/v1/services/{SERVICE}"
CONSUL_PATH = f"/v1/health/service/{SERVICE}"
# Per round: this many (Consul, ours) + (ours, Consul) slice pairs of this many seconds.
SLICE_PAIRS = 2
SLICE_SECONDS = 2
DEFAULTS = NodeIdentity("bench-node", "10.0.0.1")
# Three instances with tags and meta: the shape of a typical lookup answer.
SERVICES_YAML = "services:\n" + "".join(
    f"  - {{name: {SERVICE}, id: web-{i}, port: {8000 + i}, protocol: http, tags: [blue, v{i}], "
    f"meta: {{team: edge, shard: '{i}'}}}}\n"
    for i in range(3)
)


async def serve_ours(state_dir: str) -> None:
    from resolver.config import Config
    from resolver.http.app import build_app
    from resolver.state import DaemonState

    store = Store(Path(state_dir) / "bench.db")
    catalog = Catalog(store, DEFAULTS)
    catalog.apply_file("/bench/web.yaml", load_text(SERVICES_YAML, "/bench/web.yaml", DEFAULTS))
    state = DaemonState(Config(node=DEFAULTS.node, address=DEFAULTS.address), catalog, store, DEFAULTS)
    await run_forever(build_app(state), guarded=True)


async def serve_bare(body_file: str) -> None:
    from aiohttp import web

    body = Path(body_file).read_bytes()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/services/{name}", handler)
    await run_forever(app)


async def run_forever(app: "object", guarded: bool = False) -> None:
    """Serve until SIGTERM: ours as the daemon serves it (the connection guard
    included), the bare app on aiohttp's plain AppRunner and TCPSite."""
    from aiohttp import web

    from resolver.http.server import HttpServer

    assert isinstance(app, web.Application)
    if guarded:
        server = HttpServer(app)
        await server.start("127.0.0.1", 0)
        port, stop_serving = server.addresses[0][1], server.stop
    else:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port, stop_serving = runner.addresses[0][1], runner.cleanup
    print(port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await stop_serving()


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
        wrk = shutil.which("wrk")
    assert wrk is not None, "wrk is not installed and apt-get could not install it"
    return wrk


def start_server(kind: str, arg: str, core: int, script: str = __file__) -> tuple[subprocess.Popen[str], int]:
    """A server in its own process pinned to `core`; `script` is this file of another checkout for --against."""
    command = ["taskset", "-c", str(core), sys.executable, script, "--serve", kind, arg]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=Path(script).parent)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(10)
        raise SystemExit(f"{kind} server failed to start")
    return process, int(line)


@dataclass(frozen=True)
class Round:
    rps: float
    cpu_per_request: float  # seconds of the server's user + system time per request


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(wrk: str, pid: int, port: int, core: int, duration: int, connections: int, path: str = PATH,
            warm_up: bool = True, headers: tuple[str, ...] = ()) -> Round:
    url = f"http://127.0.0.1:{port}{path}"
    base = ["taskset", "-c", str(core), wrk, "-t1", f"-c{connections}"]
    for header in headers:
        base += ["-H", header]
    if warm_up:
        subprocess.run(base + ["-d2s", url], check=True, capture_output=True)
    before = cpu_seconds(pid)
    out = subprocess.run(base + [f"-d{duration}s", url], check=True, capture_output=True, text=True).stdout
    used = cpu_seconds(pid) - before
    if re.search(r"Non-2xx", out):
        raise SystemExit(f"wrk saw errors:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert rps and total, out
    return Round(float(rps.group(1)), used / int(total.group(1)))


def fetch(port: int, path: str = PATH) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        assert response.status == 200
        return response.read()  # type: ignore[no-any-return]


def conditional_headers(port: int) -> dict[str, tuple[str, ...]]:
    """The headers of the gzip and the 304 requests, checked to get what they are named for."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{PATH}", timeout=5) as response:
        etag = response.headers["ETag"]
    gzipped = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(gzipped, timeout=5) as response:
        assert response.headers["Content-Encoding"] == "gzip", "the lookup's body is too small to be gzipped"
    unchanged = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", headers={"If-None-Match": etag})
    try:
        urllib.request.urlopen(unchanged, timeout=5).close()
        raise SystemExit("If-None-Match with the current ETag was not answered 304")
    except urllib.error.HTTPError as exc:
        with exc:
            assert exc.code == 304
    return {"gzip": ("Accept-Encoding: gzip",), "304": (f"If-None-Match: {etag}",)}


def gzip_size(port: int) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return len(response.read())


def measure(duration: int, connections: int, rounds: int) -> None:
    wrk = ensure_wrk()
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = cores[0], cores[-1]
    ours: list[Round] = []
    lookups: list[Round] = []
    consul: list[Round] = []
    consul_ratios: list[float] = []
    conditional: dict[str, list[Round]] = {"gzip": [], "304": []}
    bare: list[Round] = []
    with tempfile.TemporaryDirectory() as tmp:
        body_file = str(Path(tmp) / "body.json")
        for _ in range(rounds):
            # Alternate the two servers so that drift on the host hits both alike.
            process, port = start_server("ours", tmp, server_core)
            try:
                body = fetch(port)
                Path(body_file).write_bytes(body)
                ours.append(run_wrk(wrk, process.pid, port, client_core, duration, connections))
                consul_body = fetch(port, CONSUL_PATH)
                run_wrk(wrk, process.pid, port, client_core, 1, connections, CONSUL_PATH)  # warm the Consul body
                for order in (("consul", "ours"), ("ours", "consul")) * SLICE_PAIRS:
                    got = {
                        side: run_wrk(wrk, process.pid, port, client_core, SLICE_SECONDS, connections,
                                      CONSUL_PATH if side == "consul" else PATH, warm_up=False)
                        for side in order
                    }
                    consul.append(got["consul"])
                    lookups.append(got["ours"])
                    consul_ratios.append(got["consul"].rps / got["ours"].rps)
                for kind, headers in conditional_headers(port).items():
                    conditional[kind].append(run_wrk(wrk, process.pid, port, client_core, duration, connections,
                                                     headers=headers))
                packed = gzip_size(port)
            finally:
                stop_process(process)
            process, port = start_server("bare", body_file, server_core)
            try:
                assert len(fetch(port)) == len(body)
                bare.append(run_wrk(wrk, process.pid, port, client_core, duration, connections))
            finally:
                stop_process(process)
    rps, bare_rps = max(r.rps for r in ours), max(r.rps for r in bare)
    ratio = rps / bare_rps
    cpu, bare_cpu = statistics.median(r.cpu_per_request for r in ours), statistics.median(r.cpu_per_request for r in bare)
    print(f"body: {len(body)} bytes; servers on core {server_core}, wrk on core {client_core}")
    print(f"pilotfish GET {PATH}: {rps:,.0f} req/s (best of {', '.join(f'{r.rps:,.0f}' for r in ours)})")
    print(f"bare aiohttp handler:      {bare_rps:,.0f} req/s (best of {', '.join(f'{r.rps:,.0f}' for r in bare)})")
    # CPU time per request moves less than throughput when other work shares the core.
    print(f"server CPU per request (median): pilotfish {cpu * 1e6:.1f} us, bare {bare_cpu * 1e6:.1f} us, "
          f"ratio {bare_cpu / cpu:.1%}")
    print(f"ratio: {ratio:.1%} (target: at least 70%)")
    consul_rps = max(r.rps for r in consul)
    lookup_rps = max(r.rps for r in lookups)
    consul_cpu = statistics.median(r.cpu_per_request for r in consul)
    lookup_cpu = statistics.median(r.cpu_per_request for r in lookups)
    consul_ratio = statistics.median(consul_ratios)
    print(f"pilotfish GET {CONSUL_PATH} (Consul, {len(consul_body)} bytes): {consul_rps:,.0f} req/s "
          f"(best of {', '.join(f'{r.rps:,.0f}' for r in consul)}); our lookup in the same rounds: best {lookup_rps:,.0f}")
    print(f"server CPU per request (median): Consul {consul_cpu * 1e6:.1f} us, our lookup {lookup_cpu * 1e6:.1f} us")
    print(f"Consul lookup / our lookup: {consul_ratio:.1%} (median of {len(consul_ratios)} neighbouring-slice "
          f"ratios, {min(consul_ratios):.1%} to {max(consul_ratios):.1%}; best of each: {consul_rps / lookup_rps:.1%}; "
          f"CPU per request: {lookup_cpu / consul_cpu:.1%}; target: at least 90%)")
    figures = {}
    for kind, label in (("gzip", f"Accept-Encoding: gzip ({packed} bytes)"), ("304", "If-None-Match (304, no body)")):
        best = max(r.rps for r in conditional[kind])
        kind_cpu = statistics.median(r.cpu_per_request for r in conditional[kind])
        figures[kind] = best
        print(f"pilotfish GET {PATH} with {label}: {best:,.0f} req/s (best of "
              f"{', '.join(f'{r.rps:,.0f}' for r in conditional[kind])}; plain lookup: best {rps:,.0f}), "
              f"server CPU per request {kind_cpu * 1e6:.1f} us (plain: {cpu * 1e6:.1f} us)")
    print(json.dumps({"bench": "http", "rps": round(rps), "bare_rps": round(bare_rps), "ratio": round(ratio, 3),
                      "consul_rps": round(consul_rps), "consul_ratio": round(consul_ratio, 3),
                      "gzip_rps": round(figures["gzip"]), "not_modified_rps": round(figures["304"])}))


def compare(against: Path, connections: int, pairs: int) -> None:
    """The plain lookup of this checkout against another's, in alternating slices on one core."""
    wrk = ensure_wrk()
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = cores[0], cores[-1]
    checkouts = {"this": Path(__file__), "other": against.resolve() / "bench" / "http.py"}
    rounds: dict[str, list[Round]] = {name: [] for name in checkouts}
    rps_ratios: list[float] = []
    cpu_ratios: list[float] = []
    with tempfile.TemporaryDirectory() as this_tmp, tempfile.TemporaryDirectory() as other_tmp:
        servers = {}
        try:
            for (name, script), tmp in zip(checkouts.items(), (this_tmp, other_tmp)):
                servers[name] = start_server("ours", tmp, server_core, str(script))
            for process, port in servers.values():
                assert len(fetch(port)) > 0
                run_wrk(wrk, process.pid, port, client_core, 1, connections)  # warm up
            for order in (("other", "this"), ("this", "other")) * pairs:
                got = {name: run_wrk(wrk, servers[name][0].pid, servers[name][1], client_core, SLICE_SECONDS,
                                     connections, warm_up=False) for name in order}
                for name, measured in got.items():
                    rounds[name].append(measured)
                rps_ratios.append(got["this"].rps / got["other"].rps)
                cpu_ratios.append(got["other"].cpu_per_request / got["this"].cpu_per_request)
        finally:
            for process, _ in servers.values():
                stop_process(process)
    for name, label in (("this", f"this checkout ({Path(__file__).resolve().parent.parent})"), ("other", f"{against}")):
        print(f"{label}: best {max(r.rps for r in rounds[name]):,.0f} req/s, server CPU per request (median) "
              f"{statistics.median(r.cpu_per_request for r in rounds[name]) * 1e6:.1f} us")
    print(f"this / other, requests/s: median {statistics.median(rps_ratios):.1%} of {len(rps_ratios)} neighbouring "
          f"slices ({min(rps_ratios):.1%} to {max(rps_ratios):.1%})")
    print(f"other / this, CPU per request: median {statistics.median(cpu_ratios):.1%} "
          f"({min(cpu_ratios):.1%} to {max(cpu_ratios):.1%}); above 100% means this checkout costs less")
    print(json.dumps({"bench": "http-against", "rps_ratio": round(statistics.median(rps_ratios), 3),
                      "cpu_ratio": round(statistics.median(cpu_ratios), 3)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds of wrk per measurement")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="measurements per server; the best is reported")
    parser.add_argument("--against", type=Path, metavar="DIR", help="another checkout: compare plain lookups")
    parser.add_argument("--pairs", type=int, default=20, help="with --against: ABBA slice pairs")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "ARG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, arg = args.serve
        import uvloop

        serve = serve_ours(arg) if kind == "ours" else serve_bare(arg)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve)
        return
    if args.against:
        compare(args.against, args.connections, args.pairs)
        return
    measure(args.duration, args.connections, args.rounds)


if __name__ == "__main__":
    main()
