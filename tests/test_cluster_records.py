"""registry.cluster.records: the fleet's keys and values, and hostile values refused whole."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.cluster import etcd, rawjson, records
from registry.cluster.keys import (
    BadRecord,
    ConfigKey,
    ConflictKey,
    InstanceKey,
    NodeKey,
    check_prefix,
    config_key,
    conflict_key,
    instance_key,
    instances_prefix,
    node_key,
    parse_key,
)
from registry.cluster.records import (
    ConfigRecord,
    NodeRecord,
    decode_record,
    encode_config,
    encode_conflict,
    encode_instance,
    encode_node,
)
from registry.model import CLUSTER, CheckState, ConflictRule, ConflictType, Entry, Node, NodeIdentity, Status
from registry.schema import load_text
from registry.states import MaintenanceKind, NodeState, Window

P = "/pilotfish/"
NODE = NodeIdentity("web1", "192.0.2.10")

RICH = """
services:
  - name: web
    port: 8080
    protocol: http
    endpoint_path: /api
    version: "1.10"
    tags: [primary, v2]
    meta: {team: platform}
    weight: 5
    priority: 2
    ttl: 30s
    checks:
      - http: http://127.0.0.1:8080/health
        interval: 10s
        headers: {X-Probe: "yes"}
        status: [200, 204]
        body: ok
        method: HEAD
        deregister_after: 5m
        name: web health
      - tcp: 127.0.0.1:8080
        rise: 2
        fall: 3
      - exec: ["/bin/check", "--fast"]
      - systemd: web.service
      - ttl: 15s
  - name: dns
    port: 53
    address: 10.0.0.5
    transport: udp
    discoverable: false
