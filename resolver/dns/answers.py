"""What a DNS name means in one catalog snapshot: the typed outcome of a question.

`resolve(snapshot, labels, qtype, ttl, bare, prefer_local)` maps the design's name forms onto the
snapshot and returns Success, NoData, NameError or OutOfZone, as CoreDNS's
`plugin/file/lookup.go` does, separately from building the message (`wire.py`).
It is pure: no I/O, no logging, no clock; the same snapshot and question always give
the same outcome, which is what lets the server compile it once per snapshot. Each
outcome also says what it read from the catalog (`basis`): a later snapshot in which
`unchanged` finds all of it the very same objects gives the very same outcome, SOA
serial aside, so the server carries its reply over a swap instead of building it again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Callable, Iterable

from registry.model import Entry
from registry.snapshot import Snapshot
from resolver.dns.records import (
    AAAA, NS, SRV, TXT, TYPE_A, TYPE_AAAA, TYPE_NS, TYPE_SOA, TYPE_SRV, TYPE_TXT, A, Record, character_strings,
)
from resolver.dns.zone import Zone, unhex, zone_of

TYPE_ANY = 255
TRANSPORT_LABELS = ("_tcp", "_udp")
# One read of the catalog: (view, key, what the view gave). See `unchanged`.
Read = tuple[str, str, object]
Basis = tuple[Read, ...]


class BareNames(str, enum.Enum):
    """Which names outside the domain are answered as if under it (`dns.bare_names`).

    A bare name shadows the real host of that name for whoever asks us: with `app`
    registered, `app.` is ours, never forwarded. `srv` keeps only `_<service>._tcp`
    and `_<service>._udp`, which no real host is called.
    """

    ALL = "all"  # `<service>` and `_<service>._<transport>`
    SRV = "srv"  # `_<service>._<transport>` only
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Success:
    answer: tuple[Record, ...]
    additional: tuple[Record, ...] = ()
    rotate: bool = False  # answer order cycles between replies (several instances)
    groups: tuple[int, ...] = ()  # runs of the answer that rotate apart (wire.Sections.groups)
    basis: Basis | None = None


@dataclass(frozen=True, slots=True)
class NoData:
    """The name exists, no records of that type: NOERROR with the SOA (RFC 2308)."""

    soa: Record
    basis: Basis | None = None


@dataclass(frozen=True, slots=True)
class NameError:
    """The name does not exist in the zone: NXDOMAIN with the SOA (RFC 2308)."""

    soa: Record
    basis: Basis | None = None


@dataclass(frozen=True, slots=True)
class OutOfZone:
    """Not ours: REFUSED, or forwarded when recursors are configured."""


Outcome = Success | NoData | NameError | OutOfZone


@dataclass(frozen=True, slots=True)
class _Service:
    """A service name form resolved to the service and its filter."""

    name: str
    tag: str | None
    srv: bool


def resolve(
    snapshot: Snapshot,
    labels: tuple[str, ...],
    qtype: int,
    ttl: int,
    bare: BareNames = BareNames.ALL,
    prefer_local: bool = False,
) -> Outcome:
    """Answer `labels` (lower-cased, no root label) of type `qtype` from `snapshot`.

    `prefer_local`: this node's instances come first in A/AAAA answers, and first
    among equal priority in SRV answers (each part still rotates within itself).
    `bare` and `prefer_local` are the server's, the same for every snapshot, so the
    reads (`basis`) need not hold them.
    """
    reads: list[Read] = []
    outcome = _resolve(snapshot, labels, qtype, ttl, bare, prefer_local, reads)
    if isinstance(outcome, OutOfZone) or outcome.basis is not None:
        return outcome
    return replace(outcome, basis=tuple(reads))


def unchanged(snapshot: Snapshot, basis: Basis) -> bool:
    """Whether every read of `basis` gives the very same object in `snapshot`.

    The catalog shares what a change left alone (a name's tuples, the node map) with
    the snapshot before, so identity is both exact and one look-up per read.
    """
    return all(_VIEWS[view](snapshot, key) is seen for view, key, seen in basis)


def _resolve(
    snapshot: Snapshot,
    labels: tuple[str, ...],
    qtype: int,
    ttl: int,
    bare: BareNames,
    prefer_local: bool,
    reads: list[Read],
) -> Outcome:
    zone = zone_of(snapshot)
    domain = zone.labels
    if labels[len(labels) - len(domain) :] == domain:
        relative = labels[: len(labels) - len(domain)]
        return _in_zone(snapshot, zone, relative, qtype, ttl, prefer_local, reads)
    # Bare forms: `<service>` and `_<service>._<transport>`, only for services we have
    # and as `bare` allows; anything else is outside the zone (REFUSED, or forwarded).
    srv_form = len(labels) == 2 and labels[1] in TRANSPORT_LABELS and labels[0].startswith("_")
    if (bare is BareNames.ALL and len(labels) == 1) or (bare is not BareNames.OFF and srv_form):
        service = _service_form(labels + ("service",))
        if service is not None and _exists(snapshot, _Service(service.name, None, False), reads):
            return _service_answer(snapshot, zone, service, qtype, ttl, prefer_local, reads)
    return OutOfZone()


def _in_zone(
    snapshot: Snapshot,
    zone: Zone,
    relative: tuple[str, ...],
    qtype: int,
    ttl: int,
    prefer_local: bool,
    reads: list[Read],
) -> Outcome:
    if not relative:
        return _apex(snapshot, zone, qtype, ttl, reads)
    kind = relative[-1]
    if len(relative) == 1 and kind in ("service", "node", "addr"):
        # Empty non-terminals: names exist below them, so they exist (RFC 8020).
        return NoData(zone.soa(snapshot, ttl))
    if kind == "service" and len(relative) == 2 and relative[0].startswith("_"):
        # `_tcp.service`, `_<tag>.service`: empty non-terminals above the SRV names
        # (service names never start with "_"); NXDOMAIN here would deny those below.
        parent = _srv_parent(snapshot, relative[0])
        reads.append(("srv-parent", relative[0], parent))
        if parent:
            return NoData(zone.soa(snapshot, ttl))
        return NameError(zone.soa(snapshot, ttl))
    if kind == "service":
        service = _service_form(relative)
        if service is None or not _exists(snapshot, service, reads):
            return NameError(zone.soa(snapshot, ttl))
        return _service_answer(snapshot, zone, service, qtype, ttl, prefer_local, reads)
    if kind == "node" and len(relative) >= 2:
        reads.append(("nodes", "", snapshot.nodes))
        node = zone.node(".".join(relative[:-1]))
        if node is None:
            return NameError(zone.soa(snapshot, ttl))
        return _addresses(snapshot, zone, [node.address], qtype, ttl)
    if kind == "addr" and len(relative) == 2:
        address = unhex(relative[0])
        if address is None:
            return NameError(zone.soa(snapshot, ttl))
        return _addresses(snapshot, zone, [address], qtype, ttl)
    return NameError(zone.soa(snapshot, ttl))


def _apex(snapshot: Snapshot, zone: Zone, qtype: int, ttl: int, reads: list[Read]) -> Outcome:
    soa = zone.soa(snapshot, ttl)
    if qtype in (TYPE_SOA, TYPE_ANY):
        return Success((Record(None, TYPE_SOA, soa.rdata, ttl),))
    if qtype == TYPE_NS:
        # The name server is this node, so the NS target resolves in our own zone.
        reads.append(("nodes", "", snapshot.nodes))
        local = snapshot.nodes[snapshot.local_node]
        target = zone.node_target(local.name)
        return Success((Record(None, TYPE_NS, NS(target), ttl),), _glue(target, [local.address], ttl))
    return NoData(soa)


def _service_form(relative: tuple[str, ...]) -> _Service | None:
    """`<svc>.service`, `<tag>.<svc>.service`, `_<svc>._<tcp|udp|tag>.service`, else None."""
    if len(relative) == 2:
        return _Service(relative[0], None, False)
    if len(relative) != 3:
        return None
    first, second = relative[0], relative[1]
    if first.startswith("_") and second.startswith("_"):
        # As Consul: `_tcp`/`_udp` mean "no tag filter", anything else is a tag.
        tag = None if second in TRANSPORT_LABELS else second[1:]
        return _Service(first[1:], tag, True)
    return _Service(second, first, False)


def _srv_parent(snapshot: Snapshot, label: str) -> bool:
    """Whether `_tcp`, `_udp` or `_<tag>` has SRV names below it.

    The snapshot counts discoverable names and tags as it is built, so this costs a
    lookup, not a walk of the catalog, however many instances a fleet holds.
    """
    if label in TRANSPORT_LABELS:
        return bool(snapshot.discoverable_names)
    return label[1:] in snapshot.discoverable_tags


def _exists(snapshot: Snapshot, service: _Service, reads: list[Read]) -> bool:
    """The name exists when a discoverable instance matches, whatever its health.

    Service names are lower case by the registration schema, so the asked label is the key.
    """
    entries = snapshot.entries_by_name.get(service.name)
    reads.append(("entries", service.name, entries))
    return any(entry.instance.discoverable and _tagged(entry, service.tag) for entry in entries or ())


def _tagged(entry: Entry, tag: str | None) -> bool:
    return tag is None or any(t.lower() == tag for t in entry.instance.tags)


def _service_answer(
    snapshot: Snapshot, zone: Zone, service: _Service, qtype: int, ttl: int, prefer_local: bool, reads: list[Read]
) -> Outcome:
    name = service.name
    served = snapshot.answerable_by_name.get(name)
    reads.append(("answerable", name, served))
    answerable = served or ()
    entries = [e for e in answerable if _tagged(e, service.tag)]
    local = snapshot.local_node
    if service.srv or qtype == TYPE_SRV:
        # `<service>.service` and `<tag>.<service>.service` answer SRV too, as Consul's do.
        if qtype not in (TYPE_SRV, TYPE_ANY) or not entries:
            return NoData(zone.soa(snapshot, ttl))
        groups: tuple[int, ...] = ()
        if prefer_local and any(e.instance.node == local for e in entries):
            # Clients pick among equal priority by weight: ours lead each priority.
            entries.sort(key=lambda e: (e.instance.priority, e.instance.node != local))
            groups = _runs([(e.instance.priority, e.instance.node != local) for e in entries])
        srv = _srv(zone, entries, ttl)
        outcome: Outcome = replace(srv, groups=groups) if len(groups) > 1 else srv
    elif qtype == TYPE_TXT:
        texts = sorted({f"{k}={v}" for e in entries for k, v in e.instance.meta.items()})
        if not texts:
            return NoData(zone.soa(snapshot, ttl))
        # One record per key=value; a value past 255 bytes spans several character-strings.
        outcome = Success(tuple(Record(None, TYPE_TXT, TXT(character_strings(text)), ttl) for text in texts))
    elif prefer_local and any(e.instance.node == local for e in entries):
        ours = [e.instance.address for e in entries if e.instance.node == local]
        theirs = [e.instance.address for e in entries if e.instance.node != local]
        outcome = _addresses(snapshot, zone, ours, qtype, ttl, then=theirs)
    else:
        outcome = _addresses(snapshot, zone, [e.instance.address for e in entries], qtype, ttl)
    if isinstance(outcome, Success):
        # Built from the answerable instances alone, which all exist and are
        # discoverable: the same tuple gives the same answer, whatever else of the
        # name (an instance out of service) changed.
        return replace(outcome, basis=(("answerable", name, served),))
    return outcome


def _addresses(
    snapshot: Snapshot, zone: Zone, addresses: Iterable[str], qtype: int, ttl: int, then: Iterable[str] = ()
) -> Outcome:
    """A/AAAA of `addresses`, then of `then` (each part rotating apart); ANY gets just these
    (RFC 8482: a minimal subset of types)."""
    first = list(addresses)
    leading = _typed(_address_records(None, first, ttl), qtype)
    known = set(first)
    following = _typed(_address_records(None, [a for a in then if a not in known], ttl), qtype)
    records = leading + following
    if not records:
        return NoData(zone.soa(snapshot, ttl))
    groups = (len(leading), len(following)) if leading and following else ()
    return Success(tuple(records), rotate=len(records) > 1, groups=groups)


def _typed(records: list[Record], qtype: int) -> list[Record]:
    return records if qtype == TYPE_ANY else [r for r in records if r.rtype == qtype]


def _srv(zone: Zone, entries: list[Entry], ttl: int) -> Success:
    """RFC 2782 records; weights scaled as CoreDNS does: percent of the priority's total, at least 1."""
    totals: dict[int, int] = {}
    for entry in entries:
        totals[entry.instance.priority] = totals.get(entry.instance.priority, 0) + max(entry.instance.weight, 0)
    answer = []
    additional: dict[tuple[str, str], Record] = {}
    for entry in entries:
        instance = entry.instance
        total = totals[instance.priority]
        weight = max(1, (100 * instance.weight) // total) if total else 1
        if instance.address_is_node:
            target = zone.node_target(instance.node)
        else:
            target = zone.addr_target(instance.address)
        answer.append(Record(None, TYPE_SRV, SRV(instance.priority, weight, instance.port, target), ttl))
        if (target, instance.address) not in additional:
            additional[target, instance.address] = _address_record(target, instance.address, ttl)
    return Success(tuple(answer), tuple(additional.values()), rotate=len(answer) > 1)


def _runs(keys: list[tuple[int, bool]]) -> tuple[int, ...]:
    """Lengths of the runs of equal keys in `keys`."""
    runs: list[int] = []
    for n, key in enumerate(keys):
        if n and key == keys[n - 1]:
            runs[-1] += 1
        else:
            runs.append(1)
    return tuple(runs)


def _glue(target: str, addresses: list[str], ttl: int) -> tuple[Record, ...]:
    return tuple(_address_records(target, addresses, ttl))


def _address_record(owner: str | None, address: str, ttl: int) -> Record:
    """An address as the registry validated it; the packer reads it with inet_pton."""
    if ":" in address:
        return Record(owner, TYPE_AAAA, AAAA(address), ttl)
    return Record(owner, TYPE_A, A(address), ttl)


def _address_records(owner: str | None, addresses: Iterable[str], ttl: int) -> list[Record]:
    records = []
    seen = set()
    for text in addresses:
        if text not in seen:
            seen.add(text)
            records.append(_address_record(owner, text, ttl))
    return records


_VIEWS: dict[str, Callable[[Snapshot, str], object]] = {
    "entries": lambda snapshot, name: snapshot.entries_by_name.get(name),
    "answerable": lambda snapshot, name: snapshot.answerable_by_name.get(name),
    "nodes": lambda snapshot, _: snapshot.nodes,
    "srv-parent": _srv_parent,
}
