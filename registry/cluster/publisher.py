"""This daemon's own node record and instances, written to etcd: only what changed, coalesced.

The catalog tells the publisher which of its own keys a snapshot changed
(`Catalog.follow_local`); the publisher keeps them in a set, not a queue, so a key that
changes a thousand times while etcd is slow or down is written once, with its latest
value, and the set never holds more than the instances this daemon owns. The
listener only adds to the set: a registration or a health change never waits on etcd.

The set is bounded by what this daemon owns and what etcd may hold from it: a key
that is gone here and was never written (registered and removed while etcd was
down) is not kept, so churn of short-lived ids cannot grow it.

A flush takes the whole set, encodes each key's value from the current snapshot and
hands them to `EtcdClient.apply` as one batch (cut into transactions etcd accepts;
values etcd already holds from us are left out). If the write fails, the keys go back
into the set for the next try.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Collection

from registry.catalog import Catalog
from registry.cluster.etcd import EtcdClient
from registry.cluster.keys import instance_key, node_key
from registry.cluster.kv import Lease, Write
from registry.cluster.rawjson import MAX_RECORD_BYTES
from registry.cluster.records import encode_instance, encode_node
from registry.model import SourceKind
from registry.ratelog import RateLimitedLog
from registry.snapshot import Key

log = logging.getLogger("pilotfish.cluster")


class Publisher:
    """Writes the local node's keys under `prefix`, with `lease`, whenever the catalog changes them."""

    def __init__(self, catalog: Catalog, client: EtcdClient, prefix: str, version: str) -> None:
        self._catalog = catalog
        self._client = client
        self._prefix = prefix
        self._version = version
        self._node = catalog.identity.node
        self._dirty: set[Key] = set()
        self._in_flight: set[Key] = set()
        self._node_dirty = True
        self._wake = asyncio.Event()
        self._too_large = RateLimitedLog(log, logging.ERROR, "instance too large to publish; other nodes do not see it")
        self.written = 0  # operations sent to etcd, for /metrics
        catalog.follow_local(self._on_local)

    @property
    def pending(self) -> int:
        """Keys waiting for the next write (etcd down: everything changed since)."""
        return len(self._dirty) + int(self._node_dirty)

    def _on_local(self, keys: Collection[Key]) -> None:
        entries = self._catalog.current.entries_by_key
        for key in keys:
            if key in entries or key in self._in_flight or self._client.may_hold(instance_key(self._prefix, *key)):
                self._dirty.add(key)
            else:
                self._dirty.discard(key)  # came and went unwritten: nothing to take down
        self._node_dirty = True
        self._wake.set()

    def mark(self, keys: Collection[Key], node: bool = False) -> None:
        """Write these again at the next flush (etcd lost them under us), and the node record if `node`."""
        self._dirty.update(keys)
        self._node_dirty |= node
        self._wake.set()

    def mark_all(self) -> None:
        """Everything we own is written again at the next flush (a new lease holds nothing yet)."""
        self._dirty.update(self._catalog.owned_keys())
        self._node_dirty = True
        self._wake.set()

    async def wait(self) -> None:
        """Until there is something to write."""
        await self._wake.wait()

    async def flush(self, lease: Lease) -> None:
        """Write everything pending in one batch; on failure it stays pending and the error is raised."""
        self._wake.clear()
        keys, self._dirty = self._dirty, set()
        node_dirty, self._node_dirty = self._node_dirty, False
        self._in_flight = keys
        try:
            writes, deletes = self._encode(keys, node_dirty, lease)
            self.written += await self._client.apply(writes, deletes)
        except BaseException:
            # Changes that arrived during the write are already in the new set.
            self._dirty |= keys
            self._node_dirty |= node_dirty
            self._wake.set()  # still something to write, changes or not
            raise
        finally:
            self._in_flight = set()

    def _encode(self, keys: set[Key], node_dirty: bool, lease: Lease) -> tuple[list[Write], list[str]]:
        snapshot = self._catalog.current
        writes: list[Write] = []
        deletes: list[str] = []
        if node_dirty:
            node = snapshot.nodes[self._node]
            writes.append(Write(node_key(self._prefix, self._node), encode_node(node, self._version), lease))
        for node_name, instance_id in keys:
            key = instance_key(self._prefix, node_name, instance_id)
            entry = snapshot.entries_by_key.get((node_name, instance_id))
            if entry is None or entry.instance.source.kind is SourceKind.CLUSTER:
                deletes.append(key)
                continue
            value = encode_instance(entry)
            if len(value) > MAX_RECORD_BYTES:
                # Every node would refuse to read it: say so here, where it can be fixed,
                # and take down an older version rather than leave it served.
                self._too_large.note(id=instance_id, bytes=len(value), limit=MAX_RECORD_BYTES)
                deletes.append(key)
                continue
            writes.append(Write(key, value, lease))
        return writes, deletes
