"""The DNS fallback's questions and how its answers become instances (no I/O here).

When the HTTP API does not answer, the daemon's DNS server often still does (it is a
separate listener), and DNS is the one interface every pilotfish speaks. The client
asks SRV `_<name>._tcp.service.<domain>` (or `_<name>._<tag>` for one tag), takes
each target's addresses from the additional section, and asks A (then AAAA) for a
target the additional section left out. DNS knows only passing instances, their
address, port, weight and priority: an instance from DNS has protocol `tcp`, no tags
and no meta, which is why it comes after the last good HTTP answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rdtypes.IN.SRV
import dns.rrset

from resolver.client.results import Instance

# A DNS label as pilotfish's names and tags are: anything else cannot be asked.
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
MAX_TARGET_QUERIES = 16


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str  # lower-cased, without the final dot


def srv_name(name: str, tag: str | None, domain: str) -> str | None:
    """The SRV owner to ask, or None when `name` or `tag` cannot be a DNS label."""
    label = tag if tag is not None else "tcp"
    if not _LABEL.match(name.lower()) or not _LABEL.match(label.lower()):
        return None
    return f"_{name.lower()}._{label.lower()}.service.{domain}."


def query(owner: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
    return dns.message.make_query(owner, rdtype)


def read_srv(reply: dns.message.Message) -> tuple[list[SrvRecord], dict[str, list[str]]]:
    """The SRV records and the addresses the additional section gives their targets."""
    records = [
        SrvRecord(rr.priority, rr.weight, rr.port, _plain(rr.target))
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.SRV
        for rr in rrset
        if isinstance(rr, dns.rdtypes.IN.SRV.SRV)
    ]
    return records, read_addresses(reply, reply.additional)


def read_addresses(reply: dns.message.Message, section: list[dns.rrset.RRset] | None = None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for rrset in reply.answer if section is None else section:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            found.setdefault(_plain(rrset.name), []).extend(rr.address for rr in rrset)
    return found


def failure_of(reply: dns.message.Message) -> str | None:
    """Why a reply is no answer (an rcode other than NOERROR and NXDOMAIN), or None."""
    rcode = reply.rcode()
    if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return None
    return f"the DNS server answered {dns.rcode.to_text(rcode)}"


def unresolved(records: list[SrvRecord], addresses: dict[str, list[str]]) -> list[str]:
    """Targets still without an address, at most MAX_TARGET_QUERIES of them."""
    missing = sorted({r.target for r in records if r.target not in addresses})
    return missing[:MAX_TARGET_QUERIES]


def instances_from_srv(name: str, records: list[SrvRecord], addresses: dict[str, list[str]], domain: str) -> tuple[Instance, ...]:
    """One instance per (record, address); ordered by priority, then weight (heaviest first)."""
    node_suffix = f".node.{domain}"
    found = []
    for record in sorted(records, key=lambda r: (r.priority, -r.weight)):
        node = record.target[: -len(node_suffix)] if record.target.endswith(node_suffix) else ""
        for address in addresses.get(record.target, []):
            host = f"[{address}]" if ":" in address else address
            found.append(Instance(
                id=f"{record.target}:{record.port}", name=name, node=node, address=address, port=record.port,
                protocol="tcp", url=f"tcp://{host}:{record.port}", weight=record.weight, priority=record.priority,
                registered_by="dns",
            ))
    return tuple(found)


def _plain(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()
