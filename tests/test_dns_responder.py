"""responder.py: the per-snapshot caches, driven with real query bytes over a real catalog."""

from __future__ import annotations

import logging
import random
import tracemalloc
from typing import Any, Callable, Iterator, cast

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import NODE
from registry.catalog import Catalog
from registry.model import Entry, Instance, Node, Source, Status
from registry.snapshot import Change, Key, Snapshot, SnapshotHolder
from registry.store import Store
from resolver.dns import answers
from resolver.dns import responder as responder_module
from resolver.dns import wire
from resolver.dns.responder import Responder
from resolver.dns.stats import DnsStats


FILE = {"redis": Source.file("a.yaml"), "web": Source.file("b.yaml")}


def ask(responder: Responder, name: str, rdtype: str = "A") -> dns.message.Message:
    return dns.message.from_wire(ask_wire(responder, dns.message.make_query(name, rdtype, id=9).to_wire()))


def ask_wire(responder: Responder, wire: bytes) -> bytes:
    """The reply a UDP client gets: from the packet cache as the server's hot loop reads it, else answered."""
    hit = responder.packet_cache().get(wire[2:])
    reply = wire[:2] + hit[hit[0][wire[1]]] if hit else responder.answer(wire, tcp=False)
    assert isinstance(reply, bytes)
    return reply


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in reply.answer for r in rrset)


def test_untouched_services_keep_their_compiled_reply_across_swaps(catalog: Catalog) -> None:
    catalog.apply_file("a.yaml", [Instance("redis-1", "redis", NODE.node, "10.0.0.2", 6379, source=FILE["redis"])])
    catalog.apply_file("b.yaml", [Instance("web-1", "web", NODE.node, "10.0.0.3", 80, source=FILE["web"])])
    responder = Responder(lambda: catalog.current, 5, False, DnsStats())
    assert addresses(ask(responder, "redis.service.internal")) == ["10.0.0.2"]
    over_tcp = dns.message.make_query("redis.service.internal", "A").to_wire()
    responder.answer(over_tcp, tcp=True)
    packets_before, compiled_before = dict(responder.packet_cache()), dict(responder._compiled)

    catalog.apply_file("b.yaml", [Instance("web-1", "web", NODE.node, "10.0.0.4", 80, source=FILE["web"])])  # another service changes
    assert addresses(ask(responder, "redis.service.internal")) == ["10.0.0.2"]
    # Carried, not packed again: the UDP packet as it was, and the compiled reply TCP uses.
    assert list(responder.packet_cache().values()) == list(packets_before.values())
    responder.answer(over_tcp, tcp=True)
    assert responder._compiled and all(compiled_before[key] is found for key, found in responder._compiled.items())
    assert addresses(ask(responder, "web.service.internal")) == ["10.0.0.4"]

    catalog.apply_file("a.yaml", [Instance("redis-1", "redis", NODE.node, "10.0.0.9", 6379, source=FILE["redis"])])  # redis itself changes
    assert addresses(ask(responder, "redis.service.internal")) == ["10.0.0.9"]


