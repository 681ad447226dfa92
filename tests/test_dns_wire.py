"""wire.py: reading queries in place and compiling replies, as tables of packets."""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.dns import wire
from resolver.dns.records import A, Record


def query_bytes(name: str = "Redis.Service.Internal", rdtype: str = "A", **kwargs: object) -> bytes:
    return dns.message.make_query(name, rdtype, id=7, **kwargs).to_wire()  # type: ignore[arg-type]


def test_question_is_read_in_place_and_keyed_lower_case() -> None:
    query = wire.parse_query(query_bytes())
    assert query.labels == ("redis", "service", "internal")
    assert query.question == b"\x05Redis\x07Service\x08Internal\x00\x00\x01\x00\x01"
    assert query.qname_key == b"\x05redis\x07service\x08internal\x00"
    assert (query.qtype, query.qclass, query.edns_payload, query.udp_limit()) == (1, 1, None, 512)
    assert query.rd


@pytest.mark.parametrize(
    ("payload", "limit", "size_class"),
    [(4096, 1232, 1232), (1232, 1232, 1232), (1231, 1231, 512), (600, 600, 512), (100, 512, 512), (65000, 1232, 1232)],
)
def test_edns_payload_sets_the_udp_limit_never_past_1232(payload: int, limit: int, size_class: int) -> None:
    """Replies are compiled for two UDP size classes, each within what the client takes."""
    query = wire.parse_query(query_bytes(use_edns=0, payload=payload))
    assert query.edns_payload == payload and query.edns_version == 0
    assert query.udp_limit() == limit
    assert query.udp_size_class() == size_class <= limit


GOOD = query_bytes()


@pytest.mark.parametrize(
    ("packet", "error"),
    [
        (b"", wire.Drop),
        (GOOD[:11], wire.Drop),
        (GOOD[:2] + b"\x81\x00" + GOOD[4:], wire.Drop),  # QR set: a response
        (GOOD + bytes(5000), wire.Drop),  # oversized
        (GOOD[:4] + b"\x00\x00" + GOOD[6:], wire.FormError),  # no question
        (GOOD[:4] + b"\x00\x02" + GOOD[6:], wire.FormError),  # two questions
        (GOOD[:12] + b"\xc0\x0c\x00\x01\x00\x01", wire.FormError),  # pointer in the question
        (GOOD[:12] + b"\x40abc", wire.FormError),  # extended label type
        (GOOD[:20], wire.FormError),  # name cut short
        (GOOD[:-2], wire.FormError),  # class missing
        (GOOD[:10] + b"\x00\x01" + GOOD[12:], wire.FormError),  # announced OPT missing
        (GOOD[:12] + b"\x3f" + b"a" * 63 + (b"\x3fa" + b"a" * 62) * 4 + b"\x00\x00\x01\x00\x01", wire.FormError),
    ],
)
def test_broken_packets(packet: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        wire.parse_query(packet)


def test_names_of_255_bytes_are_read_and_256_are_formerr() -> None:
    """RFC 1035 2.3.4: 255 octets at most, the root's zero byte included."""
    longest = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"a" * 61 + b"\x00"
    assert len(longest) == 255
    assert wire.parse_query(GOOD[:12] + longest + b"\x00\x01\x00\x01").labels[-1] == "a" * 61
    over = (b"\x3f" + b"a" * 63) * 3 + b"\x3e" + b"a" * 62 + b"\x00"
    with pytest.raises(wire.FormError) as caught:
        wire.parse_query(GOOD[:12] + over + b"\x00\x01\x00\x01")
    # The FORMERR must be a reply a client can read: the overlong name is not echoed.
    assert caught.value.question == b""


def test_formerr_echoes_the_question_when_it_parsed() -> None:
    broken = GOOD[:10] + b"\x00\x01" + GOOD[12:]
    with pytest.raises(wire.FormError) as caught:
        wire.parse_query(broken)
    reply = dns.message.from_wire(wire.error_reply(broken, wire.RCODE_FORMERR, caught.value.question))
    assert reply.id == 7 and reply.rcode() == dns.rcode.FORMERR
    assert reply.question[0].name.to_text() == "Redis.Service.Internal."


def test_badvers_sets_the_extended_rcode() -> None:
    packet = query_bytes(use_edns=1)
    query = wire.parse_query(packet)
    assert query.edns_version == 1
    reply = dns.message.from_wire(wire.error_reply(packet, wire.RCODE_BADVERS, query.question, edns=True))
    assert reply.rcode() == dns.rcode.BADVERS


def compiled(records: int, limit: int, additional: int = 0) -> tuple[wire.Query, wire.Compiled]:
    query = wire.parse_query(GOOD)
    answer = tuple(Record(None, 1, A(f"10.0.{i // 250}.{i % 250}"), 5) for i in range(records))
    glue = tuple(Record(f"g{i}.addr.internal.", 1, A("10.9.9.9"), 5) for i in range(additional))
    sections = wire.Sections(0, answer, additional=glue)
    return query, wire.compile_reply(query, sections, limit, ra=False)


def test_owner_names_point_at_the_question() -> None:
    query, reply = compiled(2, 512)
    # Each answer starts with a pointer to offset 12: the asker's own spelling of the name.
    assert reply.tails[0][:2] == b"\xc0\x0c"
    message = dns.message.from_wire(reply.reply(b"\x00\x07", query.question))
    assert message.answer[0].name.to_text() == "Redis.Service.Internal."
    assert message.flags & dns.flags.AA


def test_additional_is_dropped_before_the_answer_is_truncated() -> None:
    query, reply = compiled(20, 512, additional=20)
    message = dns.message.from_wire(reply.reply(b"\x00\x07", query.question))
    assert not message.flags & dns.flags.TC
    assert len(message.answer[0]) == 20 and message.additional == []


def test_too_large_for_the_limit_is_truncated() -> None:
    query, reply = compiled(40, 512)
    message = dns.message.from_wire(reply.reply(b"\x00\x07", query.question))
    assert message.flags & dns.flags.TC and message.answer == []
    query, full = compiled(40, wire.TCP_REPLY_LIMIT)
    assert len(dns.message.from_wire(full.reply(b"\x00\x07", query.question)).answer[0]) == 40
    assert struct.unpack("!H", full.head[4:6])[0] == 40  # ANCOUNT


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_parse_or_raise_drop_or_formerr(packet: bytes) -> None:
    try:
        wire.parse_query(packet)
    except (wire.Drop, wire.FormError):
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(0, 255), st.integers(0, len(GOOD)))
def test_mutated_queries_parse_or_raise_drop_or_formerr(at: int, value: int, cut: int) -> None:
    packet = (GOOD[:at] + bytes([value]) + GOOD[at + 1 :])[:cut]
    try:
        query = wire.parse_query(packet)
    except (wire.Drop, wire.FormError):
        return
    assert len(query.question) >= 5


