"""A snapshot's DNS zone: its name, SOA, node table and target names, built once per snapshot.

Kept in `snapshot.memo` and handed on to the next snapshot where nothing it holds
changed; resolver.dns.answers reads names through it.
"""

from __future__ import annotations

import socket
from typing import Mapping

from registry.model import Node
from registry.snapshot import Snapshot
from resolver.dns.records import SOA, TYPE_SOA, Record

_ZONE = ("dns", "zone")  # the memo key of a snapshot's `Zone`


def unhex(label: str) -> str | None:
    """`0a000001` -> 10.0.0.1, 32 hex digits -> an IPv6 address; anything else None."""
    if len(label) not in (8, 32):
        return None
    try:
        packed = bytes.fromhex(label)
    except ValueError:
        return None
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


class Zone:
    """Per-snapshot lookup tables, kept in `snapshot.memo`.

    The node table is built on first use and handed on to the next snapshot's zone
    while the nodes stay the same object (the snapshot keeps it when nothing
    changed), so a swap that touched only instances costs the zone nothing.
    """

    def __init__(self, snapshot: Snapshot, prior: Zone | None) -> None:
        self.domain = snapshot.domain.strip(".").lower()
        self.labels = tuple(self.domain.split(".")) if self.domain else ()
        self._soa: dict[int, Record] = {}
        self._nodes_from = snapshot.nodes
        self._nodes: Mapping[str, Node] | None = None
        if prior is not None and prior._nodes_from is snapshot.nodes:
            self._nodes = prior._nodes

    def node(self, name: str) -> Node | None:
        """The node whose lower-cased name is `name`."""
        if self._nodes is None:
            self._nodes = {node_name.lower(): node for node_name, node in self._nodes_from.items()}
        return self._nodes.get(name)

    def node_target(self, node: str) -> str:
        return f"{node.lower()}.node.{self.domain}."

    def addr_target(self, address: str) -> str:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return f"{socket.inet_pton(family, address).hex()}.addr.{self.domain}."

    def soa(self, snapshot: Snapshot, ttl: int) -> Record:
        """The zone's SOA: serial is the snapshot index; minimum (the negative TTL) is the answer TTL."""
        soa = self._soa.get(ttl)
        if soa is None:
            rdata = SOA(
                self.node_target(snapshot.local_node),
                f"hostmaster.{self.domain}.",
                (snapshot.index & 0xFFFFFFFF, 3600, 600, 86400, ttl),
            )
            soa = self._soa[ttl] = Record(f"{self.domain}.", TYPE_SOA, rdata, ttl)
        return soa


def zone_of(snapshot: Snapshot) -> Zone:
    zone: Zone | None = snapshot.memo.get(_ZONE)
    if zone is None:
        before = snapshot.predecessor()
        zone = snapshot.memo[_ZONE] = Zone(snapshot, before.memo.get(_ZONE) if before is not None else None)
    return zone