def test_a_swap_that_left_a_question_alone_answers_it_without_reading_or_resolving_it(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fleet's catalog swaps many times a second: what the change left alone (positive and
    negative answers, node names, the apex) is carried over, UDP packets without even parsing
    them, and every SOA carries the new serial."""
    catalog.apply_file("a.yaml", [Instance("redis-1", "redis", NODE.node, "10.0.0.2", 6379, source=FILE["redis"])])
    catalog.apply_file("b.yaml", [Instance("web-1", "web", NODE.node, "10.0.0.3", 80, source=FILE["web"])])
    responder = Responder(lambda: catalog.current, 5, False, DnsStats())
    questions = [("redis.service.internal", "A"), ("redis.service.internal", "TXT"), ("nosuch.service.internal", "A"),
                 (f"{NODE.node}.node.internal", "A"), ("internal", "SOA")]
    queries = [dns.message.make_query(name, rdtype, id=9).to_wire() for name, rdtype in questions]
    before = [dns.message.from_wire(ask_wire(responder, query)) for query in queries]
    for query in queries:
        responder.answer(query, tcp=True)
    calls = {"resolve": 0, "parse": 0}

    def counted(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            calls[name] += 1
            return real(*args)
        return call

    monkeypatch.setattr(answers, "resolve", counted("resolve", answers.resolve))
    monkeypatch.setattr(wire, "parse_query", counted("parse", wire.parse_query))
    catalog.apply_file("b.yaml", [Instance("web-1", "web", NODE.node, "10.0.0.4", 80, source=FILE["web"])])  # another service changes
    after = [dns.message.from_wire(ask_wire(responder, query)) for query in queries]
    over_tcp = [responder.answer(query, tcp=True) for query in queries]
    assert calls == {"resolve": 0, "parse": len(queries)}  # TCP replies are built per query from the compiled one

    def serials(message: dns.message.Message) -> list[int]:
        return [rdata.serial for rrset in message.answer + message.authority for rdata in rrset if rdata.rdtype == dns.rdatatype.SOA]

    for old, new, tcp in zip(before, after, over_tcp):
        assert isinstance(tcp, bytes) and dns.message.from_wire(tcp) == new
        assert new.rcode() == old.rcode() and new.flags == old.flags
        assert [r for r in new.answer if r.rdtype != dns.rdatatype.SOA] == [r for r in old.answer if r.rdtype != dns.rdatatype.SOA]
        assert serials(new) == [serial + 1 for serial in serials(old)]  # none in positive answers
    assert addresses(ask(responder, "web.service.internal")) == ["10.0.0.4"]
    assert calls["resolve"] == 1


def test_negative_answers_follow_the_new_serial(catalog: Catalog) -> None:
    responder = Responder(lambda: catalog.current, 5, False, DnsStats())
    first = ask(responder, "nosuch.service.internal")
    catalog.apply_file("a.yaml", [Instance("redis-1", "redis", NODE.node, "10.0.0.2", 6379, source=FILE["redis"])])
    second = ask(responder, "nosuch.service.internal")
    assert first.rcode() == second.rcode() == dns.rcode.NXDOMAIN
    assert second.authority[0][0].serial == first.authority[0][0].serial + 1


def big_service_responder(catalog: Catalog, count: int = 60) -> Responder:
    """A responder over one service `big` of `count` instances: 60 is past any UDP reply, 25 fits 1232 bytes."""
    catalog.apply_file("a.yaml", [
        Instance(f"big-{i}", "big", NODE.node, f"10.1.0.{i + 1}", 9000 + i, source=Source.file("a.yaml")) for i in range(count)
    ])
    return Responder(lambda: catalog.current, 5, False, DnsStats())


def test_random_case_queries_cannot_grow_the_packet_cache_past_its_byte_bound(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each 0x20 variant of a query is its own packet-cache key: a large answer must not be kept per variant."""
    monkeypatch.setattr(responder_module, "MAX_PACKET_BYTES", 1 << 20)
    responder = big_service_responder(catalog, 25)
    rng = random.Random(7)
    name = "_big._tcp.service.internal"
    tracemalloc.start()
    try:
        for _ in range(300):
            asked = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
            wire = dns.message.make_query(asked, "SRV", id=9, use_edns=0, payload=1232).to_wire()
            reply = responder.answer(wire, tcp=False)
            assert isinstance(reply, bytes) and reply[12 : len(wire) - 11] == wire[12:-11]  # the question as asked
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 300 variants x 8 rotations x ~1.1 KB would be ~2.6 MB; the bound keeps it near 1 MiB.
    assert held < 3 << 19
    assert isinstance(reply, bytes)
    last = dns.message.from_wire(reply)
    assert last.answer[0].name.to_text() == asked + "." and len(last.answer[0]) == 25


