"""The health runner: runs every check of every local instance on its own schedule.

It follows the catalog's own instances (`Catalog.follow_local`: the keys each
snapshot changed, never other nodes' in fleet mode) to start checks of new or
changed instances and cancel those of removed ones, runs their probes (registry.health.probes)
under one global concurrency bound, counts rise/fall, and tells the
catalog each result. The catalog publishes a snapshot only when a status
changes, so a steady fleet of checks costs no snapshots and no SQLite writes.

A check never stops checking: whatever a probe raises (EMFILE, a bug) is that
run's critical result, with the error as output, and any other failure of a
check's loop is logged once and retried. Must never block the event loop (every
probe is async; exec runs a subprocess) and never leave a task, process or
connection behind after `stop()`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Collection

from registry.background import cancel_and_wait
from registry.catalog import Catalog
from registry.errors import NotFoundError
from registry.health import ttl
from registry.health.orphans import OrphanReaper
from registry.health.outcome import Outcome, truncate
from registry.health.probes import Prober
from registry.health.risefall import RiseFall
from registry.instances import NOT_CHECKED
from registry.model import CheckKind, CheckSpec, CheckState, Entry, Instance, SourceKind, Status
from registry.snapshot import Key

log = logging.getLogger(__name__)

# (check id, monotonic start, duration in seconds), called once the catalog has a probe's result.
Observer = Callable[[str, float, float], None]
# uvloop's timers count whole milliseconds and can fire a little before the deadline
# they were set for; a deadline this close counts as reached, and every sleep runs
# this much past its deadline, or the loop would spin on zero-length sleeps.
_CLOCK_SLACK = 0.002
# No check runs more often than this, whatever its spec says: the schema refuses
# shorter intervals, and a spec that reached the runner another way is held to it.
MIN_INTERVAL = 1.0


@dataclass(eq=False)
class _Check:
    """One check of one instance, as scheduled: its counters and its deadlines."""

    instance: Instance
    spec: CheckSpec
    counter: RiseFall
    # Monotonic time of the next probe run (or of the TTL running out); None: nothing due.
    due: float | None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    critical_since: float | None = None
    # The status the catalog was last given (None: never): a result that differs
    # is a change, and changes are applied together in one snapshot.
    told: Status | None = None
    runs: int = 0
    # Set while the probe or the loop keeps failing, so that each failure is logged
    # once when it starts, not once a run.
    probe_failing: bool = False
    loop_failing: bool = False
    task: "asyncio.Task[None] | None" = None

    def deregister_at(self) -> float | None:
        if self.spec.deregister_after is None or self.critical_since is None:
            return None
        return self.critical_since + self.spec.deregister_after


class HealthRunner:
    """Runs the checks of this node's instances.

    Exec checks run when they come from a file, and from the API only while
    `exec_from_api` is true; it may be changed at any time (a config reload). `reap_orphans` is for a
    process that is a child subreaper (the daemon): every child not started by a
    probe is killed and reaped.
    """

    def __init__(
        self,
        catalog: Catalog,
        concurrency: int = 256,
        observer: Observer | None = None,
        exec_from_api: bool = False,
        reap_orphans: bool = False,
    ) -> None:
        self.catalog = catalog
        self.concurrency = concurrency
        self.observer = observer
        self._prober = Prober(concurrency, exec_from_api, OrphanReaper() if reap_orphans else None)
        self._slots = asyncio.Semaphore(concurrency)
        self._checks: dict[Key, dict[str, _Check]] = {}
        self._instances: dict[Key, Instance] = {}
        self._running = False
        self._subscribed = False
        # Probe results wait here for the end of the event loop's current pass, so
        # that results arriving together (a burst at start-up, a switch failing
        # under many checks) become one snapshot instead of one each.
        self._pending: list[tuple[_Check, CheckState, Status, float, float]] = []
        self._flush_scheduled = False
        self._flush_failing = False

    # -- life cycle ------------------------------------------------------

    @property
    def exec_from_api(self) -> bool:
        return self._prober.exec_from_api

    @exec_from_api.setter
    def exec_from_api(self, allowed: bool) -> None:
        self._prober.exec_from_api = allowed

    async def start(self) -> None:
        await self._prober.open()
        self._running = True
        if not self._subscribed:
            self.catalog.follow_local(self._on_local)
            self._subscribed = True
        for entry in self.catalog.current.entries_by_key.values():
            self._follow(entry.instance)

    async def stop(self) -> None:
        self._running = False
        tasks = [check.task for checks in self._checks.values() for check in checks.values() if check.task]
        self._checks.clear()
        self._instances.clear()
        await cancel_and_wait(*tasks)
        await self._prober.close()

    def scheduled(self) -> int:
        """How many checks are scheduled (status, tests, the benchmark)."""
        return sum(len(checks) for checks in self._checks.values())

    # -- following the catalog ---------------------------------------------

    def _on_local(self, keys: Collection[Key]) -> None:
        """Reschedule only what changed: this daemon's instances a snapshot touched.

        O(change) whatever the catalog holds: in fleet mode a swap that only brought
        other nodes' instances (100,000 of them) costs nothing here.
        """
        if not self._running:
            return
        entries = self.catalog.current.entries_by_key
        for key in keys:
            entry = entries.get(key)
            if entry is None or entry.instance.source.kind is SourceKind.CLUSTER:
                self._forget(key)
            else:
                self._follow(entry.instance)

    def _follow(self, instance: Instance) -> None:
        if instance.source.kind is SourceKind.CLUSTER:
            # Another daemon's instance (fleet mode): its owner checks it and publishes
            # the status. One registered here for another node is ours to check.
            return
        known = self._instances.get(instance.key)
        if known is instance:
            return
        if known is not None and known == instance:
            # Re-registered unchanged: keep counters and schedule, follow the new object.
            self._instances[instance.key] = instance
            for check in self._checks.get(instance.key, {}).values():
                check.instance = instance
            return
        self._forget(instance.key)
        self._instances[instance.key] = instance
        entry = self.catalog.current.entries_by_key.get(instance.key)
        checks = {spec.id: self._schedule(instance, spec, entry) for spec in instance.checks}
        self._checks[instance.key] = checks

    def _forget(self, key: Key) -> None:
        self._instances.pop(key, None)
        for check in self._checks.pop(key, {}).values():
            if check.task is not None:
                check.task.cancel()

    def _schedule(self, instance: Instance, spec: CheckSpec, entry: Entry | None) -> _Check:
        known = _known_status(entry, spec.id)
        loop = asyncio.get_running_loop()
        if spec.kind is CheckKind.TTL:
            # A TTL check waits for its service; a state kept from before a
            # restart still runs out one TTL from now.
            due = loop.time() + spec.ttl if known is not None and spec.ttl else None
        else:
            due = loop.time()  # first run at once: a new instance should not wait an interval
        check = _Check(instance, spec, RiseFall(spec.rise, spec.fall, known), due, told=known)
        # A TTL check that never heard from its service is critical from the start,
        # and deregister_after counts from then (a probe's first run decides for it).
        if known is Status.CRITICAL or (known is None and spec.kind is CheckKind.TTL):
            check.critical_since = loop.time()
        check.task = asyncio.create_task(self._loop(check), name=f"check {spec.id}")
        return check

    # -- running one check -----------------------------------------------

    async def _loop(self, check: _Check) -> None:
        """Run `check` until it is cancelled or its instance deregistered; nothing else ends it."""
        while True:
            try:
                if await self._step(check):
                    return
            except Exception:  # a failed catalog write, a bug: retried, never the end of the check
                if not check.loop_failing:
                    log.exception("health check %s failed; retrying every %gs", check.spec.id, MIN_INTERVAL)
                    check.loop_failing = True
                await asyncio.sleep(MIN_INTERVAL)
                continue
            check.loop_failing = False

    async def _step(self, check: _Check) -> bool:
        """Deregister, run the probe or wait, whichever is due; True once the instance is deregistered."""
        loop = asyncio.get_running_loop()
        now = loop.time() + _CLOCK_SLACK
        deregister_at = check.deregister_at()
        if deregister_at is not None and now >= deregister_at:
            self._deregister(check)
            return True
        if check.due is not None and now >= check.due:
            await self._fire(check)
            return False
        wake_at = min((t for t in (check.due, deregister_at) if t is not None), default=math.inf)
        await self._wait(check, wake_at - now + 2 * _CLOCK_SLACK)
        return False

    async def _wait(self, check: _Check, delay: float) -> None:
        if check.spec.kind is not CheckKind.TTL:
            await asyncio.sleep(delay)
            return
        # TTL checks are also woken by ttl_update, which moves their deadline.
        try:
            await asyncio.wait_for(check.wake.wait(), None if math.isinf(delay) else delay)
        except TimeoutError:
            return
        check.wake.clear()

    async def _fire(self, check: _Check) -> None:
        spec = check.spec
        if spec.kind is CheckKind.TTL:
            check.due = None
            self._tell(check, self._result(check, ttl.expired(spec), counted=False))
            return
        loop = asyncio.get_running_loop()
        async with self._slots:
            # The timeout starts once a slot is held: waiting for the bound is
            # the checker's delay, not the service's.
            started, clock = loop.time(), time.perf_counter()
            outcome, check.probe_failing = await self._prober.run(check.instance, spec, check.probe_failing)
        duration = time.perf_counter() - clock
        check.runs += 1
        # Jitter: the second run lands anywhere in the first interval, which spreads
        # a burst of registrations (daemon start) evenly; later runs start 90-100%
        # of an interval after the previous start, so a change is still seen within
        # interval + timeout. Never sooner than MIN_INTERVAL, whatever the spec says.
        spread = (0.0, 1.0) if check.runs == 1 else (0.9, 1.0)
        check.due = started + max(MIN_INTERVAL, spec.interval * random.uniform(*spread))
        self._pending.append((check, self._result(check, outcome, counted=True), outcome.status, started, duration))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)

    def _result(self, check: _Check, outcome: Outcome, counted: bool) -> CheckState:
        """The state to report for `outcome`, after rise/fall; tracks how long it has been critical."""
        if counted:
            status = check.counter.feed(outcome.status)
            pending = check.counter.progress(outcome.status)
            output = truncate(f"{outcome.output} ({pending})" if pending else outcome.output)
        else:
            status = check.counter.current = outcome.status
            output = truncate(outcome.output)
        if status is Status.CRITICAL:
            if check.critical_since is None:
                check.critical_since = asyncio.get_running_loop().time()
        else:
            check.critical_since = None
        return CheckState(check.spec.id, status, output, time.time())

    def _tell(self, check: _Check, state: CheckState, probe: Status | None = None) -> None:
        """Hand a result to the catalog; `probe` is what the probe found before rise and fall (recovery counts it)."""
        self.catalog.set_check_state(check.instance, state, {"kind": check.spec.kind.value}, probe)
        check.told = state.status

    def _flush(self) -> None:
        """Hand the pass's probe results to the catalog: every change in one snapshot."""
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        if not self._running:
            return
        # One batch: the status changes become one snapshot, and a pass that only
        # refreshed outputs publishes none (a batch without a change publishes nothing).
        try:
            with self.catalog.batch():
                for check, state, probe, _, _ in pending:
                    self._tell(check, state, probe)
        except Exception:  # a failed write (full disk): the next results are told again
            if not self._flush_failing:
                log.exception("recording health results failed; checks go on and retry with their next results")
                self._flush_failing = True
            return
        self._flush_failing = False
        if self.observer is not None:
            for check, _, _, started, duration in pending:
                self.observer(check.spec.id, started, duration)

    def _deregister(self, check: _Check) -> None:
        instance = check.instance
        reason = f"check {check.spec.id} critical for more than {check.spec.deregister_after:g}s (deregister_after)"
        log.warning("deregistering %s: %s", instance.id, reason)
        # The swap listener cancels this instance's checks, this one included.
        self.catalog.expire(instance.id, instance.node, reason)

    # -- TTL reports -------------------------------------------------------

    def ttl_update(self, check_id: str, status: Status, note: str = "") -> Entry:
        """Record a service's own report for its TTL check and restart the TTL."""
        instance = self.catalog.check_owner(check_id)
        check = self._checks.get(instance.key, {}).get(check_id) if instance is not None else None
        if instance is None or check is None or check.spec.kind is not CheckKind.TTL or check.spec.ttl is None:
            raise NotFoundError("ttl check", check_id)
        self._tell(check, self._result(check, ttl.reported(status, truncate(note)), counted=False))
        check.due = asyncio.get_running_loop().time() + check.spec.ttl
        check.wake.set()
        entry = self.catalog.entry(instance.id, instance.node)
        if entry is None:
            raise NotFoundError("instance", instance.id)
        return entry


def _known_status(entry: Entry | None, check_id: str) -> Status | None:
    """The check's last real result (kept across restarts), or None if never checked."""
    if entry is None:
        return None
    for state in entry.checks:
        if state.check_id == check_id and state.output != NOT_CHECKED:
            return state.status
    return None
