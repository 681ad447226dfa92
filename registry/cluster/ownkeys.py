"""This node's own keys in etcd: noticing when someone else changes or removes them.

A part of `ClusterSync` (registry.cluster.sync). Each daemon is the only writer of its
node's keys. A deletion by anyone else (an operator's `etcdctl del`, a twin's lease
revoked, an etcd restored from a backup) is put back, since the node would otherwise
be missing on every other node until its lease ends; a foreign write is reported and
left alone, since two daemons with one node name rewriting each other would never stop.
"""

from __future__ import annotations

import logging

from registry.catalog import Catalog
from registry.cluster.etcd import EtcdClient
from registry.cluster.keys import BadRecord, InstanceKey, NodeKey, instance_key, instances_prefix, node_key, parse_key
from registry.cluster.kv import Lease, Put, Skipped, WatchEvent
from registry.cluster.publisher import Publisher
from registry.cluster.settings import FleetSettings
from registry.ratelog import RateLimitedLog
from registry.snapshot import Key

log = logging.getLogger("pilotfish.cluster")


class OwnKeys:
    """Guards this node's keys, for the sync that owns the client and the publisher."""

    catalog: Catalog
    client: EtcdClient
    publisher: Publisher
    settings: FleetSettings
    lease: Lease | None

    def __init__(self) -> None:
        # Writes to keys this daemon owns by anyone else (a second daemon with our node name?).
        self.foreign_writes = 0
        self._foreign_log = RateLimitedLog(
            log, logging.WARNING, "another writer changed this node's key in etcd (a second daemon with this "
            "node name?); left as it is, not to fight it")
        self._lost_log = RateLimitedLog(log, logging.WARNING, "this node's key was deleted in etcd; writing it again")

    async def _put_back_lost_keys(self) -> None:
        """After etcd was away: write again whatever of ours it no longer holds.

        An etcd restored from a backup, or a member that lost its data, may have lost
        keys we wrote with no watch event to say so, and its revision may have moved
        past the one we read before we look (so RevisionWentBack cannot be relied on).
        Our own keys are few: reading them is cheap, and only after a break.
        """
        prefix = self.settings.prefix
        node_record = node_key(prefix, self.catalog.identity.node)
        held = {item.key for item in (await self.client.range_prefix(node_record)).items}
        for name in sorted({owner for owner, _ in self.catalog.owned_keys()}):
            held.update(item.key for item in (await self.client.range_prefix(instances_prefix(prefix, name))).items)
        missing = self._own_keys() - held
        if not missing:
            return
        lost = [key for key in self.catalog.owned_keys() if instance_key(prefix, *key) in missing]
        log.warning("etcd lost keys of ours while it was away; writing them again",
                    extra={"instances": len(lost), "node_record": node_record in missing})
        self.client.forget(missing)
        self.publisher.mark(lost, node=node_record in missing)

    def _own_keys(self) -> set[str]:
        """Every key this daemon writes: its node record and the instances it owns."""
        prefix = self.settings.prefix
        keys = {node_key(prefix, self.catalog.identity.node)}
        keys.update(instance_key(prefix, node, instance_id) for node, instance_id in self.catalog.owned_keys())
        return keys

    def _owns(self, key: str) -> Key | bool:
        """The instance key this daemon owns at `key`, True for our node record, else False."""
        prefix = self.settings.prefix
        if not key.startswith(prefix) or not key.startswith(("nodes/", "instances/"), len(prefix)):
            return False
        try:
            where = parse_key(prefix, key)
        except BadRecord:
            return False
        if isinstance(where, NodeKey):
            return where.node == self.catalog.identity.node
        if isinstance(where, InstanceKey):
            owned = (where.node, where.instance_id)
            return owned if owned in self.catalog.owned_keys() else False
        return False

    def _own_key_changed(self, event: WatchEvent, owned: Key | bool) -> None:
        """Someone else wrote or deleted a key of ours: say so, and put back what we own.

        A deletion (an operator's `etcdctl del`, a twin's lease revoked) would leave
        this node missing on every other node until our lease ends, so the key is
        written again. A foreign write is only reported: two daemons with one node
        name rewriting each other's values would never stop.
        """
        lease = self.lease
        if isinstance(event, Put):
            if lease is None or event.lease != lease.id:
                self._foreign(event.key, event.lease)
            return
        if isinstance(event, Skipped):
            self._foreign(event.key, 0)  # a value no node can read: ours is better
        if not owned:
            return
        self._lost_log.note(key=event.key)
        self.client.forget([event.key])
        if isinstance(owned, tuple):
            self.publisher.mark([owned])
        else:
            self.publisher.mark((), node=True)

    def _foreign(self, key: str, lease: int) -> None:
        self.foreign_writes += 1
        self._foreign_log.note(key=key, lease=f"{lease:x}", node=self.catalog.identity.node)