@pytest.mark.parametrize("count", [25, 60])
def test_random_edns_sizes_compile_a_handful_of_replies_that_share_their_bytes(catalog: Catalog, count: int) -> None:
    """Issue 9, row 5: replies are compiled per size class, never per EDNS size a client sends.

    Each size used to be a compile of its own (30 ms for 60 SRV records with glue)
    and a copy of every rotation in the caches. Now a few replies are compiled, every
    reply stays within the client's size (and 1232), and the packet cache's entries
    for the many sizes share one set of reply bytes.
    """
    responder = big_service_responder(catalog, count)
    rng = random.Random(5)
    name = "_big._tcp.service.internal"
    template = dns.message.make_query(name, "SRV", id=0, use_edns=0, payload=0).to_wire()
    sample = []
    tracemalloc.start()
    try:
        for i in range(400):
            payload = rng.randrange(0, 65536)
            wire = rng.randbytes(2) + template[2:-8] + payload.to_bytes(2, "big") + template[-6:]
            reply = ask_wire(responder, wire)
            assert len(reply) <= min(max(payload, 512), 1232)
            if i % 20 == 0:
                sample.append((payload, reply))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    for payload, reply in sample:
        message = dns.message.from_wire(reply)
        assert message.edns == 0 and message.payload == 1232  # our size, whatever the client's
        if message.flags & dns.flags.TC:
            assert message.answer == [] and (count == 60 or payload < 1232)
        else:
            assert len(message.answer[0]) == count and message.rcode() == dns.rcode.NOERROR
    assert len(responder._compiled) <= 2  # the 512 and the 1232 reply
    # 400 sizes x 8 rotations x ~1.1 KB would be 3.5 MB; shared, the entries take their keys and tuples.
    assert held < 1 << 19
    whole = responder.answer(dns.message.make_query(name, "SRV", id=3).to_wire(), tcp=True)
    assert isinstance(whole, bytes)
    over_tcp = dns.message.from_wire(whole)
    assert len(over_tcp.answer[0]) == count and len(over_tcp.additional) == count  # SRV records and their glue


@pytest.mark.parametrize("replies", range(1, responder_module.MAX_ROTATIONS + 1))
def test_picker_spreads_every_byte_evenly_over_the_replies(replies: int) -> None:
    picker = responder_module.picker(replies)
    shares = [picker.count(index) for index in range(2, 2 + replies)]
    assert sum(shares) == 256
    assert max(shares) - min(shares) <= 1


