"""DNS wire format for the hot path: read a query in place, compile answers to bytes.

A query is never fully decoded: the header and the question are read straight from
the packet, and the only further record looked at is the EDNS0 OPT. Answers are
packed once (records.py packs each record) against the lower-cased question; every
owner name under the question is then a compression pointer to offset 12, so serving
a query is `id + compiled head + the query's own question bytes + compiled tail`,
which keeps the asker's 0x20 case for free.

A UDP reply is never larger than min(the client's EDNS size, 1232), or 512 without
EDNS: we answer for names anyone can ask, so a larger reply would make us an
amplifier (RFC 8906, DNS flag day 2020). Replies are compiled for a few size classes
(`udp_size_class`), never for the raw size a client sent, so that varying it cannot
make every query a new compile.

This module knows bytes and record types only. It must never look at the catalog or
a socket: deciding what to answer is `answers.py`, moving bytes is `server.py`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dnslib import QTYPE, RCODE

from resolver.dns.records import NameTable, Record

# What we advertise in our OPT: the DNS flag day 2020 size, safe from fragmentation.
OUR_PAYLOAD = 1232
# A query larger than this is not a query we serve; it is dropped.
MAX_QUERY = 4096
# The largest UDP query read whole. With its 33-byte header a bytes object of up to
# 512 bytes comes from Python's small-object allocator; a larger read buffer costs a
# malloc, a realloc and a free per datagram. Real queries are far smaller (header 12,
# question at most 259, OPT 11 plus options); a longer one is read cut short and
# answered with TC set, so the client asks again over TCP, where MAX_QUERY applies.
MAX_UDP_QUERY = 478
# No UDP reply is larger, whatever the client's buffer: the size we advertise.
MAX_UDP_REPLY = OUR_PAYLOAD
MIN_UDP_REPLY = 512  # RFC 1035; also the floor of RFC 6891's payload size
TCP_REPLY_LIMIT = 65535

OPCODE_QUERY = 0
TYPE_OPT = 41
TYPE_IXFR = 251
TYPE_AXFR = 252
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
RCODE_BADVERS = 16

_HEADER = struct.Struct("!HHHHHH")
_COUNTS = struct.Struct("!HHHH")
_TYPE_CLASS = struct.Struct("!HH")
_RR_FIXED = struct.Struct("!HHIH")


class Drop(Exception):
    """Not worth an answer: shorter than a header, a response, or oversized."""


Edns = tuple[int, int, bool]  # an OPT's UDP payload size, version and DO bit


class FormError(Exception):
    """A query we cannot read; answered FORMERR, echoing the question when it parsed.

    `opt` is the query's OPT as far as it could be read (None when it had none): the
    FORMERR then carries ours, so that the client does not conclude that we do not
    speak EDNS (RFC 6891 section 7).
    """

    def __init__(self, message: str, question: bytes = b"", opt: Edns | None = None) -> None:
        super().__init__(message)
        self.question = question
        self.opt = opt

    def reply(self, data: bytes) -> bytes:
        """The FORMERR for the query `data`."""
        opt = self.opt
        return error_reply(data, RCODE_FORMERR, self.question, opt is not None, do=opt is not None and opt[2])


@dataclass(frozen=True, slots=True)
class Query:
    """What the hot path needs from a query, read in place."""

    flags: int
    question: bytes  # the question section as sent: name (case kept), type, class
    qname_key: bytes  # the wire name lower-cased: the cache key
    labels: tuple[str, ...]  # lower-cased, without the root
    qtype: int
    qclass: int
    edns_payload: int | None  # the client's UDP size, None when it sent no OPT
    edns_version: int = 0
    edns_do: bool = False  # DNSSEC OK: copied into the reply's OPT (RFC 3225 section 3)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rd(self) -> bool:
        return bool(self.flags & 0x0100)

    def udp_limit(self) -> int:
        """The largest UDP reply we send this client: its size within 512..1232 (RFC 6891)."""
        if self.edns_payload is None:
            return MIN_UDP_REPLY
        return max(MIN_UDP_REPLY, min(self.edns_payload, MAX_UDP_REPLY))

    def udp_size_class(self) -> int:
        """The size a UDP reply is compiled for: 1232 when the client takes it, else 512.

        A client between the two gets the 512-byte reply, a few of them TC where a
        larger one would have fit: the price of two compiled replies instead of one
        per size a client may send.
        """
        return MAX_UDP_REPLY if self.udp_limit() == MAX_UDP_REPLY else MIN_UDP_REPLY


def parse_query(data: bytes, whole: bool = True) -> Query:
    """Read header, question and OPT; raise Drop or FormError on anything else.

    `whole=False` is for a datagram read cut short: its records cannot be trusted
    whole, so only an OPT whose fixed part was read is taken from them (for the
    OPT of the TC reply) and a record running past the end is no error.
    """
    size = len(data)
    if size < 12 or size > MAX_QUERY:
        raise Drop("short or oversized packet")
    _, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & 0x8000:
        raise Drop("a response, not a query")
    if qdcount != 1:
        # A cookie-only query (RFC 7873 5.4) has no question and an OPT: look for it
        # past whatever questions there are, so that the FORMERR carries ours.
        opt = _opt_after_questions(data, qdcount, ancount + nscount, ancount + nscount + arcount)
        raise FormError(f"{qdcount} questions", b"", opt)
    pos = 12
    labels: list[bytes] = []
    while True:
        if pos >= size:
            raise FormError("question name runs past the packet")
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0:
            raise FormError("compressed or extended label in the question")
        label = data[pos + 1 : pos + 1 + length]
        if len(label) < length:
            raise FormError("label runs past the packet")
        labels.append(label)
        pos += 1 + length
        # 255 bytes at most with the root's zero byte still to come (RFC 1035 2.3.4).
        if pos - 12 > 254:
            raise FormError("question name longer than 255 bytes")
    if pos + 4 > size:
        raise FormError("question without type and class")
    qtype, qclass = _TYPE_CLASS.unpack_from(data, pos)
    pos += 4
    question = data[12:pos]
    edns = _read_opt(data, pos, ancount + nscount, ancount + nscount + arcount, question, whole)
    lowered = [label.lower() for label in labels]
    return Query(
        flags=flags,
        question=question,
        qname_key=question[:-4].lower(),
        labels=tuple(label.decode("latin-1") for label in lowered),
        qtype=qtype,
        qclass=qclass,
        edns_payload=edns[0] if edns is not None else None,
        edns_version=edns[1] if edns is not None else 0,
        edns_do=edns is not None and edns[2],
    )


def _read_opt(data: bytes, pos: int, additional: int, records: int, question: bytes, whole: bool) -> Edns | None:
    """The OPT among the `records` from `pos` (the additional section from record
    number `additional`), or None; FormError for a record that does not read.

    An error found after an OPT was read says so, so that the FORMERR carries an OPT
    too. With `whole` false the packet was cut short: reading stops quietly at the
    first record that runs past the end.
    """
    size = len(data)
    edns: Edns | None = None
    for index in range(records):
        try:
            name_end = _skip_name(data, pos, question)
        except FormError:
            if not whole:
                break
            raise
        if name_end + 10 > size:
            if not whole:
                break
            raise FormError("record runs past the packet", question, edns)
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, name_end)
        if rtype == TYPE_OPT:
            opt = (rclass, (ttl >> 16) & 0xFF, bool(ttl & 0x8000))
            if index < additional or edns is not None or name_end != pos + 1:
                # An OPT all the same: the FORMERR carries ours (RFC 6891 6.1.1 and 7).
                raise FormError("misplaced or repeated OPT", question, opt)
            edns = opt
        pos = name_end + 10 + rdlength
        if pos > size:
            if not whole:
                break
            raise FormError("record data runs past the packet", question, edns)
    return edns


def _opt_after_questions(data: bytes, questions: int, additional: int, records: int) -> Edns | None:
    """The OPT of a query without exactly one question, as far as its bytes can be read."""
    pos = 12
    try:
        for _ in range(questions):
            pos = _skip_name(data, pos, b"") + 4
        return _read_opt(data, pos, additional, records, b"", whole=False)
    except FormError as error:
        return error.opt


def _skip_name(data: bytes, pos: int, question: bytes) -> int:
    """Position after a (possibly compressed) name in a record."""
    while True:
        if pos >= len(data):
            raise FormError("record name runs past the packet", question)
        length = data[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length & 0xC0:
            raise FormError("extended label type", question)
        if length == 0:
            return pos + 1
        pos += 1 + length


def opt_record(payload: int = OUR_PAYLOAD, extended_rcode: int = 0, do: bool = False) -> bytes:
    """Our EDNS0 OPT: root owner, our UDP size, the query's DO bit, no options (cookies are ignored, RFC 7873)."""
    return b"\x00" + _RR_FIXED.pack(TYPE_OPT, payload, extended_rcode << 24 | (0x8000 if do else 0), 0)


