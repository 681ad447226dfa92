"""The fleet's values in etcd, as pure functions: encode ours, decode everyone's.

Every node writes its own keys and reads everyone else's, so a value read here was
written by a program we do not control: an older or newer pilotfish, a broken one,
or an attacker with etcd access. Decoding therefore trusts nothing. A value is
refused whole, as `BadRecord(key, reason)`, when it is too large, not UTF-8, not a
JSON object, nested too deep, holds a control character or a lone surrogate, has a
field of the wrong type, or disagrees with its own key; nothing else ever escapes.
Instances go through the same validator as an API registration, so a remote
instance is exactly as valid as a local one.

Fields we do not know are ignored, so that a newer node may add some without
cutting itself off from older ones. Encoding is canonical (sorted keys, no spaces),
so equal records are equal bytes and the publisher can skip unchanged writes. The
keys they sit under are registry.cluster.keys'.

    <prefix>nodes/<node>                 {"node", "address", "state", "reason", "version",
                                          "windows": [{"id", "instance", "kind", "reason",
                                          "drain_at", "starts", "ends", "created"}]}  (Unix seconds)
    <prefix>instances/<node>/<id>        an instance as GET /v1/services shows it, plus
                                         "address_is_node" (SRV targets name the node)
    <prefix>conflicts/<a>+<b>            {"a", "b", "type", "reason"}   (a < b)
    <prefix>config/global/<key>          {"value", "value_type"}
    <prefix>config/nodes/<node>/<key>    {"value", "value_type"}
"""

from __future__ import annotations

import ipaddress
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, cast

from registry.cluster.keys import (
    UNPRINTABLE,
    BadRecord,
    ConfigKey,
    ConflictKey,
    InstanceKey,
    NodeKey,
    parse_key,
    rule_id,
)
from registry.cluster.rawjson import TAB_OR_NEWLINE, depth, load_object
from registry.configvalues import VALUE_TYPES, cast_value
from registry.errors import ConfigValueError, ValidationError
from registry.health.outcome import OUTPUT_LIMIT
from registry.model import (
    CLUSTER,
    REGISTRATION_FIELDS,
    CheckState,
    ConflictRule,
    ConflictType,
    Entry,
    Node,
    NodeIdentity,
    Status,
)
from registry.schema import parse_registration
from registry.states import MaintenanceKind, NodeState, Window
from registry.windows import parse_time

# A json config value nested deeper than this is refused (readers print it back).
MAX_DEPTH = 32
MAX_TEXT = 1024  # reasons and versions
# A node announces its first windows (its own and its instances', soonest first) with
# their reasons cut short, so that the record stays far below rawjson.MAX_RECORD_BYTES with
# every reason at its longest; readers read no more than that either.
MAX_WINDOWS = 32
WINDOW_REASON = 200
# 9999-12-31T23:59:59Z: a later time has no RFC 3339 form for readers to print.
MAX_UNIX_TIME = 253402300800.0
# A conflict rule read from etcd says so in its `source` (rule sources are labels).
CLUSTER_RULE_SOURCE = "cluster"

# -- values -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeRecord:
    node: Node
    version: str


@dataclass(frozen=True, slots=True)
class ConfigRecord:
    """A typed config value (cast like an API PUT); `node` None is the global default."""

    key: str
    value: Any
    value_type: str
    node: str | None = None


Record = NodeRecord | Entry | ConflictRule | ConfigRecord


