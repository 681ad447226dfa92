"""answers.py: a snapshot and a question give a typed outcome, as a table of cases."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dns.message
import pytest

from registry.catalog import Catalog
from registry.model import CLUSTER, CheckKind, CheckSpec, Entry, Instance, Node, NodeIdentity, Status
from registry.remote import RemoteBatch
from registry.snapshot import Change, Key, Snapshot
from registry.store import Store
from resolver.dns import answers, wire
from resolver.dns.answers import NameError, NoData, OutOfZone, Success
from resolver.dns.records import SOA as SOAData
from resolver.dns.records import SRV as SRVData


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    path: Path = tmp_path_factory.mktemp("answers")
    catalog = Catalog(Store(path / "p.db"), NodeIdentity("Alpha", "10.0.0.1"), "dc1.internal")
    critical = (CheckSpec("db-check", CheckKind.TCP, "10.0.0.3:5432"),)
    catalog.apply_file("f.yaml", [
        Instance("a1", "api", "Alpha", "10.0.0.1", 80, weight=1, priority=1, address_is_node=True, tags=("v2",)),
        Instance("a2", "api", "Alpha", "10.0.0.2", 81, weight=2, priority=1),
        Instance("a3", "api", "Alpha", "10.0.0.3", 82, weight=0, priority=2),
        Instance("a4", "api", "Alpha", "10.0.0.4", 83, weight=1, priority=1, discoverable=False),
        Instance("db", "db", "Alpha", "10.0.0.5", 5432, checks=critical),
        Instance("hidden", "hidden", "Alpha", "10.0.0.6", 1, discoverable=False),
    ])
    current = catalog.current
    catalog.store.close()
    return current


A, NS, SOA, TXT, AAAA, SRV, ANY = 1, 2, 6, 16, 28, 33, 255


@pytest.mark.parametrize(
    ("name", "qtype", "outcome"),
    [
        ("api.service.dc1.internal", A, Success),
        ("v2.api.service.dc1.internal", A, Success),
        ("v3.api.service.dc1.internal", A, NameError),
        ("_api._tcp.service.dc1.internal", SRV, Success),
        ("_api._v2.service.dc1.internal", SRV, Success),
        ("_api._tcp.service.dc1.internal", A, NoData),
        ("api.service.dc1.internal", AAAA, NoData),
        ("api.service.dc1.internal", TXT, NoData),
        ("api.service.dc1.internal", SRV, Success),
        ("v2.api.service.dc1.internal", SRV, Success),
        ("db.service.dc1.internal", SRV, NoData),
        ("db.service.dc1.internal", A, NoData),
        ("hidden.service.dc1.internal", A, NameError),
        ("alpha.node.dc1.internal", A, Success),
        ("beta.node.dc1.internal", A, NameError),
        ("0a000009.addr.dc1.internal", A, Success),
        ("0a00000.addr.dc1.internal", A, NameError),
        ("dc1.internal", SOA, Success),
        ("dc1.internal", NS, Success),
        ("dc1.internal", ANY, Success),
        ("dc1.internal", A, NoData),
        ("x.y.service.dc1.internal", A, NameError),
        ("service.dc1.internal", A, NoData),
        ("node.dc1.internal", A, NoData),
        ("x.dc1.internal", A, NameError),
        ("api", A, Success),
        ("_api._tcp", SRV, Success),
        ("_api._v2", SRV, OutOfZone),
        ("nosuch", A, OutOfZone),
        ("internal", SOA, OutOfZone),
        ("example.com", A, OutOfZone),
    ],
)
def test_outcomes(snapshot: Snapshot, name: str, qtype: int, outcome: type) -> None:
    assert type(answers.resolve(snapshot, tuple(name.split(".")), qtype, 5)) is outcome


def test_srv_weights_are_shares_of_their_priority(snapshot: Snapshot) -> None:
    """CoreDNS scaling: 100 * weight / total at that priority, floored, at least 1."""
    result = answers.resolve(snapshot, ("_api", "_tcp", "service", "dc1", "internal"), SRV, 5)
    assert isinstance(result, Success)
    srv = [r.rdata for r in result.answer if isinstance(r.rdata, SRVData)]
    assert len(srv) == len(result.answer)
    got = sorted((d.port, d.priority, d.weight, str(d.target)) for d in srv)
    assert got == [
        (80, 1, 33, "alpha.node.dc1.internal."),
        (81, 1, 66, "0a000002.addr.dc1.internal."),
        (82, 2, 1, "0a000003.addr.dc1.internal."),
    ]
    assert result.rotate
    assert sorted(str(r.owner) for r in result.additional) == [
        "0a000002.addr.dc1.internal.", "0a000003.addr.dc1.internal.", "alpha.node.dc1.internal."
    ]


def test_negative_outcomes_carry_the_zone_soa(snapshot: Snapshot) -> None:
    result = answers.resolve(snapshot, ("nosuch", "service", "dc1", "internal"), A, 7)
    assert isinstance(result, NameError)
    assert result.soa.owner == "dc1.internal."
    assert isinstance(result.soa.rdata, SOAData) and result.soa.rdata.times == (snapshot.index, 3600, 600, 86400, 7)


@pytest.mark.parametrize(
    ("name", "qtype", "bare", "outcome"),
    [
        ("api", A, answers.BareNames.ALL, Success),
        ("_api._tcp", SRV, answers.BareNames.ALL, Success),
        ("api", A, answers.BareNames.SRV, OutOfZone),
        ("api", SRV, answers.BareNames.SRV, OutOfZone),
        ("_api._tcp", SRV, answers.BareNames.SRV, Success),
        ("_api._udp", SRV, answers.BareNames.SRV, Success),
        ("api", A, answers.BareNames.OFF, OutOfZone),
        ("_api._tcp", SRV, answers.BareNames.OFF, OutOfZone),
        # Under the domain, nothing changes.
        ("api.service.dc1.internal", A, answers.BareNames.OFF, Success),
        ("_api._tcp.service.dc1.internal", SRV, answers.BareNames.OFF, Success),
    ],
)
def test_bare_names_answer_as_dns_bare_names_says(
    snapshot: Snapshot, name: str, qtype: int, bare: answers.BareNames, outcome: type
) -> None:
    assert type(answers.resolve(snapshot, tuple(name.split(".")), qtype, 5, bare)) is outcome


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """Alpha's own web instances, and Beta's from the fleet (one at Alpha's own priority, one after)."""
    path: Path = tmp_path_factory.mktemp("fleet")
    catalog = Catalog(Store(path / "p.db"), NodeIdentity("alpha", "10.0.0.1"), "internal")
    catalog.apply_file("f.yaml", [
        Instance("w1", "web", "alpha", "10.0.0.1", 80, priority=2, address_is_node=True),
        Instance("w2", "web", "alpha", "10.0.0.2", 80, priority=2),
    ])
    theirs = [Instance(f"b{n}", "web", "beta", f"10.0.1.{n}", 80, priority=p, source=CLUSTER)
              for n, p in ((1, 1), (2, 2), (3, 2), (4, 3))]
    catalog.apply_remote(RemoteBatch(instances={i.key: Entry(i, Status.PASSING) for i in theirs},
                                     nodes={"beta": Node("beta", "10.0.1.100")}))
    current = catalog.current
    catalog.store.close()
    return current


def test_prefer_local_puts_ours_first_in_every_rotation(fleet: Snapshot) -> None:
    name = ("web", "service", "internal")
    plain = answers.resolve(fleet, name, A, 5)
    assert isinstance(plain, Success) and plain.groups == ()
    result = answers.resolve(fleet, name, A, 5, prefer_local=True)
    assert isinstance(result, Success) and result.groups == (2, 4)
    assert [r.rdata.address for r in result.answer[:2]] == ["10.0.0.1", "10.0.0.2"]  # type: ignore[union-attr]
    query = wire.parse_query(dns.message.make_query("web.service.internal", "A").to_wire(), True)
    compiled = wire.compile_reply(query, wire.Sections(0, result.answer, 8, result.groups), 1232, ra=False)
    firsts = set()
    for rotation in range(len(compiled.tails)):
        reply = dns.message.from_wire(compiled.reply(b"\0\0", query.question, rotation))
        addresses = [rr.address for rrset in reply.answer for rr in rrset]
        assert set(addresses[:2]) == {"10.0.0.1", "10.0.0.2"} and len(addresses) == 6
        firsts.add(addresses[0])
    assert firsts == {"10.0.0.1", "10.0.0.2"}  # ours still take turns


def test_prefer_local_leads_each_srv_priority_with_ours(fleet: Snapshot) -> None:
    result = answers.resolve(fleet, ("_web", "_tcp", "service", "internal"), SRV, 5, prefer_local=True)
    assert isinstance(result, Success)
    order = [(r.rdata.priority, str(r.rdata.target).split(".")[0]) for r in result.answer]  # type: ignore[union-attr]
    assert order[0] == (1, "0a000101")  # priority first: theirs at 1 still lead
    assert [target for priority, target in order if priority == 2][:2] == ["alpha", "0a000002"]
    assert result.groups == (1, 2, 2, 1)


# -- across snapshots: what a zone takes over from the one before -----------------------------------


def fleet_snapshot(nodes: dict[str, Node], *instances: Instance) -> Snapshot:
    entries: dict[Key, Entry | None] = {i.key: Entry(i, Status.PASSING) for i in instances}
    return Snapshot.first("internal", "n1", frozenset({Status.PASSING}), Change(entries, nodes, (), {}))


def test_a_node_that_joins_later_resolves_and_one_that_left_does_not() -> None:
    n1, n2 = Node("n1", "10.0.0.1"), Node("N2", "10.0.0.2")
    first = fleet_snapshot({"n1": n1})
    assert type(answers.resolve(first, ("n1", "node", "internal"), A, 5)) is Success
    assert type(answers.resolve(first, ("n2", "node", "internal"), A, 5)) is NameError
    joined = first.successor(Change({}, {"n1": n1, "N2": n2}, (), {}))
    assert type(answers.resolve(joined, ("n2", "node", "internal"), A, 5)) is Success
    left = joined.successor(Change({}, {"n1": n1}, (), {}))
    assert type(answers.resolve(left, ("n2", "node", "internal"), A, 5)) is NameError


def test_tag_and_transport_parents_follow_the_instances_that_carry_them() -> None:
    """`_<tag>.service` and `_tcp.service` exist while a discoverable instance is below them."""
    nodes = {"n1": Node("n1", "10.0.0.1")}
    blue = Instance("b", "web", "n1", "10.0.0.1", 80, tags=("Blue",))
    plain = Instance("p", "db", "n1", "10.0.0.1", 81)
    current = fleet_snapshot(nodes, blue, plain)
    steps: list[tuple[dict[Key, Entry | None], type, type]] = [
        ({}, NoData, NoData),
        ({plain.key: None}, NoData, NoData),
        ({blue.key: Entry(replace(blue, discoverable=False), Status.PASSING)}, NameError, NameError),
        ({blue.key: Entry(replace(blue, tags=("green",)), Status.CRITICAL)}, NameError, NoData),
        ({blue.key: Entry(blue, Status.CRITICAL)}, NoData, NoData),
        ({blue.key: None}, NameError, NameError),
    ]
    for delta, tag_parent, transport_parent in steps:
        current = current.successor(Change(delta, nodes, (), {}))
        assert type(answers.resolve(current, ("_blue", "service", "internal"), A, 5)) is tag_parent
        assert type(answers.resolve(current, ("_tcp", "service", "internal"), A, 5)) is transport_parent
