"""The fleet's keys in etcd, as pure functions: build one, or read what one names.

    <prefix>nodes/<node>                 a node record
    <prefix>instances/<node>/<id>        an instance
    <prefix>conflicts/<a>+<b>            a conflict rule (a < b)
    <prefix>config/global/<key>          a global config value
    <prefix>config/nodes/<node>/<key>    a node's config value

Every part is checked against the registry's own name patterns, whoever wrote the
key: a key that fits no layout is a BadRecord, never a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.errors import RegistryError
from registry.names import DNS_LABEL, INSTANCE_ID

CONFIG_KEY = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
# C0 and C1 controls (tab and newline are fine in check output) and lone surrogates.
UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")

NODES = "nodes/"
INSTANCES = "instances/"
CONFLICTS = "conflicts/"
GLOBAL_CONFIG = "config/global/"
NODE_CONFIG = "config/nodes/"


class BadRecord(RegistryError):
    """The value (or the key) at `key` is refused; `reason` says why. Nothing was loaded."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"etcd key {key!r}: {reason}")


@dataclass(frozen=True, slots=True)
class NodeKey:
    node: str


@dataclass(frozen=True, slots=True)
class InstanceKey:
    node: str
    instance_id: str


@dataclass(frozen=True, slots=True)
class ConflictKey:
    rule_id: str


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """A config key; `node` None is the global default."""

    key: str
    node: str | None = None


RecordKey = NodeKey | InstanceKey | ConflictKey | ConfigKey


def check_prefix(prefix: str) -> str:
    """The configured prefix, refused unless it is an absolute path ending in '/'."""
    if not prefix.startswith("/") or not prefix.endswith("/") or "//" in prefix or UNPRINTABLE.search(prefix):
        raise ValueError(f"cluster prefix {prefix!r} must start and end with '/' (e.g. /pilotfish/)")
    return prefix


def _part(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid {what}")
    return value


def rule_id(a: str, b: str) -> str:
    """One id per unordered pair, the same on every node: `<a>+<b>`, sorted."""
    low, high = sorted((_part(a, DNS_LABEL, "service name"), _part(b, DNS_LABEL, "service name")))
    return f"{low}+{high}"


def node_key(prefix: str, node: str) -> str:
    return f"{prefix}{NODES}{_part(node, DNS_LABEL, 'node name')}"


def instance_key(prefix: str, node: str, instance_id: str) -> str:
    return f"{prefix}{INSTANCES}{_part(node, DNS_LABEL, 'node name')}/{_part(instance_id, INSTANCE_ID, 'instance id')}"


def instances_prefix(prefix: str, node: str) -> str:
    """Every instance key of one node starts with this."""
    return f"{prefix}{INSTANCES}{_part(node, DNS_LABEL, 'node name')}/"


def conflict_key(prefix: str, a: str, b: str) -> str:
    return f"{prefix}{CONFLICTS}{rule_id(a, b)}"


def config_key(prefix: str, key: str, node: str | None = None) -> str:
    """A config key, global when `node` is None. Keys outside CONFIG_KEY are not published."""
    key = _part(key, CONFIG_KEY, "config key")
    if node is None:
        return f"{prefix}{GLOBAL_CONFIG}{key}"
    return f"{prefix}{NODE_CONFIG}{_part(node, DNS_LABEL, 'node name')}/{key}"


def parse_key(prefix: str, key: str) -> RecordKey:
    """What a key under the prefix names, or BadRecord when it fits no layout."""
    if not key.startswith(prefix):
        raise BadRecord(key, f"not under the prefix {prefix!r}")
    rest = key[len(prefix):]
    parts = rest.split("/")
    try:
        if rest.startswith(NODES) and len(parts) == 2:
            return NodeKey(_part(parts[1], DNS_LABEL, "node name"))
        if rest.startswith(INSTANCES) and len(parts) == 3:
            return InstanceKey(_part(parts[1], DNS_LABEL, "node name"), _part(parts[2], INSTANCE_ID, "instance id"))
        if rest.startswith(CONFLICTS) and len(parts) == 2:
            a, plus, b = parts[1].partition("+")
            if plus and rule_id(a, b) == parts[1]:
                return ConflictKey(parts[1])
            raise ValueError(f"{parts[1]!r} is not a rule id (<a>+<b>, sorted)")
        if rest.startswith(GLOBAL_CONFIG) and len(parts) == 3:
            return ConfigKey(_part(parts[2], CONFIG_KEY, "config key"))
        if rest.startswith(NODE_CONFIG) and len(parts) == 4:
            return ConfigKey(_part(parts[3], CONFIG_KEY, "config key"), _part(parts[2], DNS_LABEL, "node name"))
    except ValueError as exc:
        raise BadRecord(key, str(exc)) from None
    raise BadRecord(key, "fits none of the fleet's key layouts")