def encode(value: dict[str, Any]) -> bytes:
    """Canonical JSON: equal records are equal bytes.

    A lone surrogate (which the API's JSON parser lets in) cannot be UTF-8: it goes
    out as its escape, which every reader refuses, rather than failing the publish.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """`text` with what decoding refuses replaced by U+FFFD.

    For text that other programs wrote (check output, operators' reasons): a check
    that prints colours must not make its instance unreadable to the fleet.
    """
    return UNPRINTABLE.sub("\ufffd", text)


def encode_node(node: Node, version: str) -> bytes:
    return encode(
        {
            "node": node.name,
            "address": node.address,
            "state": node.state.value,
            "reason": printable(node.reason),
            "version": version,
            "windows": [
                {
                    "id": w.id,
                    "instance": w.instance,
                    "kind": w.kind.value,
                    "reason": printable(w.reason[:WINDOW_REASON]),
                    "drain_at": w.drain_at,
                    "starts": w.starts,
                    "ends": w.ends,
                    "created": w.created,
                }
                for w in node.windows[:MAX_WINDOWS]
            ],
        }
    )


def encode_instance(entry: Entry) -> bytes:
    body = entry.to_dict()
    body["address_is_node"] = entry.instance.address_is_node
    for state in cast(list[dict[str, Any]], body["check_states"]):
        state["output"] = printable(state["output"])
    if entry.maintenance_reason is not None:
        body["maintenance_reason"] = printable(entry.maintenance_reason)
    return encode(body)


def encode_conflict(rule: ConflictRule) -> bytes:
    return encode({"a": rule.a, "b": rule.b, "type": rule.type.value, "reason": rule.reason})


def encode_config(value: Any, value_type: str) -> bytes:
    return encode({"value": value, "value_type": value_type})


def decode_record(prefix: str, key: str, raw: bytes) -> Record:
    """The record at `key`, validated whole; BadRecord for anything wrong with key or value."""
    where = parse_key(prefix, key)
    body = load_object(key, raw)
    try:
        if isinstance(where, NodeKey):
            return _node(where, body)
        if isinstance(where, InstanceKey):
            # _load refused every control character but tab and newline, and every lone
            # surrogate; check output may hold a tab or a newline, a registration may not.
            # Without either anywhere in the text, the validator need not walk its strings.
            return _instance(where, body, strings_clean=not TAB_OR_NEWLINE.search(raw))
        if isinstance(where, ConflictKey):
            return _conflict(where, body)
        return _config(where, body)
    except _Refused as exc:
        raise BadRecord(key, str(exc)) from None


class _Refused(Exception):
    """Internal: a field check failed; decode_record names the key."""


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if name not in body:
        if default is ...:
            raise _Refused(f"{name}: missing")
        return default
    value = body[name]
    if isinstance(value, bool) and kind is not bool:
        raise _Refused(f"{name}: must be {_kind_name(kind)}, not a bool")
    if not isinstance(value, kind):
        raise _Refused(f"{name}: must be {_kind_name(kind)}, not {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", bool: "true or false", list: "a list", dict: "an object", int: "a number"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _text(body: dict[str, Any], name: str, limit: int = MAX_TEXT) -> str:
    value: str = _field(body, name, str, "")
    if len(value) > limit:
        raise _Refused(f"{name}: {len(value)} characters, over {limit}")
    return value


def _enum(body: dict[str, Any], name: str, make: Callable[[str], Any]) -> Any:
    value = _field(body, name, str)
    try:
        return make(value)
    except ValueError:
        raise _Refused(f"{name}: {value[:40]!r} is not a known value") from None


def _node(where: NodeKey, body: dict[str, Any]) -> NodeRecord:
    name = _field(body, "node", str)
    if name != where.node:
        raise _Refused(f"node: {name[:64]!r} disagrees with the key's node {where.node!r}")
    address = _field(body, "address", str)
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        raise _Refused(f"address: {address[:64]!r} is not an IPv4 or IPv6 address") from None
    state = _enum(body, "state", NodeState)
    items = _field(body, "windows", list, [])
    windows = []
    for n, item in enumerate(items[:MAX_WINDOWS]):
        if not isinstance(item, dict):
            raise _Refused(f"windows[{n}]: must be an object, not {type(item).__name__}")
        try:
            windows.append(_window(name, item))
        except _Refused as exc:
            raise _Refused(f"windows[{n}].{exc}") from None
    windows.sort(key=lambda w: (w.drain_at, w.id))
    return NodeRecord(Node(name, address, state, _text(body, "reason"), tuple(windows)), _text(body, "version", 64))


def _window(node: str, item: dict[str, Any]) -> Window:
    times = []
    for name in ("drain_at", "starts", "created"):
        times.append(_time(item, name))
    ends = _time(item, "ends") if item.get("ends") is not None else None
    drain_at, starts, created = times
    if not drain_at <= starts or (ends is not None and not starts < ends):
        raise _Refused("times: must be drain_at <= starts < ends")
    window_id = _field(item, "id", int)
    if not 0 <= window_id < 2**63:
        raise _Refused(f"id: {window_id} is out of range")
    kind = _enum(item, "kind", MaintenanceKind)
    return Window(window_id, node, _text(item, "instance", 256), kind, _text(item, "reason", WINDOW_REASON), drain_at, starts, ends, created)


def _time(item: dict[str, Any], name: str) -> float:
    """Unix seconds, finite and within what a reader can print as RFC 3339."""
    value = _field(item, name, (int, float))
    if not 0 <= value < MAX_UNIX_TIME:  # compared before float(): an int may be too long for one
        raise _Refused(f"{name}: {str(value)[:40]} is not a time")
    return float(value)


def _instance(where: InstanceKey, body: dict[str, Any], strings_clean: bool) -> Entry:
    for name in ("id", "node"):
        value = _field(body, name, str)
        expected = where.instance_id if name == "id" else where.node
        if value != expected:
            raise _Refused(f"{name}: {value[:64]!r} disagrees with the key's {name} {expected!r}")
    address = _field(body, "address", str)
    address_is_node = _field(body, "address_is_node", bool, False)
    registration = {name: body[name] for name in REGISTRATION_FIELDS if name in body}
    if address_is_node:
        # The address came from the node: register without one so the instance says so.
        del registration["address"]
    try:
        instance = parse_registration(registration, NodeIdentity(where.node, address), CLUSTER, strings_clean)
    except ValidationError as exc:
        raise _Refused("; ".join(f"{p.field}: {p.message}" for p in exc.problems)) from None
    # The validator reads "1000...0s" (400 digits) as infinity, which no reader can print.
    durations = [instance.ttl]
    for check in instance.checks:
        durations += [check.interval, check.timeout, check.deregister_after, check.ttl]
    if not all(d is None or math.isfinite(d) for d in durations):
        raise _Refused("a duration is too long to be one")
    status = _enum(body, "status", Status)
    check_ids = {check.id for check in instance.checks}
    states: list[CheckState] = []
    for n, item in enumerate(_field(body, "check_states", list, [])):
        if not isinstance(item, dict):
            raise _Refused(f"check_states[{n}]: must be an object, not {type(item).__name__}")
        try:
            states.append(_check_state(item, check_ids - {s.check_id for s in states}))
        except _Refused as exc:
            raise _Refused(f"check_states[{n}].{exc}") from None
    reason = _field(body, "maintenance_reason", str, None)
    if reason is not None and len(reason) > MAX_TEXT:
        raise _Refused(f"maintenance_reason: {len(reason)} characters, over {MAX_TEXT}")
    held = _field(body, "maintenance_state", str, None)
    if held is None or status is not Status.MAINTENANCE:
        return Entry(instance, status, tuple(states), reason)
    # None (JSON null) is "until an operator ends it".
    until_text = _field(body, "maintenance_until", str, None) if body.get("maintenance_until") is not None else None
    until = None
    if until_text is not None:
        try:
            if until_text.startswith("+"):
                raise ValueError("a time relative to nothing")
            until = parse_time(until_text, 0.0, "maintenance_until")
        except (ValidationError, ValueError):
            raise _Refused(f"maintenance_until: {until_text[:64]!r} is not an RFC 3339 time") from None
    return Entry(instance, status, tuple(states), reason, _enum(body, "maintenance_state", NodeState), until)


def _check_state(item: dict[str, Any], open_ids: set[str]) -> CheckState:
    check_id = _field(item, "id", str)
    if check_id not in open_ids:
        raise _Refused(f"id: {check_id[:64]!r} is not a check of this instance (or is listed twice)")
    try:
        updated = float(_field(item, "updated", (int, float), 0.0))
    except OverflowError:
        updated = math.inf
    if not math.isfinite(updated) or updated < 0:
        raise _Refused("updated: not a time")
    return CheckState(check_id, _enum(item, "status", Status), _text(item, "output", OUTPUT_LIMIT), updated)


def _conflict(where: ConflictKey, body: dict[str, Any]) -> ConflictRule:
    a, b = _field(body, "a", str), _field(body, "b", str)
    try:
        pair = rule_id(a, b)
    except ValueError as exc:
        raise _Refused(f"a/b: {exc}") from None
    if a == b:
        raise _Refused("a/b: a service cannot conflict with itself")
    if pair != where.rule_id:
        raise _Refused(f"a/b: {pair!r} disagrees with the key's rule {where.rule_id!r}")
    reason = _text(body, "reason")
    if not reason.strip():
        raise _Refused("reason: missing")
    return ConflictRule(a, b, _enum(body, "type", ConflictType), reason, id=where.rule_id, source=CLUSTER_RULE_SOURCE)


def _config(where: ConfigKey, body: dict[str, Any]) -> ConfigRecord:
    value_type = _field(body, "value_type", str)
    if value_type not in VALUE_TYPES:
        raise _Refused(f"value_type: must be one of {', '.join(VALUE_TYPES)}")
    if "value" not in body:
        raise _Refused("value: missing")
    try:
        value = cast_value(where.key, body["value"], value_type)
    except ConfigValueError as exc:
        raise _Refused(f"value: {exc}") from None
    if depth(value) > MAX_DEPTH:
        raise _Refused(f"value: nested deeper than {MAX_DEPTH}")
    return ConfigRecord(where.key, value, value_type, where.node)
