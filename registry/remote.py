"""What the fleet holds that this node does not own: other nodes' instances and records, fleet rules and config.

Fleet mode (registry.cluster) reads these from etcd and hands them to the catalog as
`RemoteBatch`es; the catalog keeps them here, apart from the instances it owns
(registry.instances), because nothing here is checked, expired, judged for conflicts
or written to SQLite on this node: the owner did all that and published the result.

Another node's word never overrides ours: an instance or node record naming this
node is ignored (our files and SQLite are the truth for it). And a fleet cannot make
this daemon hold without limit: past `RemoteLimits` a new key is refused and counted
(what is already held stays, and changes to it still apply).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, TypeVar

from registry.configvalues import ConfigValue
from registry.model import ConflictRule, Entry, Node

Key = tuple[str, str]
K = TypeVar("K")
V = TypeVar("V")
# A config key: (node, key), node None for the global default.
ConfigKey = tuple[str | None, str]


@dataclass(frozen=True)
class RemoteBatch:
    """Changes read from the fleet, applied as one snapshot; None removes the key.

    `replace` hands over the whole view (a full read of etcd): whatever the view held
    and the batch does not name is gone.
    """

    instances: Mapping[Key, Entry | None] = field(default_factory=dict)
    nodes: Mapping[str, Node | None] = field(default_factory=dict)
    rules: Mapping[str, ConflictRule | None] = field(default_factory=dict)
    config: Mapping[ConfigKey, ConfigValue | None] = field(default_factory=dict)
    replace: bool = False


@dataclass(frozen=True)
class RemoteLimits:
    """How much of a fleet one daemon agrees to hold (fleet mode aims at 100,000 instances)."""

    instances: int = 250_000
    nodes: int = 10_000
    rules: int = 10_000
    config: int = 10_000


@dataclass(frozen=True)
class RemoteOutcome:
    """What one batch did: whether the snapshot changes, and what was refused (by kind)."""

    changed: bool
    rules_changed: bool
    refused: Mapping[str, int]
    ignored_own: int


class RemoteView:
    """The fleet as read, minus this node; `take_changes()` hands the instance delta to the next snapshot."""

    def __init__(self, local_node: str, limits: RemoteLimits = RemoteLimits()) -> None:
        self.local_node = local_node
        self.limits = limits
        self.entries: dict[Key, Entry] = {}
        self.nodes: dict[str, Node] = {}
        self.rules: dict[str, ConflictRule] = {}
        self.config: dict[ConfigKey, ConfigValue] = {}
        self._changes: dict[Key, Entry | None] = {}
        # Bumped whenever `nodes` changes, so the catalog rebuilds its merged node map only then.
        self.nodes_version = 0

    def take_changes(self) -> dict[Key, Entry | None]:
        changes, self._changes = self._changes, {}
        return changes

    def apply(self, batch: RemoteBatch) -> RemoteOutcome:
        refused = {"instances": 0, "nodes": 0, "rules": 0, "config": 0}
        ignored = 0
        changed = False
        instances = dict(batch.instances)
        nodes = dict(batch.nodes)
        rules = dict(batch.rules)
        config = dict(batch.config)
        if batch.replace:
            # Everything not named is gone; removals first, so the limits count what stays.
            for key in self.entries.keys() - instances.keys():
                instances[key] = None
            for name in self.nodes.keys() - nodes.keys():
                nodes[name] = None
            for rule_id in self.rules.keys() - rules.keys():
                rules[rule_id] = None
            for config_key in self.config.keys() - config.keys():
                config[config_key] = None
        for key, entry in sorted(instances.items(), key=_removals_first):
            if key[0] == self.local_node:
                ignored += 1
                continue
            if not _put(self.entries, key, entry, self.limits.instances, refused, "instances"):
                continue
            self._changes[key] = entry
            changed = True
        nodes_changed = False
        for name, node in sorted(nodes.items(), key=_removals_first):
            if name == self.local_node:
                ignored += 1
                continue
            nodes_changed |= _put(self.nodes, name, node, self.limits.nodes, refused, "nodes")
        if nodes_changed:
            self.nodes_version += 1
        rules_changed = False
        for rule_id, rule in sorted(rules.items(), key=_removals_first):
            rules_changed |= _put(self.rules, rule_id, rule, self.limits.rules, refused, "rules")
        # Config is not in the snapshot, but a new one moves the index: that is what
        # wakes blocking reads of /v1/config (as a local write does).
        config_changed = False
        for config_key, value in sorted(config.items(), key=_removals_first):
            config_changed |= _put(self.config, config_key, value, self.limits.config, refused, "config")
        changed = changed or nodes_changed or rules_changed or config_changed
        return RemoteOutcome(changed, rules_changed, refused, ignored)

    # -- config reads ---------------------------------------------------------

    def config_value(self, node: str | None, key: str) -> ConfigValue | None:
        """A node's fleet value, else the fleet's global default (as the store falls back)."""
        scopes = [(node, "node"), (None, "global")] if node else [(None, "global")]
        for scope_node, scope in scopes:
            found = self.config.get((scope_node, key))
            if found is not None:
                return ConfigValue(key, found.value, found.value_type, scope, node)
        return None

    def config_view(self, node: str | None) -> dict[str, ConfigValue]:
        """Every fleet key a node sees: its own values over the global ones."""
        merged: dict[str, ConfigValue] = {}
        for (scope_node, key), found in self.config.items():
            if scope_node is None and key not in merged:
                merged[key] = ConfigValue(key, found.value, found.value_type, "global", node)
            elif node is not None and scope_node == node:
                merged[key] = ConfigValue(key, found.value, found.value_type, "node", node)
        return merged


def _removals_first(item: tuple[object, object]) -> bool:
    return item[1] is not None


def _put(held: dict[K, V], key: K, value: V | None, limit: int, refused: dict[str, int], kind: str) -> bool:
    """Set or remove `key`; True when that changed what is held. A new key past `limit` is refused."""
    if value is None:
        return held.pop(key, None) is not None
    before = held.get(key)
    if before is None and len(held) >= limit:
        refused[kind] += 1
        return False
    if before == value:
        return False
    held[key] = value
    return True
