"""Snapshot benchmark: what a change costs at fleet scale, in the writer and in what runs per snapshot.

    python3 bench/snapshot.py [--sizes 10000 30000 100000] [--changes 200] [--batch 500]
                              [--churn-size 100000] [--rate 500] [--batches 20] [--seconds 30]
                              [--fleet-size 100000] [--fleet-swaps 400] [--fleet-changes 25]

The catalog holds N instances on 1,000 nodes, 100 per service (1,000 services at
100,000), one registration each, so that a change is one instance's (a new port);
node0 is this node. The health runner follows the catalog, as in the daemon.

Part 1, each size in a fresh process: the build, one change published (catalog call
to swapped snapshot, listeners included; wall and CPU, since the catalog's journal
commits to SQLite with an fsync), the snapshot build alone, a batch of `--batch`
changes, the process RSS, and the DNS answer after a change (from the catalog call to
the responder's reply that shows it, over TCP so that 100 records fit).

Part 2, churn at `--churn-size`: a child process pinned to CPU 0 holds the catalog
and serves DNS on 127.0.0.1 (the real DnsServer, uvloop). Changes arrive at `--rate`
per second, evenly spread, and are applied `--batches` times a second, each batch one
snapshot. Ten of them a second move a probe service's port; this process (CPU 1)
knows the schedule, polls that name over UDP from the moment the change arrives and
records when the answer shows it: change -> DNS answer, batching wait included. The
child's CPU time over the churn gives its share of a core; its RSS is read at the end.

Part 3, `--fleet-size` (0: none): a catalog takes a fleet's view of that many other
nodes' instances as fleet mode hands it over (`Catalog.apply_remote`, one batch), then
`--fleet-swaps` watch responses of `--fleet-changes` changes each, one snapshot each:
what a fleet swap costs the catalog (wall and CPU), as 500 changes a second in 20
snapshots a second would.

Targets (issue 12, fleet scale): CPU < 30% of a core at 500 changes/s on 100,000
instances, change -> DNS answer p99 < 250 ms, RSS < 300 MB. The last line printed is
one JSON object for machines.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

# bench/dns.py and bench/registry.py would shadow dnspython's `dns` and our `registry`.
HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path[0] = str(HERE.parent)

import dns.exception  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rdatatype  # noqa: E402
import psutil  # noqa: E402

from registry.catalog import Catalog  # noqa: E402
from registry.health.runner import HealthRunner  # noqa: E402
from registry.model import CLUSTER, Entry, Instance, Node, NodeIdentity, Source, Status  # noqa: E402
from registry.remote import RemoteBatch  # noqa: E402
from registry.snapshot import Change  # noqa: E402
from registry.store import Store  # noqa: E402

NODES = 1000
PER_SERVICE = 100
MOVED = 30000  # a changed instance's port is its first one plus this, and back
PROBES = 10  # probe services, one instance each, on this node
PROBE_PORT = 20000
PROBES_PER_SECOND = 10
DOMAIN = "internal"
IDENTITY = NodeIdentity("node0", "10.1.0.0")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def node_address(node: int) -> str:
    return f"10.1.{node >> 8}.{node & 255}"


def fleet_instance(i: int, services: int, moved: bool = False) -> Instance:
    """Instance `i`: node i % 1000, service i // 100; ports are unique on each node."""
    node = i % NODES
    return Instance(
        id=f"i{i}", name=f"svc{i // PER_SERVICE % services}", node=f"node{node}", address=node_address(node),
        port=8000 + i // NODES + (MOVED if moved else 0), tags=(f"zone{node % 8}",), address_is_node=True,
        source=Source.file(f"fleet/{i}.yaml"),
    )


def probe_instance(probe: int, port: int) -> Instance:
    return Instance(id=f"probe{probe}", name=f"probe{probe}", node=IDENTITY.node, address=IDENTITY.address,
                    port=port, address_is_node=True, source=Source.file(f"probe/{probe}.yaml"))