def reply_flags(query_flags: int, rcode: int, ra: bool = False, tc: bool = False) -> int:
    """Flags of an error reply: QR, the query's opcode, RD and CD copied; RA when we recurse."""
    flags = 0x8000 | (query_flags & 0x7910) | (rcode & 0xF) | (0x0200 if tc else 0)
    return flags | 0x0080 if ra else flags


def error_reply(
    data: bytes,
    rcode: int,
    question: bytes = b"",
    edns: bool = False,
    ra: bool = False,
    do: bool = False,
    tc: bool = False,
) -> bytes:
    """A reply with no records: FORMERR, SERVFAIL, NOTIMP, REFUSED, BADVERS, or TC to send the client to TCP."""
    query_flags = int.from_bytes(data[2:4], "big")
    opt = opt_record(extended_rcode=rcode >> 4, do=do) if edns or rcode > 15 else b""
    flags = reply_flags(query_flags, rcode & 0xF, ra=ra, tc=tc)
    counts = _COUNTS.pack(1 if question else 0, 0, 0, 1 if opt else 0)
    return data[:2] + flags.to_bytes(2, "big") + counts + question + opt


@dataclass(frozen=True, slots=True)
class Compiled:
    """A reply without its ID and question: `head` (flags and counts) and one tail per rotation.

    Every rotation has the same head: the same records in a different order.
    """

    head: bytes
    tails: tuple[bytes, ...]
    stat: tuple[str, str]  # (qtype text, rcode text) for DnsStats

    def reply(self, query_id: bytes, question: bytes, rotation: int = 0) -> bytes:
        return query_id + self.head + question + self.tails[rotation % len(self.tails)]

    def size(self) -> int:
        """Bytes held, for the caches' bounds."""
        return len(self.head) + sum(map(len, self.tails))

    def rotations(self, question: bytes) -> tuple[bytes, ...]:
        """Every rotation with this question spliced in, for the per-packet cache."""
        return tuple(self.head + question + tail for tail in self.tails)