def test_odd_catalog_content_never_raises_per_query(catalog: Catalog, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 9, row 8: a lone surrogate in meta made every TXT query a SERVFAIL and a traceback.

    Text that UTF-8 cannot hold is served escaped; a reply that cannot be built at all
    (here a node name longer than a DNS label) is one SERVFAIL, logged once, then
    served from the caches like any reply.
    """
    long_node = "n" * 70
    catalog.apply_file("a.yaml", [
        Instance("odd-1", "odd", NODE.node, "10.0.0.2", 80, meta={"note": "bad \ud800 text"}, source=Source.file("a.yaml")),
        Instance("far-1", "far", long_node, "10.0.0.3", 80, address_is_node=True, source=Source.file("a.yaml")),
    ])
    responder = Responder(lambda: catalog.current, 5, False, DnsStats())
    for i in range(50):
        txt = ask(responder, "odd.service.internal" if i % 2 else "ODD.service.internal", "TXT")
        assert txt.rcode() == dns.rcode.NOERROR
        assert [s for rrset in txt.answer for r in rrset for s in r.strings] == [b"note=bad \\ud800 text"]
        srv = ask(responder, "_far._tcp.service.internal", "SRV")
        assert srv.rcode() == dns.rcode.SERVFAIL
        reply = responder.answer(dns.message.make_query("_far._tcp.service.internal", "SRV").to_wire(), tcp=True)
        assert isinstance(reply, bytes) and dns.message.from_wire(reply).rcode() == dns.rcode.SERVFAIL
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and "_far._tcp.service.internal" in errors[0].getMessage()
    assert not errors[0].exc_info  # a line, not a traceback


# -- hostile bytes (issue 9, "tests that attack") ---------------------------------------

REAL_QUERIES = [
    dns.message.make_query(name, rdtype, id=4660, **kwargs).to_wire()
    for name, rdtype, kwargs in cast(list[tuple[str, str, dict[str, Any]]], [
        ("_big._tcp.service.internal", "SRV", {}),
        ("Big.Service.Internal", "A", {"use_edns": 0, "payload": 1232}),
        ("big.service.internal", "TXT", {"use_edns": 0, "want_dnssec": True}),
        ("node1.node.internal", "AAAA", {"use_edns": 0, "options": [dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"c" * 8)]}),
        ("internal", "SOA", {}),
        ("example.com", "A", {"use_edns": 0}),
    ])
]


@pytest.fixture(scope="module")
def hostile_responders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Responder, Responder]]:
    """One responder that refuses names outside the zone, one that would forward them."""
    path = tmp_path_factory.mktemp("hostile")
    catalog = Catalog(Store(path / "p.db"), NODE)
    catalog.apply_file("a.yaml", [
        Instance(f"big-{i}", "big", NODE.node, f"10.1.0.{i + 1}", 9000 + i, meta={"k": "v" * 300}, source=Source.file("a.yaml"))
        for i in range(25)
    ])
    yield (Responder(lambda: catalog.current, 5, False, DnsStats()),
           Responder(lambda: catalog.current, 5, True, DnsStats()))
    catalog.store.close()


def mutated(data: Any) -> bytes:
    """A real query with a few random edits: byte flips, cuts, insertions, repeats."""
    packet = bytearray(data.draw(st.sampled_from(REAL_QUERIES)))
    for _ in range(data.draw(st.integers(1, 6))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "repeat", "set_count"]))
        at = data.draw(st.integers(0, len(packet)))
        if kind == "flip" and at < len(packet):
            packet[at] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del packet[at : at + data.draw(st.integers(1, 40))]
        elif kind == "insert":
            packet[at:at] = data.draw(st.binary(min_size=1, max_size=40))
        elif kind == "repeat":
            packet += packet[at:]
        elif len(packet) >= 12:
            count_at = data.draw(st.sampled_from([4, 6, 8, 10]))
            packet[count_at : count_at + 2] = data.draw(st.integers(0, 65535)).to_bytes(2, "big")
    return bytes(packet)


def check_answer(responder: Responder, packet: bytes, tcp: bool) -> None:
    reply = responder.answer(packet, tcp)
    if reply is None or isinstance(reply, responder_module.Forward):
        return
    assert isinstance(reply, bytes)
    assert len(reply) >= 12 and reply[:2] == packet[:2] and reply[2] & 0x80  # our ID back, QR set
    if not tcp:
        assert len(reply) <= 1232
    if (reply[2] >> 3) & 0xF == 0:  # (dnspython reads other opcodes' sections as UPDATE's, say)
        dns.message.from_wire(reply)  # readable by a real client


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data(), st.booleans())
def test_mutated_queries_get_a_reply_or_nothing_and_never_an_exception(
    hostile_responders: tuple[Responder, Responder], data: Any, tcp: bool
) -> None:
    packet = mutated(data)
    try:
        wire.parse_query(packet)
    except (wire.Drop, wire.FormError):
        pass
    for responder in hostile_responders:
        check_answer(responder, packet, tcp)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=700), st.booleans())
def test_random_bytes_get_a_reply_or_nothing_and_never_an_exception(
    hostile_responders: tuple[Responder, Responder], packet: bytes, tcp: bool
) -> None:
    for responder in hostile_responders:
        check_answer(responder, packet, tcp)


# -- carried over a swap: every reply as a responder that never saw the snapshot before would give it ----------

QUESTIONS = [
    (name, rdtype)
    for name in [
        "web.service.internal", "db.service.internal", "blue.web.service.internal", "_web._tcp.service.internal",
        "_web._blue.service.internal", "_blue.service.internal", "_tcp.service.internal", "web", "_db._tcp",
        "n1.node.internal", "n2.node.internal", "0a000001.addr.internal", "internal", "nosuch.service.internal",
        "service.internal",
    ]
    for rdtype in ["A", "SRV", "TXT", "SOA", "NS", "ANY"]
]
FLEET_NODES = [Node("n1", "10.0.0.1"), Node("n2", "10.0.0.2"), Node("n2", "10.0.0.7")]
FLEET_ENTRIES = st.builds(
    lambda number, name, status, discoverable, blue, node, own: Entry(
        Instance(f"i{number}", name, node.name, node.address if not own else f"10.9.0.{number + 1}", 8000 + number,
                 tags=("blue",) if blue else (), meta={"n": str(number)}, discoverable=discoverable,
                 address_is_node=not own),
        status,
    ),
    st.integers(0, 3), st.sampled_from(["web", "db"]), st.sampled_from([Status.PASSING, Status.CRITICAL]),
    st.booleans(), st.booleans(), st.sampled_from(FLEET_NODES), st.booleans(),
)
FLEET_CHANGES = st.lists(
    st.tuples(st.lists(st.one_of(FLEET_ENTRIES, st.integers(0, 3)), max_size=3), st.sampled_from(FLEET_NODES[1:])),
    min_size=1, max_size=6,
)


def seen(reply: bytes) -> tuple[object, ...]:
    """A reply as a client reads it, every section's records in one order whatever the rotation."""
    message = dns.message.from_wire(reply)
    return (message.rcode(), message.flags, *(sorted(line for rrset in section for line in rrset.to_text().splitlines())
                                              for section in (message.answer, message.authority, message.additional)))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=FLEET_CHANGES, prefer_local=st.booleans(), bare=st.sampled_from(list(answers.BareNames)))
