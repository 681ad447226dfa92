"""The benchmark zone, written once per server flavour so that every server serves the same records.

1,000 services with 3 instances each, every instance on its own address, so that an
SRV answer carries 3 records plus 3 `<hex>.addr.internal.` glue records, exactly as
pilotfish builds them. The query mix is 50% SRV, 40% A and 10% NXDOMAIN.

The fleet zone (`fleet_instances`, `fleet_queries`) is what a fleet daemon's snapshot
holds: many instances on FLEET_NODES nodes, in services of 3 instances on 3 nodes,
each instance on its node's address (SRV targets are `<node>.node.internal.`), so
that its answers are the size of the zone's above, over a catalog 33 times larger
and with that many more distinct names asked.

Nothing here starts a process; `bench/dns.py` does.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

DOMAIN = "internal"
SERVICES = 1000
INSTANCES = 3
TTL = 5
SERIAL = 1
NS_NODE = "bench"
NS_ADDRESS = "127.0.0.1"
FLEET_NODES = 1000
# Each server answers with the same SRV weight pilotfish computes: 100 // 3 per instance.
SRV_WEIGHT = 100 // INSTANCES


@dataclass(frozen=True)
class Instance:
    service: str
    address: str
    port: int

    @property
    def target(self) -> str:
        return f"{ipaddress.ip_address(self.address).packed.hex()}.addr.{DOMAIN}"


def instances() -> list[Instance]:
    out = []
    for s in range(SERVICES):
        for i in range(INSTANCES):
            out.append(Instance(f"svc{s}", f"10.{i}.{s >> 8}.{s & 255}", 8000 + i))
    return out


@dataclass(frozen=True)
class FleetInstance:
    service: str
    node: int
    port: int

    @property
    def address(self) -> str:
        return f"10.{128 + (self.node >> 16)}.{(self.node >> 8) & 255}.{self.node & 255}"


def fleet_instances(count: int) -> list[FleetInstance]:
    """Instance n: service n // 3 on node n % FLEET_NODES, a port of its own on that node."""
    return [FleetInstance(f"svc{n // INSTANCES}", n % FLEET_NODES, 8000 + n // FLEET_NODES) for n in range(count)]


def fleet_queries(instances: int, names: int = SERVICES, count: int = 20000, seed: int = 7) -> str:
    """The zone's query mix over `names` of the fleet's services spread over all of it (0: all of them).

    One host asks for the services it uses; SERVICES of them, as many as the zone
    has, isolates what the catalog's size costs a query. All of them asks for
    33 times as many distinct names, whose replies no longer fit a core's cache.
    """
    services = instances // INSTANCES
    chosen = range(services) if not names or names >= services else random.Random(seed).sample(range(services), names)
    return queries(count, seed, list(chosen))


def queries(count: int = 20000, seed: int = 7, services: list[int] | None = None) -> str:
    """dnsperf's input: `name type` lines, 50% SRV, 40% A, 10% names that do not exist."""
    rng = random.Random(seed)
    asked = list(range(SERVICES)) if services is None else services
    lines = []
    for _ in range(count):
        roll = rng.random()
        service = asked[rng.randrange(len(asked))]
        if roll < 0.5:
            lines.append(f"_svc{service}._tcp.service.{DOMAIN} SRV")
        elif roll < 0.9:
            lines.append(f"svc{service}.service.{DOMAIN} A")
        else:
            lines.append(f"nosuch{service}.service.{DOMAIN} A")
    return "\n".join(lines) + "\n"


def nsd_zone() -> str:
    lines = [
        f"$ORIGIN {DOMAIN}.",
        f"$TTL {TTL}",
        f"@ IN SOA {NS_NODE}.node.{DOMAIN}. hostmaster.{DOMAIN}. ({SERIAL} 3600 600 86400 {TTL})",
        f"@ IN NS {NS_NODE}.node.{DOMAIN}.",
        f"{NS_NODE}.node IN A {NS_ADDRESS}",
    ]
    for inst in instances():
        lines.append(f"{inst.service}.service IN A {inst.address}")
        lines.append(f"_{inst.service}._tcp.service IN SRV 1 {SRV_WEIGHT} {inst.port} {inst.target}.")
        lines.append(f"{inst.target}. IN A {inst.address}")
    return "\n".join(lines) + "\n"


def dnsmasq_conf(port: int) -> str:
    """dnsmasq in authoritative mode for the zone: NXDOMAIN with the SOA, as the others."""
    lines = [
        "no-resolv",
        "no-hosts",
        "bind-interfaces",
        "listen-address=127.0.0.1",
        f"port={port}",
        f"auth-server={NS_NODE}.node.{DOMAIN},127.0.0.1",
        f"auth-zone={DOMAIN}",
        f"auth-ttl={TTL}",
        f"auth-soa={SERIAL},hostmaster.{DOMAIN},3600,600,86400",
        "log-facility=/dev/null",
        f"host-record={NS_NODE}.node.{DOMAIN},{NS_ADDRESS}",
    ]
    for inst in instances():
        lines.append(f"host-record={inst.service}.service.{DOMAIN},{inst.address}")
        lines.append(f"host-record={inst.target},{inst.address}")
        lines.append(f"srv-host=_{inst.service}._tcp.service.{DOMAIN},{inst.target},{inst.port},1,{SRV_WEIGHT}")
    return "\n".join(lines) + "\n"