def header(qdcount: int, arcount: int, flags: int = 0x0100) -> bytes:
    return struct.pack("!HHHHHH", 7, flags, qdcount, 0, 0, arcount)


def opt(do: bool = False, payload: int = 1232) -> bytes:
    """An OPT record with a client cookie (RFC 7873), as a cookie-only query sends it."""
    option = struct.pack("!HH", 10, 8) + bytes(range(8))
    return b"\x00" + struct.pack("!HHIH", 41, payload, 0x8000 if do else 0, len(option)) + option


QUESTION = b"\x05redis\x00\x00\x01\x00\x01"


@pytest.mark.parametrize(
    ("packet", "edns", "do"),
    [
        (header(0, 1) + opt(), True, False),  # cookie-only: QDCOUNT 0 and an OPT (RFC 7873 5.4)
        (header(0, 1) + opt(do=True), True, True),
        (header(2, 1) + QUESTION * 2 + opt(), True, False),
        (header(1, 2) + QUESTION + opt() + opt(), True, False),  # two OPTs (RFC 6891 6.1.1)
        (header(1, 2) + QUESTION + opt() + b"\x00\x00\x01", True, False),  # a record after the OPT runs short
        (header(0, 0), False, False),
        (header(2, 0) + QUESTION * 2, False, False),
        (header(0, 1) + opt()[:5], False, False),  # an OPT cut before its fixed part: none known
    ],
    ids=["cookie-only", "cookie-only-do", "two-questions", "two-opts", "short-after-opt", "empty", "two-questions-no-opt",
         "opt-cut-short"],
)
def test_formerr_carries_an_opt_when_the_query_had_one(packet: bytes, edns: bool, do: bool) -> None:
    """RFC 6891 7: a reply to a query with an OPT has one, FORMERR included."""
    with pytest.raises(wire.FormError) as caught:
        wire.parse_query(packet)
    reply = dns.message.from_wire(caught.value.reply(packet))
    assert reply.id == 7 and reply.rcode() == dns.rcode.FORMERR
    assert reply.edns == (0 if edns else -1)
    assert bool(reply.ednsflags & dns.flags.DO) is do


def test_a_query_read_cut_short_keeps_the_opt_it_shows() -> None:
    """A UDP query longer than the read: the OPT whose fixed part was read gives the TC reply its OPT."""
    padding = struct.pack("!HH", 12, 600) + bytes(600)  # EDNS padding (RFC 7830) makes it long
    packet = query_bytes(use_edns=0, payload=1232, options=[dns.edns.GenericOption(dns.edns.OptionType.PADDING, bytes(600))])
    assert packet.endswith(padding)
    cut = packet[: wire.MAX_UDP_QUERY]
    query = wire.parse_query(cut, whole=False)
    assert query.edns_payload == 1232
    reply = dns.message.from_wire(wire.error_reply(cut, 0, query.question, edns=True, tc=True))
    assert reply.flags & dns.flags.TC and reply.edns == 0
