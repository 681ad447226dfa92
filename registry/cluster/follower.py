"""What etcd says, as batches for the catalog: a whole read or one watch response at a time.

Everything here was written by another program (registry.cluster.records decodes it
trusting nothing). A key that cannot be read is that key's problem: it is logged (at
most once per key and reason, in a bounded memory of what was said, and the lines
themselves rate-limited), counted, and treated as absent, so a bad writer can
neither stop the fleet view nor flood the log. This node's own keys are skipped
before they are decoded: our files and SQLite are the truth for them, and another
writer claiming our node is ignored.

Decoding is pure CPU (tens of microseconds a record), so a whole read is decoded page
by page while etcd prepares the next page, in slices that give the event loop back in
between: a 100,000-instance read must not hold DNS answers for seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from registry.cluster.keys import (
    INSTANCES,
    NODES,
    BadRecord,
    ConfigKey,
    ConflictKey,
    InstanceKey,
    NodeKey,
    parse_key,
)
from registry.background import cancel_and_wait
from registry.cluster.kv import Delete, KeyValue, Put, RangeResult, WatchBatch
from registry.cluster.records import ConfigRecord, NodeRecord, decode_record
from registry.configvalues import ConfigValue
from registry.model import ConflictRule, Entry, Node
from registry.ratelog import RateLimitedLog
from registry.remote import ConfigKey as ViewConfigKey
from registry.remote import Key, RemoteBatch

log = logging.getLogger("pilotfish.cluster")

# Records decoded between two yields to the event loop during a whole read (~10 ms).
DECODE_SLICE = 200
# Distinct (key, reason) pairs remembered as already logged; the oldest are forgotten.
REMEMBERED_PROBLEMS = 4096
PROBLEM_LOG_INTERVAL = 10.0


@dataclass
class _Batch:
    instances: dict[Key, Entry | None] = field(default_factory=dict)
    nodes: dict[str, Node | None] = field(default_factory=dict)
    rules: dict[str, ConflictRule | None] = field(default_factory=dict)
    config: dict[ViewConfigKey, ConfigValue | None] = field(default_factory=dict)

    def done(self, replace: bool) -> RemoteBatch:
        return RemoteBatch(self.instances, self.nodes, self.rules, self.config, replace)


@dataclass(frozen=True)
class FullRead:
    """A whole read: the view to replace the fleet's with, and this node's keys found in etcd."""

    batch: RemoteBatch
    revision: int
    own: tuple[KeyValue, ...]


class Follower:
    """Turns etcd's keys into `RemoteBatch`es; counts what it refused (`bad_records`)."""

    def __init__(self, prefix: str, local_node: str) -> None:
        self.prefix = prefix
        self.local_node = local_node
        self._own_node_key = f"{prefix}{NODES}{local_node}"
        self._own_instances = f"{prefix}{INSTANCES}{local_node}/"
        self.bad_records = 0
        self._said: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._problem_log = RateLimitedLog(
            log, logging.WARNING, "etcd key refused; treated as absent", PROBLEM_LOG_INTERVAL
        )

    def is_own(self, key: str) -> bool:
        return key == self._own_node_key or key.startswith(self._own_instances)

    def whole_read(self) -> WholeRead:
        """A decoder for the pages of one whole read (`EtcdClient.range_prefix(on_page=...)`)."""
        return WholeRead(self)

    def changes(self, responses: Iterable[WatchBatch]) -> RemoteBatch:
        """Watch responses as one batch, in order: a later event on a key wins over an earlier one."""
        batch = _Batch()
        for response in responses:
            for event in response.events:
                if self.is_own(event.key):
                    continue
                if isinstance(event, Put):
                    self._put(batch, KeyValue(event.key, event.value, event.mod_revision))
                elif isinstance(event, Delete):
                    self._remove(batch, event.key)
                else:
                    self._refuse(event.key, event.reason)
                    self._remove(batch, event.key)
        return batch.done(replace=False)

    def _put(self, batch: _Batch, item: KeyValue) -> None:
        try:
            record = decode_record(self.prefix, item.key, item.value)
        except BadRecord as exc:
            self._refuse(item.key, exc.reason)
            self._remove(batch, item.key)
            return
        if isinstance(record, Entry):
            batch.instances[record.instance.key] = record
        elif isinstance(record, NodeRecord):
            batch.nodes[record.node.name] = record.node
        elif isinstance(record, ConflictRule):
            batch.rules[str(record.id)] = record
        else:
            batch.config[(record.node, record.key)] = _config_value(record)

    def _remove(self, batch: _Batch, key: str) -> None:
        """`key` is gone (or unreadable): whatever it named is removed, if it names anything."""
        try:
            where = parse_key(self.prefix, key)
        except BadRecord:
            return  # it named nothing we could have held
        if isinstance(where, InstanceKey):
            batch.instances[(where.node, where.instance_id)] = None
        elif isinstance(where, NodeKey):
            batch.nodes[where.node] = None
        elif isinstance(where, ConflictKey):
            batch.rules[where.rule_id] = None
        elif isinstance(where, ConfigKey):
            batch.config[(where.node, where.key)] = None

    def _refuse(self, key: str, reason: str) -> None:
        self.bad_records += 1
        said = (key[:256], reason[:256])
        if said in self._said:
            self._said.move_to_end(said)
            return
        self._said[said] = None
        if len(self._said) > REMEMBERED_PROBLEMS:
            self._said.popitem(last=False)
        self._problem_log.note(key=said[0], reason=said[1])


class WholeRead:
    """Decodes a whole read's pages as they arrive, in a task of its own; `finish` hands over the view."""

    def __init__(self, follower: Follower) -> None:
        self._follower = follower
        self._batch = _Batch()
        self._own: list[KeyValue] = []
        self._pages: deque[Sequence[KeyValue]] = deque()
        self._more = asyncio.Event()
        self._last = False
        self._task = asyncio.create_task(self._decode(), name="pilotfish-cluster-decode")

    def page(self, items: Sequence[KeyValue]) -> None:
        self._pages.append(items)
        self._more.set()

    async def finish(self, result: RangeResult) -> FullRead:
        """Once every page was handed over: the view at `result.revision`."""
        self._last = True
        self._more.set()
        await self._task
        for skipped in result.skipped:
            self._follower._refuse(skipped.key, skipped.reason)
        return FullRead(self._batch.done(replace=True), result.revision, tuple(self._own))

    async def abort(self) -> None:
        await cancel_and_wait(self._task)

    async def _decode(self) -> None:
        follower = self._follower
        while True:
            await self._more.wait()
            self._more.clear()
            while self._pages:
                items = self._pages.popleft()
                for start in range(0, len(items), DECODE_SLICE):
                    for item in items[start : start + DECODE_SLICE]:
                        if follower.is_own(item.key):
                            self._own.append(item)
                        else:
                            follower._put(self._batch, item)
                    await asyncio.sleep(0)  # DNS and HTTP answer between slices
            if self._last:
                return


def _config_value(record: ConfigRecord) -> ConfigValue:
    scope = "global" if record.node is None else "node"
    return ConfigValue(record.key, record.value, record.value_type, scope, record.node)
