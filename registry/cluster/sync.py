"""Fleet mode's one owner: joins etcd, keeps this node published and the fleet followed, recovers.

`ClusterSync` is started by the daemon after the catalog and stopped before it. It
runs sessions, one per lease, each in three phases (see registry.cluster's note):

- join: grant a lease and keep it alive, publish everything this daemon owns, read
  the whole prefix and hand the catalog the fleet's view as one batch (replacing
  what it held, so whatever vanished while we were away goes), take down keys of
  this node that we no longer own (a previous run's leftovers), and revoke the
  lease of the session before, whose keys are all written again now;
- serve: the publisher writes what changes, the watch applies what etcd sends (a
  response is never split; responses arriving within SNAPSHOT_INTERVAL of the last
  snapshot from the fleet wait and join the next one, so a fleet changing hundreds of
  instances a second costs at most 1/SNAPSHOT_INTERVAL snapshots a second, and an
  isolated change is applied at once), the keep-alive holds the lease;
- recover: any failure marks the fleet view stale (DNS and HTTP keep serving it;
  local registrations keep working, the publisher only collects them) and retries
  with capped, jittered backoff. A broken watch resumes from its revision; a
  compacted one reads the whole prefix again; a lost lease ends the session, and
  the next one joins afresh.

Nothing here ever blocks the event loop on etcd: every call is awaited with the
client's timeout, and readers never wait for this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from registry.background import cancel_and_wait
from registry.catalog import Catalog
from registry.cluster.errors import EtcdError, LeaseNotFound, ResyncNeeded, RevisionWentBack, Unavailable
from registry.cluster.etcd import EtcdClient
from registry.cluster.fleetwrites import FleetWrites
from registry.cluster.follower import Follower
from registry.cluster.kv import Lease, WatchBatch
from registry.cluster.ownkeys import OwnKeys
from registry.cluster.publisher import Publisher
from registry.cluster.settings import Backoff, FleetSettings, SyncState
from registry.cluster.rawjson import MAX_RECORD_BYTES
from registry.remote import RemoteBatch

log = logging.getLogger("pilotfish.cluster")

# A clean stop gives etcd this long to revoke the lease: a dead etcd must not hold up SIGTERM.
STOP_TIMEOUT = 2.0
CLIENT_TIMEOUT = 2.0
# The fleet makes at most one snapshot per this interval (see the module's note).
SNAPSHOT_INTERVAL = 0.05
# Watch events waiting for the next snapshot past this are applied at once.
MAX_PENDING_EVENTS = 10_000


class ClusterSync(FleetWrites, OwnKeys):
    """Publishes this node to etcd and follows the fleet into the catalog, until `stop`."""

    def __init__(self, catalog: Catalog, settings: FleetSettings, version: str, client_timeout: float = CLIENT_TIMEOUT) -> None:
        super().__init__()
        self.catalog = catalog
        self.settings = settings
        self.client = EtcdClient(settings.endpoints, timeout=client_timeout, max_value_bytes=MAX_RECORD_BYTES)
        self.follower = Follower(settings.prefix, catalog.identity.node)
        self.publisher = Publisher(catalog, self.client, settings.prefix, version)
        self.state = SyncState.CONNECTING
        self.since = time.time()
        self.revision = 0
        self.lease: Lease | None = None
        self.last_error: str | None = None
        self.resyncs = 0
        self.refused: dict[str, int] = {"instances": 0, "nodes": 0, "rules": 0, "config": 0}
        self._failing: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Watch responses received, not yet in a snapshot; when the last fleet snapshot was made.
        self._pending: list[WatchBatch] = []
        self._pending_events = 0
        self._flush: asyncio.Handle | None = None
        self._flushed_at = 0.0

    # -- life cycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start following; returns at once (etcd may well be down: that is `connecting`)."""
        self._task = asyncio.create_task(self._run(), name="pilotfish-cluster")

    async def stop(self) -> None:
        """Stop following and revoke the lease, so our instances leave every node at once."""
        self._stopping = True
        try:
            # Bounded: a gRPC call that does not honour its cancellation must not hold up
            # SIGTERM; closing the client below ends whatever it still waits on.
            async with asyncio.timeout(STOP_TIMEOUT):
                await cancel_and_wait(self._task)
        except TimeoutError:
            log.error("fleet mode did not stop within %s s; closing its etcd connection under it", STOP_TIMEOUT)
        self._task = None
        self._drop_pending()
        lease, self.lease = self.lease, None
        if lease is not None:
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await self.client.revoke(lease)
            except (EtcdError, TimeoutError) as exc:
                log.warning("lease not revoked; our keys go when it runs out",
                            extra={"lease": f"{lease.id:x}", "ttl": lease.ttl, "error": str(exc)})
        await self.client.close()

    # -- state ------------------------------------------------------------------

    def _failed(self, part: str, exc: BaseException) -> None:
        self.last_error = f"{part}: {exc}"
        if not self._failing:
            if self.state is SyncState.SYNCED:
                log.warning("etcd unreachable: serving the last fleet view", extra={"part": part, "error": str(exc)})
                self.state = SyncState.STALE
                self.since = time.time()
        self._failing.add(part)

    def _recovered(self, part: str) -> None:
        self._failing.discard(part)
        if not self._failing and self.revision and self.state is not SyncState.SYNCED:
            log.info("fleet view in sync", extra={"revision": self.revision, "was": self.state.value})
            self.state = SyncState.SYNCED
            self.since = time.time()
            self.last_error = None

    @property
    def prefix(self) -> str:
        return self.settings.prefix

    def status(self) -> dict[str, Any]:
        """What /v1/status shows under `cluster`."""
        remote = self.catalog.remote
        lease = self.lease
        return {
            "state": self.state.value,
            "since": self.since,
            "revision": self.revision,
            "datacenter": self.settings.datacenter,
            "prefix": self.settings.prefix,
            "endpoints": [str(e) for e in self.settings.endpoints],
            "endpoint": self.client.endpoint,
            "lease": None if lease is None else {"id": f"{lease.id:x}", "ttl": lease.ttl},
            "nodes": len(remote.nodes),
            "instances": len(remote.entries),
            "rules": len(remote.rules),
            "config": len(remote.config),
            "pending": self.publisher.pending,
            "refused": dict(self.refused),
            "bad_records": self.follower.bad_records,
            "resyncs": self.resyncs,
            "foreign_writes": self.foreign_writes,
            "error": self.last_error,
        }

    # -- sessions ---------------------------------------------------------------

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            try:
                await self._session(backoff)
            except EtcdError as exc:
                self._failed("session", exc)
            except asyncio.CancelledError:
                if self._stopping:
                    raise
                # Not ours: a cancellation a library let through. It must not end fleet mode.
                log.warning("fleet session cancelled from within; joining again")
                self._failed("session", RuntimeError("cancelled"))
            except Exception as exc:  # nor must a bug
                log.exception("fleet session failed; joining again")
                self._failed("session", exc)
            await asyncio.sleep(backoff.next())

    async def _session(self, backoff: Backoff) -> None:
        """One lease's life: join, then serve until the lease is lost (or raise why not)."""
        lease = await self.client.grant_lease(self.settings.lease_ttl)
        previous, self.lease = self.lease, lease
        keepalive = self.client.keep_alive(lease)
        try:
            self.client.forget()  # written under another lease: nothing of it counts now
            self.publisher.mark_all()
            await self.publisher.flush(lease)
            await self._read_all()
            if previous is not None and previous.id != lease.id:
                # Every key of the old lease that still matters was just written again.
                await self.client.revoke(previous)
            self._failing.clear()  # whatever failed before is behind us: all of it was done again
            self._recovered("session")
            backoff.reset()
            log.info("joined the fleet", extra={"lease": f"{lease.id:x}", "ttl": lease.ttl, "revision": self.revision,
                                                "nodes": len(self.catalog.remote.nodes),
                                                "instances": len(self.catalog.remote.entries)})
            tasks = [
                asyncio.create_task(self._publish_loop(lease), name="pilotfish-cluster-publish"),
                asyncio.create_task(self._watch_loop(), name="pilotfish-cluster-watch"),
            ]
            lost = asyncio.ensure_future(keepalive.lost())
            try:
                done, _ = await asyncio.wait([lost, *tasks], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    # A loop ends only by raising (or by a stray cancellation): so does the session.
                    if task is not lost:
                        error = task.exception() if not task.cancelled() else asyncio.CancelledError()
                        raise error or RuntimeError(f"{task.get_name()} ended")
                loss = lost.result()
                self._failed("lease", LeaseNotFound(loss.lease_id))
                log.warning("lease lost; joining again", extra={"lease": f"{lease.id:x}", "reason": loss.reason})
            finally:
                await cancel_and_wait(lost, *tasks)
        finally:
            await keepalive.stop()

    async def _read_all(self) -> None:
        """Read the whole prefix and make it the fleet view; drop our own leftovers."""
        started = time.monotonic()
        reading = self.follower.whole_read()
        try:
            result = await self.client.range_prefix(self.settings.prefix, on_page=reading.page)
            read = await reading.finish(result)
        except BaseException:
            await reading.abort()
            raise
        decoded = time.monotonic()
        self._drop_pending()  # older than the read, which holds their outcome
        self._apply(read.batch)
        log.info("fleet read", extra={"revision": result.revision, "keys": len(result.items),
                                      "read_s": round(decoded - started, 3),
                                      "apply_s": round(time.monotonic() - decoded, 3)})
        owned = self._own_keys()
        leftovers = [item.key for item in read.own if item.key not in owned]
        lease = self.lease
        for item in read.own:
            # Written after our join's publish (which used this lease) by someone else.
            if item.key in owned and (lease is None or item.lease != lease.id):
                self._foreign(item.key, item.lease)
        if leftovers:
            log.info("taking down keys of this node it no longer owns", extra={"keys": len(leftovers)})
            await self.client.apply([], leftovers)
        self.revision = read.revision

    def _apply(self, batch: RemoteBatch) -> None:
        outcome = self.catalog.apply_remote(batch)
        for kind, count in outcome.refused.items():
            if count:
                self.refused[kind] += count
                log.warning("fleet view full: keys refused", extra={"kind": kind, "refused": count,
                                                                    "limit": getattr(self.catalog.remote.limits, kind)})

    async def _publish_loop(self, lease: Lease) -> None:
        backoff = Backoff()
        while True:
            await self.publisher.wait()
            try:
                await self.publisher.flush(lease)
            except LeaseNotFound:
                raise
            except EtcdError as exc:
                self._failed("publish", exc)
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            self._recovered("publish")

    async def _watch_loop(self) -> None:
        backoff = Backoff()
        away = False
        while True:
            try:
                # From the revision already applied, not the one after: its events come
                # again and change nothing, but a compaction at the next revision (which
                # etcd would let us watch from, silently without the deletions made at
                # it) is then reported as Compacted, and we read everything again.
                async with self.client.watch_prefix(self.settings.prefix, self.revision, self.revision) as watch:
                    if away:
                        await self._put_back_lost_keys()
                        away = False
                    self._recovered("watch")
                    backoff.reset()
                    async for batch in watch:
                        self._received(batch)
            except RevisionWentBack as exc:
                # Our keys there may be old ones, and the whole view is: all of it again.
                log.warning("etcd's revision went back (restored from a backup?); joining again",
                            extra={"revision": exc.current, "read": exc.expected})
                self.resyncs += 1
                raise
            except ResyncNeeded as exc:
                log.warning("watch cannot resume; reading the whole prefix again", extra={"error": str(exc)})
                self.resyncs += 1
                await self._retrying("resync", self._read_all, backoff)
                continue
            except Unavailable as exc:
                self._failed("watch", exc)
                self._apply_pending()  # what arrived before the break is good: serve it
                away = True
            await asyncio.sleep(backoff.next())

    def _received(self, response: WatchBatch) -> None:
        """Hold a watch response for the next fleet snapshot (at once, if none was made lately)."""
        for event in response.events:
            owned = self._owns(event.key)
            if owned or self.follower.is_own(event.key):
                self._own_key_changed(event, owned)
        self._pending.append(response)
        self._pending_events += len(response.events)
        if self._pending_events > MAX_PENDING_EVENTS:
            self._apply_pending()
        elif self._flush is None:
            loop = asyncio.get_running_loop()
            delay = self._flushed_at + SNAPSHOT_INTERVAL - loop.time()
            # Even at once, after this loop pass: responses read together join one snapshot.
            self._flush = loop.call_later(delay, self._apply_pending) if delay > 0 else loop.call_soon(
                self._apply_pending)

    def _apply_pending(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        responses, self._pending = self._pending, []
        self._pending_events = 0
        if not responses:
            return
        self._flushed_at = asyncio.get_running_loop().time()
        try:
            self._apply(self.follower.changes(responses))
        except Exception:  # a bug must not leave the view behind for good: the next read mends it
            log.exception("applying the fleet's changes failed")
            return
        self.revision = responses[-1].next_revision - 1

    def _drop_pending(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._pending = []
        self._pending_events = 0

    async def _retrying(self, part: str, call: Callable[[], Awaitable[None]], backoff: Backoff) -> None:
        while True:
            try:
                await call()
                self._recovered(part)
                return
            except Unavailable as exc:
                self._failed(part, exc)
            await asyncio.sleep(backoff.next())
