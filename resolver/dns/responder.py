"""From query bytes to reply bytes, through two caches that live in the snapshot's memo.

1. `compiled`: (lower-cased name, type, class, EDNS, DO, size class, RD/CD) -> `Compiled`,
   the reply packed once per snapshot with every rotation of its answer. The size
   class is 512, 1232 (UDP) or 65535 (TCP), never the client's own EDNS size, so at
   most a handful of replies are packed per question and snapshot. A service
   answer whose instances a swap did not touch is carried over from the previous
   snapshot's cache instead of packed again, so health changes elsewhere in a large
   catalog do not turn every query into a cache miss.
2. `packets`: the query bytes after the ID -> a `PacketEntry`, the ready replies
   (every rotation, question spliced in) with their counter slot. A repeated UDP
   query (same name, same case, same flags) then costs one dict look-up, two index
   operations and an ID splice: no parsing and no call at all. Queries that differ
   only in what the reply does not show (the EDNS size) are keys of their own but
   share the very same reply bytes.

Both hang off `snapshot.memo`, so a new snapshot starts with empty caches and an
answer change is visible from the first query after the swap. A fleet's catalog
changes many times a second, and a busy server would then build every reply again
after every swap: a reply whose reads of the catalog (`answers.Outcome.basis`) give
the very same objects in the new snapshot is carried over instead, from the
previous snapshot's packet cache (one look-up and the check, no parsing) or its
compiled replies. Replies holding the SOA (negative answers: its serial is the
snapshot index) are carried with the serial stamped anew. The caches are bounded
in entries and in bytes, so that a flood of random names, random 0x20 case or random
EDNS sizes cannot grow them without limit.

A reply that cannot be built (odd catalog content) is a SERVFAIL compiled like any
other reply: logged once, then served from the caches, never a traceback per query.

This module never touches a socket and never waits: forwarding is the server's job,
signalled by returning a `Forward`.
"""

from __future__ import annotations

import functools
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from registry.ratelog import LogThrottle
from registry.snapshot import Snapshot
from resolver.dns import answers, wire
from resolver.dns.records import SOA, SOA_TIMES
from resolver.dns.stats import DnsStats

log = logging.getLogger(__name__)
FAILURE_LOG_INTERVAL = 60.0  # seconds between lines about one question that cannot be answered

MAX_ROTATIONS = 8  # orders kept per multi-instance answer; enough to spread load evenly
MAX_PACKETS = 65536  # per snapshot; beyond this, queries still answer, just uncached
# Bytes of ready replies the packet cache may hold per snapshot. Every 0x20 case
# variant of a question is its own key with its own copy of every rotation, so a count
# bound alone would let random-case queries for a large answer take gigabytes.
MAX_PACKET_BYTES = 64 << 20
MAX_COMPILED = 65536
# Bytes of compiled replies kept per snapshot, against a flood of random names.
MAX_COMPILED_BYTES = 64 << 20
# Spellings of one question whose ready replies are kept for sharing (see `_Compiled`).
MAX_SPELLINGS = 16
CLASS_IN = 1
CLASS_ANY = 255


@dataclass(frozen=True, slots=True)
class _Compiled:
    reply: wire.Compiled
    turns: Iterator[int]  # rotation for replies built per query (TCP)
    basis: answers.Basis | None  # what it read of the catalog; None: never carried over
    # Where the SOA serial (the snapshot index) sits, counted from the end of every
    # reply: the SOA is its last record but for OPT. None: the reply holds no serial.
    serial_from_end: int | None = None
    # Question bytes as asked -> its ready replies (`Compiled.rotations`). Packet-cache
    # entries of one spelling share these, so a client cycling through EDNS sizes adds
    # a key per size to the packet cache but no reply bytes.
    spelled: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)

    def restamped(self, serial: int) -> _Compiled:
        """The same reply for a snapshot whose index is `serial`."""
        if self.serial_from_end is None:
            return self
        tails = tuple(_stamped(tail, self.serial_from_end, serial) for tail in self.reply.tails)
        reply = wire.Compiled(self.reply.head, tails, self.reply.stat)
        return _Compiled(reply, itertools.cycle(range(len(tails))), self.basis, self.serial_from_end)