@dataclass(frozen=True, slots=True)
class Sections:
    """What answers.py decided, as records, before it becomes bytes."""

    rcode: int
    answer: tuple[Record, ...] = ()
    rotations: int = 1  # orders of the answer to compile, each starting at another record
    # Lengths of consecutive runs of the answer that rotate each within itself and keep
    # their order (dns.prefer_local: this node's instances first); () = one run.
    groups: tuple[int, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()


def compile_reply(query: Query, sections: Sections, limit: int, ra: bool) -> Compiled:
    """Pack a reply once; drop the additional section, then set TC, when it exceeds `limit`.

    Rotated answers are packed record by record, each compressed only against the
    question, so a record's bytes do not depend on its place: every rotation is then
    the same bytes in another order, the answer section has one length, and the
    authority and additional sections after it are packed once for all rotations.
    """
    edns = query.edns_payload is not None
    opt = opt_record(do=query.edns_do) if edns else b""
    # Everything compiled is answered from our zone: authoritative, unless it is the
    # SERVFAIL of a reply that could not be built. Opcode, RD and CD are the query's
    # (RFC 4035 3.1.6 for CD).
    aa = 0x0400 if sections.rcode != RCODE_SERVFAIL else 0
    flags = 0x8000 | (query.flags & 0x7910) | aa | (0x0080 if ra else 0) | (sections.rcode & 0xF)
    names = NameTable(query.qname_key)
    at = 12 + len(query.question)
    remember = sections.rotations == 1
    answer = []
    for record in sections.answer:
        packed = record.pack(names, at, remember)
        answer.append(packed)
        at += len(packed)
    authority = []
    for record in sections.authority:
        packed = record.pack(names, at)
        authority.append(packed)
        at += len(packed)
    stat = (qtype_text(query.qtype), rcode_text(sections.rcode))
    extra = 1 if opt else 0
    if at + len(opt) > limit:
        # Not even without its additional section: empty, with TC (the client asks over TCP).
        counts = _COUNTS.pack(1, 0, 0, extra)
        return Compiled((flags | 0x0200).to_bytes(2, "big") + counts, (opt,), stat)
    additional = []
    for record in sections.additional:
        packed = record.pack(names, at)
        additional.append(packed)
        at += len(packed)
        if at + len(opt) > limit:
            additional = []  # glue is optional: the reply goes without (RFC 2181 9)
            break
    head = flags.to_bytes(2, "big") + _COUNTS.pack(1, len(answer), len(authority), len(additional) + extra)
    rest = b"".join(authority) + b"".join(additional) + opt
    joined = b"".join(answer)
    if sections.rotations <= 1 or len(answer) < 2:
        return Compiled(head, (joined + rest,), stat)
    count = min(sections.rotations, len(answer))
    runs = sections.groups or (len(answer),)
    tails = []
    for turn in range(count):
        parts: list[bytes] = []
        start = 0
        for size in runs:
            run = answer[start : start + size]
            cut = turn * size // count
            parts += run[cut:] + run[:cut]
            start += size
        tails.append(b"".join(parts) + rest)
    return Compiled(head, tuple(tails), stat)


def qtype_text(qtype: int) -> str:
    """"SRV", "A", ... or the number for types dnslib does not name."""
    name = QTYPE.get(qtype, None)
    return str(name) if name is not None else str(qtype)


def rcode_text(rcode: int) -> str:
    """"NOERROR", "NXDOMAIN", ... as /metrics labels them."""
    return "BADVERS" if rcode == RCODE_BADVERS else str(RCODE.get(rcode, str(rcode)))
