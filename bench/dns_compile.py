"""What a compiled-answer miss costs: the first query for a large SRV name after a catalog change.

    python3 bench/dns_compile.py [--instances 60] [--rounds 300]

A `Responder` over a real catalog holds one service of `--instances` instances, each
on its own address (so every SRV record brings a glue record). Each round changes
that service (one instance's weight), which starts a new snapshot whose caches hold
nothing for it, then times the first query for `_big._tcp.service.internal` SRV:
resolving the name in the snapshot, packing the reply with every rotation of its
answer, and caching it. This is the work a client forces by asking something the
caches do not hold; issue 9 measured 30 ms of it with dnslib packing, and the target
is under 1 ms for 60 instances. The query is asked over TCP (the full answer, 60 SRV
and 60 glue records) and over UDP with a 1232-byte EDNS buffer and with none (where
the answer does not fit and the reply is compiled with TC set).

Then what a swap costs a busy server whose questions it did not touch (a fleet's
catalog swaps tens of times a second): a snapshot of `--names` services of 3
instances on as many nodes, every name asked over UDP in four forms (A, SRV with EDNS,
an NXDOMAIN, a node's A), then `--swaps` times one instance of another service
changes and each question is asked once more: the mean cost of that first query.

The last line printed is one JSON object for machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The script's own folder holds bench/registry.py, which would shadow the registry package.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import dns.message  # noqa: E402

from registry.catalog import Catalog  # noqa: E402
from registry.model import Entry, Instance, Node, NodeIdentity, Source, Status  # noqa: E402
from registry.snapshot import Change, Snapshot, SnapshotHolder  # noqa: E402
from registry.store import Store  # noqa: E402
from resolver.dns.responder import Responder  # noqa: E402
from resolver.dns.stats import DnsStats  # noqa: E402

NAME = "_big._tcp.service.internal"


def instances(count: int, round_number: int) -> list[Instance]:
    return [
        Instance(f"big-{i}", "big", "n1", f"10.1.{i // 250}.{i % 250 + 1}", 9000 + i,
                 weight=1 + (round_number if i == 0 else 0) % 50, source=Source.file("big.yaml"))
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--names", type=int, default=1000, help="services asked after swaps that leave them alone")
    parser.add_argument("--swaps", type=int, default=20)
    args = parser.parse_args()
    queries = {
        "tcp": (dns.message.make_query(NAME, "SRV", id=1).to_wire(), True),
        "udp_1232": (dns.message.make_query(NAME, "SRV", id=1, use_edns=0, payload=1232).to_wire(), False),
        "udp_512": (dns.message.make_query(NAME, "SRV", id=1).to_wire(), False),
    }
    timings: dict[str, list[float]] = {kind: [] for kind in queries}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as state:
        catalog = Catalog(Store(Path(state) / "p.db"), NodeIdentity("n1", "10.0.0.1"))
        responder = Responder(lambda: catalog.current, 5, False, DnsStats())
        for round_number in range(args.rounds):
            catalog.apply_file("big.yaml", instances(args.instances, round_number))
            for kind, (query, tcp) in queries.items():
                started = time.perf_counter()
                reply = responder.answer(query, tcp=tcp)
                timings[kind].append(time.perf_counter() - started)
                assert isinstance(reply, bytes)
                sizes[kind] = len(reply)
        catalog.store.close()
    check = dns.message.from_wire(responder.answer(queries["tcp"][0], tcp=True) or b"")
    assert len(check.answer[0]) == args.instances and len(check.additional) == args.instances

    def ms(values: list[float], quantile: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000, 3)

    result: dict[str, object] = {"bench": "dns_compile", "instances": args.instances, "rounds": args.rounds}
    for kind, values in timings.items():
        # The first round also pays for imports and first-use caches: left out.
        steady = values[1:]
        print(f"{kind:9} miss p50 {ms(steady, 0.5):7.3f} ms  p99 {ms(steady, 0.99):7.3f} ms  "
              f"mean {statistics.fmean(steady) * 1000:7.3f} ms  reply {sizes[kind]} bytes")
        result[kind] = {"p50_ms": ms(steady, 0.5), "p99_ms": ms(steady, 0.99),
                        "mean_ms": round(statistics.fmean(steady) * 1000, 3), "reply_bytes": sizes[kind]}
    for kind, micros in after_swaps(args.names, args.swaps).items():
        print(f"{kind:9} first query after a swap that left it alone: mean {micros:5.1f} µs")
        result[f"after_swap_{kind}_us"] = round(micros, 2)
    print(json.dumps(result))


def after_swaps(names: int, swaps: int) -> dict[str, float]:
    """Mean µs of the first UDP query of each form after each of `swaps` swaps elsewhere."""
    nodes = {f"n{n}": Node(f"n{n}", f"10.{n // 250}.{n % 250}.1") for n in range(names)}

    def entry(i: int, port: int = 8000) -> Entry:
        node = nodes[f"n{(i * 7) % names}"]
        return Entry(Instance(f"i{i}", f"svc{i // 3}", node.name, node.address, port), Status.PASSING)

    delta = {e.instance.key: e for e in map(entry, range(3 * names + 3))}
    holder = SnapshotHolder(Snapshot.first("internal", "n0", frozenset({Status.PASSING}), Change(delta, nodes, (), {})))
    responder = Responder(lambda: holder.current, 5, False, DnsStats())
    forms = {
        "A": [dns.message.make_query(f"svc{s}.service.internal", "A", id=1) for s in range(names)],
        "SRV": [dns.message.make_query(f"_svc{s}._tcp.service.internal", "SRV", id=1, use_edns=0, payload=1232)
                for s in range(names)],
        "NXDOMAIN": [dns.message.make_query(f"nosuch{s}.service.internal", "A", id=1) for s in range(names)],
        "node": [dns.message.make_query(f"n{s}.node.internal", "A", id=1) for s in range(names)],
    }
    result = {}
    for kind, messages in forms.items():
        queries = [message.to_wire() for message in messages]
        for query in queries:
            responder.answer(query, tcp=False)
        spent = 0.0
        for swap in range(swaps):
            changed = entry(3 * names + 2, 9000 + swap % 1000)  # the service past the asked ones
            holder.swap(holder.current.successor(Change({changed.instance.key: changed}, nodes, (), {})))
            started = time.perf_counter()
            for query in queries:
                responder.answer(query, tcp=False)
            spent += time.perf_counter() - started
        result[kind] = spent / (swaps * len(queries)) * 1e6
    return result


if __name__ == "__main__":
    main()