@dataclass(frozen=True, slots=True)
class Forward:
    """The query is outside the zone and recursors are configured: the server relays it."""

    query: wire.Query
# (picker, DnsStats slot, reply 0, reply 1, ..., its _Compiled or None): each reply
# without its ID. The UDP reader sends `hit[hit[0][id_byte ^ turn]]`, where `picker`
# maps any byte to the index of one reply, never to the last item, which only a swap
# reads (to carry the entry over). One flat tuple is deliberate: a cache hit touches
# the dict, the key, this tuple and the reply, and nothing else, so the few cold memory
# loads a large cache costs per query stay few. A per-entry rotation object
# (itertools.cycle and its list) cost four more, about 0.4 µs per query.
PacketEntry = tuple[Any, ...]
PacketCache = dict[bytes, PacketEntry]
Reply = bytes | Forward | None  # None: drop the packet


class Responder:
    """Answers queries from whatever snapshot `get_snapshot()` returns right now."""

    def __init__(
        self,
        get_snapshot: Callable[[], Snapshot],
        ttl: float,
        recursing: bool,
        stats: DnsStats,
        bare_names: answers.BareNames = answers.BareNames.ALL,
        prefer_local: bool = False,
    ) -> None:
        self._get_snapshot = get_snapshot
        self._prefer_local = prefer_local
        self._ttl = max(0, int(ttl))
        self._recursing = recursing
        self._bare_names = bare_names
        self._stats = stats
        self._snapshot: Snapshot | None = None
        self._packets: PacketCache = {}
        self._previous_packets: PacketCache = {}
        self._packet_bytes = 0  # held by `_packets`, see MAX_PACKET_BYTES
        self._compiled: dict[tuple[object, ...], _Compiled] = {}
        self._compiled_bytes = 0  # held by `_compiled`, see MAX_COMPILED_BYTES
        self._previous: dict[tuple[object, ...], _Compiled] = {}
        self._failures = LogThrottle(log, FAILURE_LOG_INTERVAL)

    def packet_cache(self) -> PacketCache:
        """The current snapshot's per-packet cache, for the UDP reader's hot loop.

        Taken once per batch of datagrams: the server reads `cache.get(data[2:])`,
        bumps the counter slot and splices the ID onto the picked reply itself, with
        no call in between, which is the cheapest a Python reply gets.
        """
        snapshot = self._get_snapshot()
        if snapshot is not self._snapshot:
            self._adopt(snapshot)
        return self._packets

    def answer(self, data: bytes, tcp: bool) -> Reply:
        """Any query, the slow way; also fills the caches for the next identical UDP query."""
        snapshot = self._get_snapshot()
        if snapshot is not self._snapshot:
            self._adopt(snapshot)
        if not tcp:
            carried = self._carried_packet(snapshot, data)
            if carried is not None:
                return carried
        whole = tcp or len(data) <= wire.MAX_UDP_QUERY
        try:
            query = wire.parse_query(data, whole)
        except wire.Drop:
            self._stats.malformed += 1
            return None
        except wire.FormError as error:
            self._stats.malformed += 1
            self._stats.count(("unknown", "FORMERR"))
            return error.reply(data)
        qtype = wire.qtype_text(query.qtype)
        # Every reply to a query with an OPT carries ours, errors and TC included (RFC 6891 7).
        edns = query.edns_payload is not None
        if not whole:
            self._stats.count((qtype, "NOERROR"))
            return wire.error_reply(data, 0, query.question, edns, self._recursing, query.edns_do, tc=True)
        if query.opcode != wire.OPCODE_QUERY:
            self._stats.count((qtype, "NOTIMP"))
            return wire.error_reply(data, wire.RCODE_NOTIMP, query.question, edns, do=query.edns_do)
        if edns and query.edns_version != 0:
            self._stats.count((qtype, "BADVERS"))
            return wire.error_reply(data, wire.RCODE_BADVERS, query.question, edns, do=query.edns_do)
        if query.qtype in (wire.TYPE_AXFR, wire.TYPE_IXFR):
            # No zone transfers are offered (RFC 5936 2.2.1); the zone is built per snapshot.
            self._stats.count((qtype, "REFUSED"))
            return wire.error_reply(data, wire.RCODE_REFUSED, query.question, edns, self._recursing, query.edns_do)
        try:
            return self._answer(snapshot, data, query, tcp)
        except Exception:
            # A fault of ours, not of the query (a reply that cannot be built is compiled
            # as SERVFAIL in `_compile`): SERVFAIL, counted, logged at most once a minute.
            self._failures.log(("answer", qtype), logging.ERROR, "dns: failed to answer %s %s",
                               ".".join(query.labels), qtype, exc_info=True)
            self._stats.count((qtype, "SERVFAIL"))
            return wire.error_reply(data, wire.RCODE_SERVFAIL, query.question, edns, self._recursing, query.edns_do)

    def _answer(self, snapshot: Snapshot, data: bytes, query: wire.Query, tcp: bool) -> Reply:
        limit = wire.TCP_REPLY_LIMIT if tcp else query.udp_size_class()
        edns = query.edns_payload is not None
        key = (query.qname_key, query.qtype, query.qclass, edns, query.edns_do, limit, query.flags & 0x0110)
        found = self._compiled.get(key)
        if found is None:
            found = self._previous.get(key)
            if found is not None and found.basis is not None and answers.unchanged(snapshot, found.basis):
                found = found.restamped(snapshot.index)
            else:
                found = self._compile(snapshot, query, limit)
                if found is None:
                    return self._outside(data, query, tcp)
            size = found.reply.size()
            if len(self._compiled) < MAX_COMPILED and self._compiled_bytes + size <= MAX_COMPILED_BYTES:
                self._compiled_bytes += size
                self._compiled[key] = found
        compiled = found.reply
        self._stats.count(compiled.stat)
        if not tcp and len(self._packets) < MAX_PACKETS:
            self._remember_packet(data, query, found)
        return compiled.reply(data[:2], query.question, next(found.turns))

    def _remember_packet(self, data: bytes, query: wire.Query, found: _Compiled) -> None:
        """Put the ready replies of this query into the packet cache, within its byte bound."""
        rotations = found.spelled.get(query.question)
        size = len(data)
        if rotations is None:
            rotations = found.reply.rotations(query.question)
            size += sum(map(len, rotations))
            if len(found.spelled) < MAX_SPELLINGS:
                found.spelled[query.question] = rotations
        if self._packet_bytes + size <= MAX_PACKET_BYTES:
            self._packet_bytes += size
            self._packets[data[2:]] = (picker(len(rotations)), self._stats.slot(found.reply.stat), *rotations, found)

    def _carried_packet(self, snapshot: Snapshot, data: bytes) -> bytes | None:
        """The reply to a question the previous snapshot's packet cache held, when nothing it read changed."""
        entry = self._previous_packets.get(data[2:])
        if entry is None:
            return None
        found: _Compiled | None = entry[-1]
        if found is None or found.basis is None or not answers.unchanged(snapshot, found.basis):
            return None
        replies: tuple[bytes, ...] = entry[2:-1]
        if found.serial_from_end is not None:
            replies = tuple(_stamped(reply, found.serial_from_end, snapshot.index) for reply in replies)
            entry = (entry[0], entry[1], *replies, found)
        size = len(data) + sum(map(len, replies))
        if len(self._packets) < MAX_PACKETS and self._packet_bytes + size <= MAX_PACKET_BYTES:
            self._packet_bytes += size
            self._packets[data[2:]] = entry
        self._stats.count(found.reply.stat)
        return data[:2] + entry[entry[0][data[1]]]  # type: ignore[no-any-return]

    def _outside(self, data: bytes, query: wire.Query, tcp: bool) -> Reply:
        if self._recursing:
            return Forward(query)
        edns = query.edns_payload is not None
        reply = wire.error_reply(data, wire.RCODE_REFUSED, query.question, edns, do=query.edns_do)
        stat = (wire.qtype_text(query.qtype), "REFUSED")
        self._stats.count(stat)
        if not tcp and len(self._packets) < MAX_PACKETS and self._packet_bytes + 2 * len(data) <= MAX_PACKET_BYTES:
            self._packet_bytes += 2 * len(data)
            self._packets[data[2:]] = (picker(1), self._stats.slot(stat), reply[2:], None)
        return reply

    def _compile(self, snapshot: Snapshot, query: wire.Query, limit: int) -> _Compiled | None:
        """The reply for this question in this snapshot, or None when the name is not ours.

        A reply that cannot be built is a SERVFAIL, compiled and cached as any reply:
        the fault is in the catalog's content, and the next snapshot may mend it.
        """
        if query.qclass not in (CLASS_IN, CLASS_ANY):
            return None
        basis: answers.Basis | None = None
        serial_from_end = None
        try:
            outcome = answers.resolve(snapshot, query.labels, query.qtype, self._ttl, self._bare_names, self._prefer_local)
            if isinstance(outcome, answers.OutOfZone):
                return None
            basis = outcome.basis
            if isinstance(outcome, answers.Success):
                rotations = min(len(outcome.answer), MAX_ROTATIONS) if outcome.rotate else 1
                sections = wire.Sections(0, outcome.answer, rotations, outcome.groups, additional=outcome.additional)
                soa = next((record.rdata for record in outcome.answer if isinstance(record.rdata, SOA)), None)
            else:
                sections = wire.Sections(0 if isinstance(outcome, answers.NoData) else 3, authority=(outcome.soa,))
                soa = outcome.soa.rdata if isinstance(outcome.soa.rdata, SOA) else None
            compiled = wire.compile_reply(query, sections, limit, self._recursing)
            if soa is not None:
                serial_from_end = _serial_from_end(compiled, query, soa)
                if serial_from_end is None:
                    basis = None  # not where a carried copy would stamp it: compiled afresh each time
        except Exception as error:
            qtype = wire.qtype_text(query.qtype)
            self._failures.log(("compile", query.qname_key, qtype), logging.ERROR,
                               "dns: cannot build the answer to %s %s, answering SERVFAIL: %r",
                               ".".join(query.labels), qtype, error)
            compiled = wire.compile_reply(query, wire.Sections(wire.RCODE_SERVFAIL), limit, self._recursing)
            basis = None
        return _Compiled(compiled, itertools.cycle(range(len(compiled.tails))), basis, serial_from_end)

    def _adopt(self, snapshot: Snapshot) -> None:
        """Switch to a new snapshot's caches; the old ones stay one swap as candidates to carry over."""
        self._previous = self._compiled
        self._previous_packets = self._packets
        self._packets = snapshot.memo.setdefault(("dns", "packets", id(self)), {})
        self._packet_bytes = 0
        self._compiled = snapshot.memo.setdefault(("dns", "compiled", id(self)), {})
        self._compiled_bytes = 0
        self._snapshot = snapshot


