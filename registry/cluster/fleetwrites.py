"""Fleet-wide writes: the conflict rules and config values an API request writes to etcd.

A part of `ClusterSync` (registry.cluster.sync): what an operator writes through any
daemon's API goes to etcd and applies on every node; this node applies it at once,
without waiting for its own watch to bring it back.
"""

from __future__ import annotations

import abc
from typing import Callable

from registry.catalog import Catalog
from registry.cluster.etcd import EtcdClient
from registry.cluster.keys import config_key, conflict_key, rule_id
from registry.cluster.kv import Write
from registry.cluster.rawjson import MAX_RECORD_BYTES
from registry.cluster.records import encode_config, encode_conflict
from registry.configvalues import ConfigValue, cast_value
from registry.errors import NotFoundError, Problem, ValidationError
from registry.model import ConflictRule, ConflictType
from registry.remote import RemoteBatch


class FleetWrites(abc.ABC):
    """Rules and config written fleet-wide, for the sync that owns the etcd client."""

    catalog: Catalog
    client: EtcdClient

    @property
    @abc.abstractmethod
    def prefix(self) -> str:
        """The fleet's key prefix (cluster.prefix)."""

    @abc.abstractmethod
    def _apply(self, batch: RemoteBatch) -> None:
        """Hand the catalog a batch of the fleet's records."""

    async def add_rule(self, a: str, b: str, type_: ConflictType, reason: str) -> ConflictRule:
        """Write a fleet rule to etcd and apply it here at once; an existing pair is returned as it is."""
        pair = _checked(lambda: rule_id(a, b), "a")
        existing = next((rule for rule in self.catalog.rules() if rule.pair == frozenset((a, b))), None)
        if existing is not None:
            return existing
        rule = ConflictRule(a, b, type_, reason, id=pair, source="cluster")
        await self._write(conflict_key(self.prefix, a, b), encode_conflict(rule))
        self._apply(RemoteBatch(rules={pair: rule}))
        return rule

    async def delete_rule(self, pair: str) -> ConflictRule:
        """Take a fleet rule (`<a>+<b>`, either order) off etcd and this node."""
        a, _, b = pair.partition("+")
        pair = _checked(lambda: rule_id(a, b), "id")
        rule = self.catalog.remote.rules.get(pair)
        if rule is None:
            raise NotFoundError("conflict rule", pair)
        await self._delete(conflict_key(self.prefix, rule.a, rule.b))
        self._apply(RemoteBatch(rules={pair: None}))
        return rule

    async def set_config(self, node: str | None, key: str, raw: object, value_type: str) -> ConfigValue:
        value = cast_value(key, raw, value_type)
        where = _checked(lambda: config_key(self.prefix, key, node), "node" if node else "key")
        await self._write(where, encode_config(value, value_type))
        stored = ConfigValue(key, value, value_type, "node" if node else "global", node)
        self._apply(RemoteBatch(config={(node, key): stored}))
        return stored

    async def delete_config(self, node: str | None, key: str) -> None:
        if (node, key) not in self.catalog.remote.config:
            raise NotFoundError("config key", key)
        await self._delete(config_key(self.prefix, key, node))
        self._apply(RemoteBatch(config={(node, key): None}))

    async def _write(self, key: str, value: bytes) -> None:
        if len(value) > MAX_RECORD_BYTES:
            raise ValidationError([Problem("<request>", None, "value", f"over {MAX_RECORD_BYTES} bytes as JSON: "
                                           "no node would read it")])
        await self.client.apply([Write(key, value)])

    async def _delete(self, key: str) -> None:
        await self.client.apply([], [key])


def _checked(make: Callable[[], str], field: str) -> str:
    """A key or rule id, or the 400 that says why the request's names cannot be one."""
    try:
        return make()
    except ValueError as exc:
        raise ValidationError([Problem("<request>", None, field, str(exc))]) from None
