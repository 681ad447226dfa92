"""responder.py: the per-snapshot caches, driven with real query bytes over a real catalog."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from registry.catalog import Catalog, NodeDefaults
from registry.model import Instance
from registry.store import Store
from resolver.dns import responder as responder_module
from resolver.dns.responder import Responder
from resolver.dns.stats import DnsStats


FILE = {"redis": "file:a.yaml", "web": "file:b.yaml"}


def ask(responder: Responder, name: str, rdtype: str = "A") -> dns.message.Message:
    wire = dns.message.make_query(name, rdtype, id=9).to_wire()
    hit = responder.packet_cache().get(wire[2:])
    reply = wire[:2] + hit[hit[0][wire[1]]] if hit else responder.answer(wire, tcp=False)
    assert isinstance(reply, bytes)
    return dns.message.from_wire(reply)


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in reply.answer for r in rrset)


def test_untouched_services_keep_their_compiled_reply_across_swaps(tmp_path: Path) -> None:
    catalog = Catalog(Store(tmp_path / "p.db"), NodeDefaults("n1", "10.0.0.1"))
    catalog.apply_file("a.yaml", [Instance("redis-1", "redis", "n1", "10.0.0.2", 6379, source=FILE["redis"])])
    catalog.apply_file("b.yaml", [Instance("web-1", "web", "n1", "10.0.0.3", 80, source=FILE["web"])])
    responder = Responder(lambda: catalog.current, 5, False, DnsStats())
    assert addresses(ask(responder, "redis.service.internal")) == ["10.0.0.2"]
    compiled_before = dict(responder._compiled)

    catalog.apply_file("b.yaml", [Instance("web-1", "web", "n1", "10.0.0.4", 80, source=FILE["web"])])  # another service changes
    assert addresses(ask(responder, "redis.service.internal")) == ["10.0.0.2"]
    assert list(responder._compiled.values()) == list(compiled_before.values())  # carried, not packed again
    assert addresses(ask(responder, "web.service.internal")) == ["10.0.0.4"]

    catalog.apply_file("a.yaml", [Instance("redis-1", "redis", "n1", "10.0.0.9", 6379, source=FILE["redis"])])  # redis itself changes
    assert addresses(ask(responder, "redis.service.internal")) == ["10.0.0.9"]


def test_negative_answers_follow_the_new_serial(tmp_path: Path) -> None:
    catalog = Catalog(Store(tmp_path / "p.db"), NodeDefaults("n1", "10.0.0.1"))
    responder = Responder(lambda: catalog.current, 5, False, DnsStats())
    first = ask(responder, "nosuch.service.internal")
    catalog.apply_file("a.yaml", [Instance("redis-1", "redis", "n1", "10.0.0.2", 6379, source=FILE["redis"])])
    second = ask(responder, "nosuch.service.internal")
    assert first.rcode() == second.rcode() == dns.rcode.NXDOMAIN
    assert second.authority[0][0].serial == first.authority[0][0].serial + 1


def big_service_responder(tmp_path: Path) -> Responder:
    """A responder over one service of 60 instances: answers of several KB."""
    catalog = Catalog(Store(tmp_path / "p.db"), NodeDefaults("n1", "10.0.0.1"))
    catalog.apply_file("a.yaml", [
        Instance(f"big-{i}", "big", "n1", f"10.1.0.{i + 1}", 9000 + i, source="file:a.yaml") for i in range(60)
    ])
    return Responder(lambda: catalog.current, 5, False, DnsStats())


def test_random_case_queries_cannot_grow_the_packet_cache_past_its_byte_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each 0x20 variant of a query is its own packet-cache key: a large answer must not be kept per variant."""
    monkeypatch.setattr(responder_module, "MAX_PACKET_BYTES", 1 << 20)
    responder = big_service_responder(tmp_path)
    rng = random.Random(7)
    name = "_big._tcp.service.internal"
    tracemalloc.start()
    try:
        for _ in range(300):
            asked = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
            wire = dns.message.make_query(asked, "SRV", id=9, use_edns=0, payload=4096).to_wire()
            reply = responder.answer(wire, tcp=False)
            assert isinstance(reply, bytes) and reply[12 : len(wire) - 11] == wire[12:-11]  # the question as asked
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 300 variants x 8 rotations x ~4 KB would be ~10 MB; the bound keeps it near 1 MiB.
    assert held < 2 << 20
    assert isinstance(reply, bytes)
    last = dns.message.from_wire(reply)
    assert last.answer[0].name.to_text() == asked + "." and len(last.answer[0]) == 60


def test_queries_varying_the_edns_size_cannot_grow_the_compiled_cache_past_its_byte_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each EDNS size is its own compiled reply: a large answer must not be kept once per size."""
    monkeypatch.setattr(responder_module, "MAX_COMPILED_BYTES", 256 << 10)
    responder = big_service_responder(tmp_path)
    for payload in range(4000, 4040):
        wire = dns.message.make_query("_big._tcp.service.internal", "SRV", id=9, use_edns=0, payload=payload)
        reply = responder.answer(wire.to_wire(), tcp=False)
        assert isinstance(reply, bytes) and len(dns.message.from_wire(reply).answer[0]) == 60
    # 40 sizes x 8 rotations x ~2 KB would be ~700 KB; the bound holds.
    held = sum(compiled.reply.size() for compiled in responder._compiled.values())
    assert held <= 256 << 10


@pytest.mark.parametrize("replies", range(1, responder_module.MAX_ROTATIONS + 1))
def test_picker_spreads_every_byte_evenly_over_the_replies(replies: int) -> None:
    picker = responder_module.picker(replies)
    shares = [picker.count(index) for index in range(2, 2 + replies)]
    assert sum(shares) == 256
    assert max(shares) - min(shares) <= 1