def test_replies_carried_over_a_swap_are_the_replies_of_the_new_snapshot(
    changes: list[tuple[list[Entry | int], Node]], prefer_local: bool, bare: answers.BareNames,
) -> None:
    """Whatever changed (instances, health, tags, a node's address), UDP and TCP replies after
    the swap are exactly those of a responder that never saw the snapshot before."""
    nodes = {"n1": FLEET_NODES[0], "n2": FLEET_NODES[1]}
    holder = SnapshotHolder(Snapshot.first("internal", "n1", frozenset({Status.PASSING}), Change({}, nodes, (), {})))
    carrying = Responder(lambda: holder.current, 5, False, DnsStats(), bare, prefer_local)
    queries = [dns.message.make_query(name, rdtype, id=7).to_wire() for name, rdtype in QUESTIONS]
    for items, node in changes:
        for query in queries:  # fill every cache of the snapshot about to be left
            ask_wire(carrying, query)
            carrying.answer(query, tcp=True)
        delta: dict[Key, Entry | None] = {}
        for item in items:
            if isinstance(item, Entry):
                delta[item.instance.key] = item
            else:
                delta[("n1", f"i{item}")] = None
        holder.swap(holder.current.successor(Change(delta, {"n1": FLEET_NODES[0], "n2": node}, (), {})))
        fresh = Responder(lambda: holder.current, 5, False, DnsStats(), bare, prefer_local)
        for query in queries:
            assert seen(ask_wire(carrying, query)) == seen(ask_wire(fresh, query)), dns.message.from_wire(query).question
            tcp, expected = carrying.answer(query, tcp=True), fresh.answer(query, tcp=True)
            assert isinstance(tcp, bytes) and isinstance(expected, bytes)
            assert seen(tcp) == seen(expected)