def build(store: Store, size: int) -> tuple[Catalog, list[Instance]]:
    catalog = Catalog(store, IDENTITY, DOMAIN)
    services = max(1, size // PER_SERVICE)
    instances = [fleet_instance(i, services) for i in range(size)]
    with catalog.batch():
        for instance in instances:
            catalog.apply_file(instance.source.path, [instance])
        for probe in range(PROBES):
            catalog.apply_file(f"probe/{probe}.yaml", [probe_instance(probe, PROBE_PORT + probe)])
    return catalog, instances


def toggle(catalog: Catalog, instances: list[Instance], i: int) -> Instance:
    """Move instance `i` to its other port; returns the new instance."""
    before = instances[i]
    moved = dataclasses.replace(before, port=before.port - MOVED if before.port >= MOVED else before.port + MOVED)
    instances[i] = moved
    catalog.apply_file(moved.source.path, [moved])
    return moved


def spread(size: int, count: int) -> Iterator[int]:
    """`count` instance numbers spread over the catalog (a prime stride)."""
    for n in range(count):
        yield (n * 7919 + 13) % size


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


# -- part 1: one size, in this process --------------------------------------------------


def srv_query(name: str) -> bytes:
    return dns.message.make_query(f"_{name}._tcp.service.{DOMAIN}", "SRV").to_wire()


def srv_ports(reply: bytes) -> set[int]:
    message = dns.message.from_wire(reply)
    return {rr.port for rrset in message.answer if rrset.rdtype == dns.rdatatype.SRV for rr in rrset}


async def measure_size(size: int, changes: int, batch: int) -> dict[str, Any]:
    from resolver.dns.responder import Responder
    from resolver.dns.stats import DnsStats

    with tempfile.TemporaryDirectory(prefix="pilotfish-bench-") as tmp:
        store = Store(Path(tmp) / "pilotfish.db")
        started = time.perf_counter()
        catalog, instances = build(store, size)
        build_s = time.perf_counter() - started
        runner = HealthRunner(catalog)
        await runner.start()
        responder = Responder(lambda: catalog.current, 5, False, DnsStats())
        services = max(1, size // PER_SERVICE)
        for service in range(services):  # every answer compiled once, as a busy server has them
            responder.answer(srv_query(f"svc{service}"), tcp=True)

        publish_wall, publish_cpu, answered = [], [], []
        for i in spread(size, changes):
            wall, cpu = time.perf_counter(), time.process_time()
            moved = toggle(catalog, instances, i)
            publish_wall.append((time.perf_counter() - wall) * 1000)
            publish_cpu.append((time.process_time() - cpu) * 1000)
            reply = responder.answer(srv_query(moved.name), tcp=True)
            answered.append((time.perf_counter() - wall) * 1000)
            assert isinstance(reply, bytes) and moved.port in srv_ports(reply), "the answer misses the change"

        # The snapshot build alone: what a batch from elsewhere (the cluster) pays on top of its own books.
        successor_ms = []
        for i in spread(size, changes):
            entry = catalog.current.entries_by_key[instances[i].key]
            one = Change({entry.instance.key: dataclasses.replace(entry)}, catalog.current.nodes,
                         catalog.current.rules, catalog.current.file_errors)
            started = time.perf_counter()
            catalog.current.successor(one)
            successor_ms.append((time.perf_counter() - started) * 1000)

        wall, cpu = time.perf_counter(), time.process_time()
        with catalog.batch():
            for i in spread(size, batch):
                toggle(catalog, instances, (i * 31 + 7) % size)
        batch_wall = (time.perf_counter() - wall) * 1000
        batch_cpu = (time.process_time() - cpu) * 1000
        rss_mb = psutil.Process().memory_info().rss / 2**20
        await runner.stop()
        store.close()
    return {
        "size": size,
        "build_s": round(build_s, 2),
        "publish_ms_p50": round(percentile(publish_wall, 0.5), 3),
        "publish_ms_p99": round(percentile(publish_wall, 0.99), 3),
        "publish_cpu_ms_p50": round(percentile(publish_cpu, 0.5), 3),
        "successor_ms_p50": round(percentile(successor_ms, 0.5), 3),
        "batch": batch,
        "batch_ms": round(batch_wall, 1),
        "batch_cpu_ms": round(batch_cpu, 1),
        "dns_after_change_ms_p50": round(percentile(answered, 0.5), 3),
        "dns_after_change_ms_p99": round(percentile(answered, 0.99), 3),
        "rss_mb": round(rss_mb, 1),
    }


# -- part 2: churn, in a child process serving DNS --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Which change arrives when: change j at start + j / rate; every `step`-th moves a probe."""

    start: float
    rate: int
    seconds: float

    @property
    def total(self) -> int:
        return int(self.rate * self.seconds)

    @property
    def step(self) -> int:
        return max(1, self.rate // PROBES_PER_SECOND)

    def arrival(self, change: int) -> float:
        return self.start + change / self.rate

    def probes(self) -> range:
        return range(self.total // self.step)

    def probe_change(self, number: int) -> int:
        """The change that moves probe `number`: one of each `step`, placed anywhere in it
        (a stride prime to `step`), so that probes arrive at any point of a batch's wait."""
        return number * self.step + (number * 37) % self.step

    def probe(self, change: int) -> tuple[int, int] | None:
        """(probe service, its new port) when change `change` moves a probe."""
        number = change // self.step
        if change != self.probe_change(number):
            return None
        return number % PROBES, PROBE_PORT + PROBES + number


async def churn_child(size: int, rate: int, batches: int, seconds: float) -> None:
    from registry.endpoints import Endpoint
    from resolver.dns.server import DnsServer

    with tempfile.TemporaryDirectory(prefix="pilotfish-bench-") as tmp:
        store = Store(Path(tmp) / "pilotfish.db")
        catalog, instances = build(store, size)
        runner = HealthRunner(catalog)
        await runner.start()
        server = DnsServer(lambda: catalog.current, [Endpoint("127.0.0.1", 0)], ttl=0)
        await server.start()
        schedule = Schedule(time.monotonic() + 1.0, rate, seconds)
        print(json.dumps({"port": server.bound_udp[0].port, "start": schedule.start,
                          "rss_mb": psutil.Process().memory_info().rss / 2**20}), flush=True)
        loop = asyncio.get_running_loop()
        tick = 1 / batches
        due, change = schedule.start + tick, 0
        while change < schedule.total:
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = time.monotonic()
            with catalog.batch():
                while change < schedule.total and schedule.arrival(change) <= now:
                    probe = schedule.probe(change)
                    if probe is None:
                        toggle(catalog, instances, (change * 7919 + 13) % size)
                    else:
                        catalog.apply_file(f"probe/{probe[0]}.yaml", [probe_instance(*probe)])
                    change += 1
            due += tick
        print(json.dumps({"done": True, "rss_mb": psutil.Process().memory_info().rss / 2**20}), flush=True)
        sys.stdin.readline()  # hold the catalog until the parent has read its figures
        await server.stop()
        await runner.stop()
        store.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def probe_ports(port: int, probe: int) -> set[int]:
    """The probe's ports as DNS answers them now; none when the reply is late (asked again)."""
    query = dns.message.make_query(f"_probe{probe}._tcp.service.{DOMAIN}", "SRV")
    try:
        reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except dns.exception.Timeout:
        return set()
    return {rr.port for rrset in reply.answer if rrset.rdtype == dns.rdatatype.SRV for rr in rrset}


def measure_churn(size: int, rate: int, batches: int, seconds: float) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--churn-child", str(size), "--rate", str(rate),
               "--batches", str(batches), "--seconds", str(seconds)]
    child = subprocess.Popen(["taskset", "-c", "0", *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    os.sched_setaffinity(0, {1})
    assert child.stdout is not None and child.stdin is not None
    try:
        ready = json.loads(child.stdout.readline())
        schedule = Schedule(ready["start"], rate, seconds)
        time.sleep(max(0.0, schedule.start - time.monotonic()))
        cpu_before, wall_before = cpu_seconds(child.pid), time.monotonic()
        latencies, missed = [], 0
        for number in schedule.probes():
            change = schedule.probe_change(number)
            probe = schedule.probe(change)
            assert probe is not None
            arrival = schedule.arrival(change)
            time.sleep(max(0.0, arrival - time.monotonic()))
            deadline = arrival + 2.0
            while probe[1] not in probe_ports(ready["port"], probe[0]):
                if time.monotonic() > deadline:
                    missed += 1
                    break
                time.sleep(0.0005)
            else:
                latencies.append((time.monotonic() - arrival) * 1000)
        done = json.loads(child.stdout.readline())
        cpu_after, wall_after = cpu_seconds(child.pid), time.monotonic()
        child.stdin.write("\n")
        child.stdin.flush()
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return {
        "size": size,
        "rate": rate,
        "batches_per_s": batches,
        "seconds": seconds,
        "cpu_percent": round(100 * (cpu_after - cpu_before) / (wall_after - wall_before), 1),
        "change_to_dns_ms_p50": round(percentile(latencies, 0.5), 1) if latencies else None,
        "change_to_dns_ms_p99": round(percentile(latencies, 0.99), 1) if latencies else None,
        "change_to_dns_ms_max": round(max(latencies), 1) if latencies else None,
        "probes": len(latencies),
        "missed": missed,
        "rss_mb_loaded": round(ready["rss_mb"], 1),
        "rss_mb_after": round(done["rss_mb"], 1),
    }


# -- part 3: fleet swaps ------------------------------------------------------------------


def measure_fleet(size: int, swaps: int, changes: int) -> dict[str, Any]:
    """The catalog's cost of a fleet swap: `changes` other nodes' instances in one batch, at `size`."""
    peers = {f"peer{n}": Node(f"peer{n}", node_address(n)) for n in range(NODES)}

    def entry(i: int, port: int = 8000) -> Entry:
        node = peers[f"peer{i % NODES}"]
        instance = Instance(id=f"i{i}", name=f"svc{i // PER_SERVICE}", node=node.name, address=node.address,
                            port=port, address_is_node=True, source=CLUSTER)
        return Entry(instance, Status.PASSING)

    wall, cpu = [], []
    with tempfile.TemporaryDirectory() as state:
        catalog = Catalog(Store(Path(state) / "p.db"), IDENTITY, DOMAIN)
        started = time.perf_counter()
        catalog.apply_remote(RemoteBatch(instances={e.instance.key: e for e in map(entry, range(size))},
                                         nodes=peers, replace=True))
        first = time.perf_counter() - started
        for swap in range(swaps):
            moved = (entry((swap * changes + n) * 7919 % size, 9000 + swap % 1000) for n in range(changes))
            batch = {e.instance.key: e for e in moved}
            wall_at, cpu_at = time.perf_counter(), time.process_time()
            catalog.apply_remote(RemoteBatch(instances=batch))
            wall.append(time.perf_counter() - wall_at)
            cpu.append(time.process_time() - cpu_at)
        catalog.store.close()
    return {"size": size, "changes": changes, "swaps": swaps, "first_batch_s": round(first, 3),
            "swap_ms_p50": round(percentile(wall, 0.5) * 1000, 3), "swap_ms_p99": round(percentile(wall, 0.99) * 1000, 3),
            "swap_cpu_ms_mean": round(statistics.fmean(cpu) * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    parser.add_argument("--changes", type=int, default=200, help="one-change publishes measured per size")
    parser.add_argument("--batch", type=int, default=500, help="changes in the one batch measured per size")
    parser.add_argument("--churn-size", type=int, default=100_000, help="0: no churn part")
    parser.add_argument("--rate", type=int, default=500, help="changes per second during the churn")
    parser.add_argument("--batches", type=int, default=20, help="batches (snapshots) per second during the churn")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the churn")
    parser.add_argument("--fleet-size", type=int, default=100_000, help="0: no fleet part")
    parser.add_argument("--fleet-swaps", type=int, default=400)
    parser.add_argument("--fleet-changes", type=int, default=25, help="changes in each fleet swap")
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--churn-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_size:
        print(json.dumps(asyncio.run(measure_size(args.one_size, args.changes, args.batch))))
        return
    if args.churn_child:
        try:
            import uvloop
        except ImportError:
            asyncio.run(churn_child(args.churn_child, args.rate, args.batches, args.seconds))
        else:
            uvloop.run(churn_child(args.churn_child, args.rate, args.batches, args.seconds))
        return

    sizes = []
    for size in args.sizes:
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one-size", str(size),
                              "--changes", str(args.changes), "--batch", str(args.batch)],
                             check=True, capture_output=True, text=True).stdout
        result = json.loads(out.splitlines()[-1])
        sizes.append(result)
        print(f"{size:>7} instances: build {result['build_s']:.1f} s; one change: publish p50 "
              f"{result['publish_ms_p50']:.2f} ms (CPU {result['publish_cpu_ms_p50']:.2f} ms), p99 "
              f"{result['publish_ms_p99']:.2f} ms; snapshot build alone {result['successor_ms_p50']:.3f} ms; "
              f"{result['batch']}-change batch {result['batch_ms']:.0f} ms (CPU {result['batch_cpu_ms']:.0f} ms); "
              f"DNS answer after a change p50 {result['dns_after_change_ms_p50']:.2f} ms, p99 "
              f"{result['dns_after_change_ms_p99']:.2f} ms; RSS {result['rss_mb']:.0f} MB", flush=True)
    churn = None
    if args.churn_size:
        churn = measure_churn(args.churn_size, args.rate, args.batches, args.seconds)
        print(f"churn on {churn['size']} instances, {churn['rate']} changes/s in {churn['batches_per_s']} batches/s "
              f"for {churn['seconds']:g} s: CPU {churn['cpu_percent']}% of a core (target < 30%); change -> DNS "
              f"answer p50 {churn['change_to_dns_ms_p50']} ms, p99 {churn['change_to_dns_ms_p99']} ms (target < 250 ms), "
              f"max {churn['change_to_dns_ms_max']} ms, "
              f"{churn['missed']} missed; RSS {churn['rss_mb_after']:.0f} MB (target < 300 MB)", flush=True)
    fleet = None
    if args.fleet_size:
        fleet = measure_fleet(args.fleet_size, args.fleet_swaps, args.fleet_changes)
        print(f"fleet view of {fleet['size']} instances: first batch {fleet['first_batch_s']} s; a swap of "
              f"{fleet['changes']} changes: p50 {fleet['swap_ms_p50']} ms, p99 {fleet['swap_ms_p99']} ms, "
              f"CPU mean {fleet['swap_cpu_ms_mean']} ms", flush=True)
    print(json.dumps({"bench": "snapshot", "sizes": sizes, "churn": churn, "fleet": fleet}))


if __name__ == "__main__":
    main()
