"""answers.py: a snapshot and a question give a typed outcome, as a table of cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.catalog import Catalog
from registry.model import CheckKind, CheckSpec, Instance, NodeIdentity
from registry.snapshot import Snapshot
from registry.store import Store
from resolver.dns import answers
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