"""


def rich_entries() -> list[Entry]:
    web, dns = load_text(RICH, "/etc/pilotfish/services.d/web.yaml", NODE)
    states = tuple(CheckState(c.id, Status.PASSING, "ok\tfine\nreally", 1700000000.5) for c in web.checks)
    return [Entry(web, Status.WARNING, states, "patching"), Entry(dns, Status.PASSING)]


WEB_RAW = encode_instance(rich_entries()[0])


def web_value() -> dict[str, Any]:
    """The rich web instance as its owner publishes it, a fresh copy for a case to spoil."""
    value: dict[str, Any] = json.loads(WEB_RAW)
    return value


WEB_KEY = instance_key(P, "web1", "web-8080")


# -- keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, parsed",
    [
        (node_key(P, "web1"), NodeKey("web1")),
        (instance_key(P, "web1", "web-8080"), InstanceKey("web1", "web-8080")),
        (instance_key(P, "web1", "api:v2@blue.1"), InstanceKey("web1", "api:v2@blue.1")),
        (conflict_key(P, "redis-server", "redis-stack-server"), ConflictKey("redis-server+redis-stack-server")),
        (conflict_key(P, "redis-stack-server", "redis-server"), ConflictKey("redis-server+redis-stack-server")),
        (config_key(P, "dns.ttl"), ConfigKey("dns.ttl")),
        (config_key(P, "dns.ttl", "web1"), ConfigKey("dns.ttl", "web1")),
    ],
)
def test_keys_parse_back_to_what_built_them(key: str, parsed: object) -> None:
    assert parse_key(P, key) == parsed


def test_key_layouts_are_the_designs() -> None:
    assert node_key(P, "web1") == "/pilotfish/nodes/web1"
    assert instance_key(P, "web1", "web-8080") == "/pilotfish/instances/web1/web-8080"
    assert instances_prefix(P, "web1") == "/pilotfish/instances/web1/"
    assert conflict_key(P, "nginx", "apache2") == "/pilotfish/conflicts/apache2+nginx"
    assert config_key(P, "k") == "/pilotfish/config/global/k"
    assert config_key(P, "k", "web1") == "/pilotfish/config/nodes/web1/k"


@pytest.mark.parametrize(
    "key, reason",
    [
        ("/other/nodes/web1", "not under the prefix"),
        (P + "nodes/", "not a valid node name"),
        (P + "nodes/Web1", "not a valid node name"),
        (P + "nodes/web1/extra", "fits none"),
        (P + "instances/web1", "fits none"),
        (P + "instances/web1/", "not a valid instance id"),
        (P + "instances/web_1/x", "not a valid node name"),
        (P + "instances/web1/a/b", "fits none"),
        (P + "instances/web1/-x", "not a valid instance id"),
        (P + "conflicts/nginx+apache2", "not a rule id"),
        (P + "conflicts/nginx", "not a rule id"),
        (P + "conflicts/a+B", "not a valid service name"),
        (P + "config/global/a b", "not a valid config key"),
        (P + "config/global/" + "k" * 129, "not a valid config key"),
        (P + "config/nodes/web1", "fits none"),
        (P + "config/nodes/WEB/k", "not a valid node name"),
        (P + "config/other/k", "fits none"),
        (P + "leader", "fits none"),
        (P + "nodes/web1\x00", "not a valid node name"),
    ],
)
def test_keys_that_fit_no_layout_are_refused(key: str, reason: str) -> None:
    with pytest.raises(BadRecord) as caught:
        parse_key(P, key)
    assert caught.value.key == key and reason in caught.value.reason


@pytest.mark.parametrize(
    "build",
    [
        lambda: node_key(P, "Web1"),
        lambda: instance_key(P, "web1", "a/b"),
        lambda: conflict_key(P, "a", "B"),
        lambda: config_key(P, "a/b"),
        lambda: config_key(P, "k", "no_de"),
    ],
)
def test_builders_refuse_parts_that_would_break_the_layout(build: Callable[[], str]) -> None:
    with pytest.raises(ValueError):
        build()


@pytest.mark.parametrize("prefix", ["pilotfish/", "/pilotfish", "/a//b/", "", "/a\x00/"])
def test_a_prefix_must_be_an_absolute_path_ending_in_a_slash(prefix: str) -> None:
    with pytest.raises(ValueError):
        check_prefix(prefix)
    assert check_prefix("/pilotfish/") == "/pilotfish/" and check_prefix("/") == "/"


# -- round trips --------------------------------------------------------------


def test_an_instance_comes_back_as_its_owner_held_it_but_from_the_cluster() -> None:
    for entry in rich_entries():
        decoded = decode_record(P, instance_key(P, "web1", entry.instance.id), encode_instance(entry))
        assert isinstance(decoded, Entry)
        assert decoded.instance == dataclasses.replace(entry.instance, source=CLUSTER)
        assert (decoded.status, decoded.checks, decoded.maintenance_reason) == (
            entry.status, entry.checks, entry.maintenance_reason,
        )
    web, dns = (decode_record(P, instance_key(P, "web1", e.instance.id), encode_instance(e)) for e in rich_entries())
    assert isinstance(web, Entry) and isinstance(dns, Entry)
    # The node's own address stays the node's (SRV targets name the node); 10.0.0.5 does not.
    assert (web.instance.address, web.instance.address_is_node) == ("192.0.2.10", True)
    assert (dns.instance.address, dns.instance.address_is_node) == ("10.0.0.5", False)


def test_encoding_is_canonical_so_unchanged_records_are_equal_bytes() -> None:
    first, second = rich_entries(), rich_entries()
    assert [encode_instance(e) for e in first] == [encode_instance(e) for e in second]
    raw = encode_instance(first[0])
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()


def test_other_records_round_trip() -> None:
    node = Node("web1", "2001:db8::1", NodeState.MAINTENANCE, "disk swap")
    assert decode_record(P, node_key(P, "web1"), encode_node(node, "0.1.0")) == NodeRecord(node, "0.1.0")
    rule = ConflictRule("redis-stack-server", "redis-server", ConflictType.PORT, "both bind 6379", id=7)
    decoded = decode_record(P, conflict_key(P, rule.a, rule.b), encode_conflict(rule))
    assert isinstance(decoded, ConflictRule)
    assert (decoded.a, decoded.b, decoded.type, decoded.reason, decoded.source) == (
        "redis-server", "redis-stack-server", ConflictType.PORT, "both bind 6379", "cluster",
    )
    for value, value_type in [("x", "string"), (30, "int"), (True, "bool"), ({"a": [1, None]}, "json")]:
        key = config_key(P, "k", "web1")
        assert decode_record(P, key, encode_config(value, value_type)) == ConfigRecord("k", value, value_type, "web1")


def test_a_node_record_carries_its_maintenance_windows_soonest_first_and_bounded() -> None:
    windows = tuple(
        Window(n, "web1", "web-8080" if n % 2 else "", MaintenanceKind.PLANNED, "r" * 1024, 1000.0 + n, 2000.0 + n,
               None if n == 3 else 3000.0 + n, 900.0)
        for n in range(40)
    )
    node = Node("web1", "192.0.2.10", NodeState.DRAINING, "kernel", windows)
    raw = encode_node(node, "1")
    assert len(raw) < rawjson.MAX_RECORD_BYTES // 2  # every reason at its longest
    decoded = decode_record(P, node_key(P, "web1"), raw)
    assert isinstance(decoded, NodeRecord) and decoded.node.state is NodeState.DRAINING
    assert len(decoded.node.windows) == records.MAX_WINDOWS
    assert decoded.node.windows[3] == dataclasses.replace(windows[3], reason="r" * records.WINDOW_REASON)


def test_an_instance_held_by_maintenance_says_which_part_and_until_when() -> None:
    web = rich_entries()[0]
    held = dataclasses.replace(web, status=Status.MAINTENANCE, maintenance_reason="kernel",
                               maintenance_state=NodeState.DRAINING, maintenance_until=1_900_000_000.0)
    decoded = decode_record(P, WEB_KEY, encode_instance(held))
    assert isinstance(decoded, Entry)
    assert (decoded.status, decoded.maintenance_state, decoded.maintenance_until) == (
        Status.MAINTENANCE, NodeState.DRAINING, 1_900_000_000.0)
    until_ended = dataclasses.replace(held, maintenance_state=NodeState.MAINTENANCE, maintenance_until=None)
    decoded = decode_record(P, WEB_KEY, encode_instance(until_ended))
    assert isinstance(decoded, Entry)
    assert (decoded.maintenance_state, decoded.maintenance_until) == (NodeState.MAINTENANCE, None)


def test_text_from_other_programs_is_made_printable_before_it_is_published() -> None:
    web = rich_entries()[0]
    noisy = dataclasses.replace(
        web,
        checks=(CheckState(web.checks[0].check_id, Status.CRITICAL, "\x1b[31mdown\x1b[0m\r\n", 1.0),),
        maintenance_reason="swap\x00",
    )
    decoded = decode_record(P, WEB_KEY, encode_instance(noisy))
    assert isinstance(decoded, Entry)
    assert decoded.checks[0].output == "\ufffd[31mdown\ufffd[0m\ufffd\n"
    assert decoded.maintenance_reason == "swap\ufffd"
    node = Node("web1", "192.0.2.10", NodeState.DEGRADED, "cpu\x07")
    assert decode_record(P, node_key(P, "web1"), encode_node(node, "1")) == NodeRecord(
        dataclasses.replace(node, reason="cpu\ufffd"), "1"
    )


def test_the_record_limit_is_the_clients_default() -> None:
    assert rawjson.MAX_RECORD_BYTES == etcd.MAX_VALUE_BYTES


# -- hostile values -------------------------------------------------------------


def spoil(change: Callable[[dict[str, Any]], object]) -> bytes:
    value = web_value()
    change(value)
    return json.dumps(value).encode()


def check_state(n: int, **fields: Any) -> Callable[[dict[str, Any]], object]:
    return lambda v: v["check_states"][n].update(fields)


NODE_VALUE = {"node": "web1", "address": "192.0.2.10", "state": "online", "reason": "", "version": "0.1.0"}


def window_value(**fields: Any) -> dict[str, Any]:
    return {"id": 1, "instance": "", "kind": "planned", "reason": "kernel", "drain_at": 100, "starts": 150,
            "ends": 300, "created": 90, **fields}


def node_value(**fields: Any) -> bytes:
    return json.dumps({**NODE_VALUE, **fields}).encode()


HOSTILE: list[tuple[str, str, bytes, str]] = [
    # (case, key, raw value, reason fragment)
    ("not UTF-8", WEB_KEY, b'{"id": "\xff"}', "not UTF-8"),
    ("not JSON", WEB_KEY, b"{'id': 1}", "not valid JSON"),
    ("truncated", WEB_KEY, WEB_RAW[:-1], "not valid JSON"),
    ("a list", WEB_KEY, b"[1, 2]", "JSON object, not list"),
    ("a string", WEB_KEY, b'"web"', "JSON object, not str"),
    ("NaN", WEB_KEY, spoil(lambda v: v.update(weight=float("nan"))), "NaN is not a JSON value"),
    ("duplicate field", WEB_KEY, b'{"id": "web-8080", "id": "other"}', "duplicate field 'id'"),
    ("deep", WEB_KEY, b'{"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "over 65536"),
    ("deep within the limit", WEB_KEY, b'{"x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", "nested too deep"),
    ("huge digits", WEB_KEY, b'{"weight": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ("too large", WEB_KEY, spoil(lambda v: v["meta"].update(pad="x" * 70_000)), "over 65536"),
    ("escaped NUL", WEB_KEY, spoil(lambda v: v.update(version="1\x00")), "control character"),
    ("escape sequence", WEB_KEY, spoil(lambda v: v["meta"].update(team="\x1b[2J")), "control character"),
    ("C1 control", WEB_KEY, spoil(lambda v: v.update(version="1\x85")), "control character"),
    ("raw C1 control", WEB_KEY, b'{"version": "1\xc2\x85"}', "control character"),
    ("lone surrogate", WEB_KEY, spoil(lambda v: v["meta"].update(team="\ud800")), "lone surrogate"),
    ("control in a field name", WEB_KEY, spoil(lambda v: v.update({"x\x07": 1})), "control character"),
    ("node disagrees with key", WEB_KEY, spoil(lambda v: v.update(node="db1")), "disagrees with the key's node"),
    ("id disagrees with key", WEB_KEY, spoil(lambda v: v.update(id="web-9090")), "disagrees with the key's id"),
    ("node missing", WEB_KEY, spoil(lambda v: v.pop("node")), "node: missing"),
    ("address missing", WEB_KEY, spoil(lambda v: v.pop("address")), "address: missing"),
    ("status missing", WEB_KEY, spoil(lambda v: v.pop("status")), "status: missing"),
    ("unknown status", WEB_KEY, spoil(lambda v: v.update(status="fine")), "is not a known value"),
    ("status a number", WEB_KEY, spoil(lambda v: v.update(status=1)), "must be a string"),
    ("port a string", WEB_KEY, spoil(lambda v: v.update(port="8080")), "port: must be an integer"),
    ("port out of range", WEB_KEY, spoil(lambda v: v.update(port=70000)), "outside 1..65535"),
    ("bad name", WEB_KEY, spoil(lambda v: v.update(name="Web!")), "name:"),
    ("bad address", WEB_KEY, spoil(lambda v: v.update(address="10.0.0.300", address_is_node=False)), "address:"),
    ("address_is_node not bool", WEB_KEY, spoil(lambda v: v.update(address_is_node="yes")), "true or false"),
    ("meta not strings", WEB_KEY, spoil(lambda v: v["meta"].update(team=["a"])), "meta.team"),
    ("bad check", WEB_KEY, spoil(lambda v: v["checks"][0].update(interval="fast")), "checks[0].interval"),
    ("endless ttl", WEB_KEY, spoil(lambda v: v.update(ttl="1" + "0" * 400 + "s")), "longer than the limit of one year"),
    ("check_states not a list", WEB_KEY, spoil(lambda v: v.update(check_states={})), "must be a list"),
    ("check state not an object", WEB_KEY, spoil(lambda v: v["check_states"].append("x")), "must be an object"),
    ("check state of no check", WEB_KEY, spoil(check_state(0, id="other:tcp")), "not a check of this instance"),
    ("check state twice", WEB_KEY, spoil(lambda v: v["check_states"].append(v["check_states"][0])), "listed twice"),
    ("check state bad status", WEB_KEY, spoil(check_state(0, status="ok")), "check_states[0].status"),
    ("check output too long", WEB_KEY, spoil(check_state(1, output="x" * 5000)), "over 4096"),
    ("check updated a bool", WEB_KEY, spoil(check_state(0, updated=True)), "not a bool"),
    ("check updated negative", WEB_KEY, spoil(check_state(0, updated=-1)), "not a time"),
    ("check updated past a float", WEB_KEY, spoil(check_state(0, updated=10**400)), "not a time"),
    ("maintenance reason long", WEB_KEY, spoil(lambda v: v.update(maintenance_reason="x" * 2000)), "over 1024"),
    ("node record disagrees", node_key(P, "web1"), node_value(node="web2"), "disagrees with the key's node"),
    ("node record bad address", node_key(P, "web1"), node_value(address="web1.example"), "not an IPv4 or IPv6"),
    ("node record bad state", node_key(P, "web1"), node_value(state="happy"), "state:"),
    ("node record reason a number", node_key(P, "web1"), node_value(reason=5), "reason: must be a string"),
    ("node record address missing", node_key(P, "web1"), b'{"node": "web1", "state": "online"}', "address: missing"),
    ("node record long version", node_key(P, "web1"), node_value(version="v" * 65), "over 64"),
    ("window not an object", node_key(P, "web1"), node_value(windows=[1]), "windows[0]: must be an object"),
    ("window bad kind", node_key(P, "web1"), node_value(windows=[window_value(kind="soon")]), "windows[0].kind:"),
    ("window ends first", node_key(P, "web1"), node_value(windows=[window_value(ends=50)]), "drain_at <= starts < ends"),
    ("window drains after it starts", node_key(P, "web1"), node_value(windows=[window_value(drain_at=200)]),
     "drain_at <= starts"),
    ("window past year 9999", node_key(P, "web1"), node_value(windows=[window_value(ends=10**400)]), "is not a time"),
    ("window before 1970", node_key(P, "web1"), node_value(windows=[window_value(drain_at=-1)]), "is not a time"),
    ("window time a string", node_key(P, "web1"), node_value(windows=[window_value(starts="soon")]),
     "starts: must be"),
    ("window long reason", node_key(P, "web1"), node_value(windows=[window_value(reason="r" * 201)]), "over 200"),
    ("window id a bool", node_key(P, "web1"), node_value(windows=[window_value(id=True)]), "id: must be"),
    ("instance held until +30m", WEB_KEY, spoil(lambda v: v.update(status="maintenance", maintenance_state="draining",
                                                                   maintenance_until="+30m")), "not an RFC 3339"),
    ("instance held in a bad state", WEB_KEY, spoil(lambda v: v.update(status="maintenance", maintenance_state="nap")),
     "maintenance_state:"),
    ("conflict pair disagrees", conflict_key(P, "a", "b"), b'{"a": "a", "b": "c", "type": "port", "reason": "r"}',
     "disagrees with the key's rule"),
    ("conflict with itself", P + "conflicts/a+a", b'{"a": "a", "b": "a", "type": "port", "reason": "r"}', "itself"),
    ("conflict bad type", conflict_key(P, "a", "b"), b'{"a": "a", "b": "b", "type": "cpu", "reason": "r"}', "type:"),
    ("conflict no reason", conflict_key(P, "a", "b"), b'{"a": "a", "b": "b", "type": "port", "reason": " "}', "reason"),
    ("conflict bad name", conflict_key(P, "a", "b"), b'{"a": "A", "b": "b", "type": "port", "reason": "r"}', "a/b:"),
    ("config bad type", config_key(P, "k"), b'{"value": "1", "value_type": "float"}', "value_type:"),
    ("config not an int", config_key(P, "k"), b'{"value": "many", "value_type": "int"}', "is not an int"),
    ("config no value", config_key(P, "k"), b'{"value_type": "string"}', "value: missing"),
    ("config deep json", config_key(P, "k"), b'{"value": ' + b"[" * 40 + b"]" * 40 + b', "value_type": "json"}',
     "nested deeper than 32"),
    ("bad key", P + "instances/web1", WEB_RAW, "fits none"),
]


@pytest.mark.parametrize("case, key, raw, reason", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_values_are_refused_naming_the_key_and_the_reason(case: str, key: str, raw: bytes, reason: str) -> None:
    with pytest.raises(BadRecord) as caught:
        decode_record(P, key, raw)
    assert caught.value.key == key
    assert reason in caught.value.reason, caught.value.reason


def test_fields_a_newer_node_adds_are_ignored() -> None:
    raw = spoil(lambda v: v.update(zone="eu-1", weights={"passing": 1}))
    decoded = decode_record(P, WEB_KEY, raw)
    assert isinstance(decoded, Entry) and decoded.instance.name == "web"


def test_characters_beyond_the_bmp_pass_however_they_are_escaped() -> None:
    fishy = dataclasses.replace(rich_entries()[0].instance, meta={"team": "\U0001f41f fish"})
    ours = encode_instance(Entry(fishy, Status.PASSING))
    ascii_only = json.dumps(json.loads(ours)).encode()  # the fish as a surrogate pair of escapes
    assert b"\\ud83d\\udc1f" in ascii_only
    for raw in (ours, ascii_only):
        decoded = decode_record(P, WEB_KEY, raw)
        assert isinstance(decoded, Entry) and decoded.instance.meta["team"] == "\U0001f41f fish"


def test_a_lone_surrogate_is_published_but_refused_by_readers() -> None:
    ours = dataclasses.replace(rich_entries()[0].instance, meta={"team": "\udc80"})
    with pytest.raises(BadRecord) as caught:
        decode_record(P, WEB_KEY, encode_instance(Entry(ours, Status.PASSING)))
    assert "lone surrogate" in caught.value.reason


def test_a_backslash_before_u0000_is_text_not_a_control_character() -> None:
    raw = spoil(lambda v: v.update(version="c:\\u0000"))
    decoded = decode_record(P, WEB_KEY, raw)
    assert isinstance(decoded, Entry) and decoded.instance.version == "c:\\u0000"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
FIELDS = st.sampled_from(sorted(web_value()))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(FIELDS, JSON, max_size=6))
def test_no_instance_value_escapes_as_anything_but_bad_record(changes: dict[str, Any]) -> None:
    value = {**web_value(), **changes}
    try:
        decoded = decode_record(P, WEB_KEY, json.dumps(value).encode())
    except BadRecord:
        return
    assert isinstance(decoded, Entry)
    decoded.to_dict()  # and what was accepted can be served back


ANY_KEY = st.sampled_from([WEB_KEY, node_key(P, "web1"), conflict_key(P, "a", "b"), config_key(P, "k")])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), ANY_KEY)
def test_no_byte_string_escapes_as_anything_but_bad_record(raw: bytes, key: str) -> None:
    try:
        decode_record(P, key, raw)
    except BadRecord:
        pass