def _serial_from_end(compiled: wire.Compiled, query: wire.Query, soa: SOA) -> int | None:
    """Where every tail of `compiled` holds the serial of `soa`, counted from its end; None when one does not.

    The SOA is the last record before OPT, and its serial the first of its five times:
    all five must be there, so that a reply cut short (TC) is never stamped by chance.
    """
    at = SOA_TIMES.size + (len(wire.opt_record(do=query.edns_do)) if query.edns_payload is not None else 0)
    times = SOA_TIMES.pack(*soa.times)
    for tail in compiled.tails:
        if len(tail) < at or tail[len(tail) - at : len(tail) - at + SOA_TIMES.size] != times:
            return None
    return at


def _stamped(reply: bytes, serial_from_end: int, serial: int) -> bytes:
    """`reply` with the serial `serial_from_end` bytes from its end replaced by `serial`."""
    at = len(reply) - serial_from_end
    return reply[:at] + (serial & 0xFFFFFFFF).to_bytes(4, "big") + reply[at + 4 :]


@functools.cache
def picker(replies: int) -> bytes:
    """Maps a byte to the tuple index of one of `replies` replies in a `PacketEntry`.

    The byte is the low byte of the query ID mixed with a turn that advances per
    batch of datagrams. Resolvers draw IDs at random (RFC 5452), so their repeated
    queries get a shuffled order; a client that counts its IDs up gets strict
    rotation; one that reuses an ID still moves with the turn. Every reply gets 256
    // replies or one more of the 256 bytes, so the spread is even.
    """
    return bytes(2 + byte % replies for byte in range(256))
