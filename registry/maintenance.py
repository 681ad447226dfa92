"""Maintenance as operators ask for it: windows of a node or an instance, and the task that keeps their times.

Every kind of maintenance is a window (registry.model.Window), stored in SQLite so
that it survives a restart: `immediate` holds its target at once until it is ended,
`draining` drains it at once and turns it offline after drain_timeout (or when an
operator says the work may start), `planned` drains it `drain_ahead` before its
start and ends by itself at its end. The scheduler applies what each window says at
the current time to the catalog (holds on the node and on instances), and its one
task sleeps until the next window time, woken early by any change; it never polls.
When a hold ends, the catalog holds the target `recovering` until its checks have
passed anew (registry.instances).

A request that the node's state table refuses (maintenance on twice, off or done
when there is nothing to end) raises InvalidTransition; a window overlapping another
of its target raises WindowOverlap. Everything runs on the daemon's event loop, as
the catalog does. Times are wall-clock (Unix seconds) because operators plan in them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Callable

from registry import events
from registry.background import cancel_and_wait, wait_or_wake
from registry.catalog import Catalog
from registry.errors import NotDraining, NotFoundError, StorageError
from registry.model import rfc3339
from registry.ratelog import RateLimitedLog
from registry.snapshot import Snapshot
from registry.states import Hold, MaintenanceKind, NodeState, Trigger, Window, WindowPhase
from registry.transitions import check_transition, nothing_to_end
from registry.windows import admit, check_times, window_dict

log = logging.getLogger(__name__)

Target = tuple[str, str]  # (node, instance id); the instance is "" for the node itself
# The task sleeps at most this long: a wall clock stepped (NTP, a suspended VM) is
# noticed within it, since the sleep itself runs on the monotonic clock.
MAX_SLEEP = 60.0
# A timer may fire a hair before its time; sleeping this much longer avoids a
# second wake-up that finds nothing due yet.
CLOCK_SLACK = 0.005
# After a refused write (a full disk), the next try.
RETRY = 1.0


class MaintenanceScheduler:
    """The windows of this daemon and the one task that applies them as time passes."""

    def __init__(self, catalog: Catalog, clock: Callable[[], float] = time.time) -> None:
        self.catalog = catalog
        self.clock = clock
        self._windows: dict[int, Window] = {}
        # The hold last given to the catalog, by target: what a new hold is compared to.
        self._applied: dict[Target, Hold] = {}
        # Windows that ended or whose instance went, still to be deleted (a refused write waits here).
        self._leaving: dict[int, tuple[Window, str, Trigger]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._write_log = RateLimitedLog(log, logging.ERROR, "maintenance windows not saved; retrying")
        self._failing = False

    # -- life cycle ------------------------------------------------------

    def load(self) -> None:
        """Read the stored windows and apply them now: called before anything is served.

        Only this node's (a database carried over from a renamed node keeps the old
        name's rows, untouched). A window of an instance not registered (yet) holds
        it when it is.
        """
        local = self.catalog.identity.node
        for window in self.catalog.store.windows():
            if window.node == local:
                self._windows[window.id] = window
        self.catalog.subscribe(self._on_swap)
        self._apply(None)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="maintenance scheduler")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    # -- what operators ask -------------------------------------------------

    def windows(self) -> list[Window]:
        return sorted(self._windows.values(), key=lambda w: (w.starts, w.id))

    def window(self, window_id: int) -> Window:
        found = self._windows.get(window_id)
        if found is None:
            raise NotFoundError("maintenance window", str(window_id))
        return found

    def state_of(self, target: Target) -> NodeState:
        """The target's state as the transition table reads it (an instance that is not held: online)."""
        if not target[1]:
            return self.catalog.current.nodes[target[0]].state
        entry = self.catalog.entry(target[1], target[0])
        return entry.maintenance_state if entry is not None and entry.maintenance_state else NodeState.ONLINE

    def begin(self, target: Target, kind: MaintenanceKind, reason: str, drain: float = 0.0) -> Window:
        """Maintenance now: `immediate`, or `draining` for `drain` seconds before the work."""
        now = self.clock()
        starts = now if kind is MaintenanceKind.IMMEDIATE else now + drain
        return self._open(Window(0, target[0], target[1], kind, reason, now, starts, None, now), now)

    def plan(self, window: Window) -> Window:
        """Store a planned window (registry.windows.planned made it); it may begin at once."""
        return self._open(window, self.clock())

    def change(self, window_id: int, new: Window) -> Window:
        """Replace a window with `new` (registry.windows.changed made it)."""
        old = self.window(window_id)
        now = self.clock()
        admit(new, self._windows.values())
        before, after = old.hold_at(now), new.hold_at(now)
        if after is not None and (before is None or before.state is not after.state):
            check_transition(self.state_of(old.target), after.state)
        self.catalog.store.update_window(new, self._event("changed", new, now, Trigger.API))
        self._windows[window_id] = new
        self._changed(now)
        return new

    def cancel(self, window_id: int) -> Window:
        """Delete a window: one not begun changes nothing; one under way ends now."""
        window = self.window(window_id)
        now = self.clock()
        self.catalog.store.delete_window(window_id, self._event("cancelled", window, now, Trigger.API))
        del self._windows[window_id]
        self._changed(now)
        return window

    def end(self, target: Target) -> Window:
        """`maint off`: the window holding `target` now ends (its checks then recover)."""
        window = self._holding(target)
        if window is None:
            coming = min((w for w in self._windows.values() if w.target == target), key=lambda w: w.drain_at, default=None)
            upcoming = "" if coming is None else (
                f" (window {coming.id} is planned from {rfc3339(coming.drain_at)}: cancel it to call it off)")
            raise nothing_to_end(self.state_of(target), _target_text(target), upcoming)
        now = self.clock()
        self.catalog.store.delete_window(window.id, self._event("ended", window, now, Trigger.API))
        del self._windows[window.id]
        self._changed(now)
        return window

    def done(self, target: Target) -> Window:
        """`maint done`: a draining target may go offline now, its drain cut short."""
        window = self._holding(target)
        now = self.clock()
        if window is None or window.phase_at(now) is not WindowPhase.DRAINING:
            raise NotDraining(_target_text(target), self.state_of(target).value)
        started = dataclasses.replace(window, starts=now, drain_at=min(window.drain_at, now))
        self.catalog.store.update_window(started, self._event("done", started, now, Trigger.API))
        self._windows[window.id] = started
        self._changed(now)
        return started

    # -- internals ---------------------------------------------------------

    def _holding(self, target: Target) -> Window | None:
        now = self.clock()
        return next((w for w in self._windows.values() if w.target == target and w.hold_at(now) is not None), None)

    def _open(self, window: Window, now: float) -> Window:
        """Store a new window after the checks: its target exists, its move is allowed, its times and neighbours fit."""
        if window.instance and self.catalog.instance(window.instance, window.node) is None:
            raise NotFoundError("instance", window.instance)
        hold = window.hold_at(now)
        if hold is not None:
            check_transition(self.state_of(window.target), hold.state)
        check_times(window, now)
        admit(window, self._windows.values())
        action = "planned" if hold is None else "opened"
        stored = self.catalog.store.add_window(window, lambda w: self._event(action, w, now, Trigger.API))
        self._windows[stored.id] = stored
        self._changed(now)
        return stored

    def _changed(self, now: float) -> None:
        """After an operator's change: apply it at once (trigger `api`), and let the task find its new next time."""
        self._apply(Trigger.API, now)
        self._wake.set()

    @staticmethod
    def _event(action: str, window: Window, now: float, trigger: Trigger) -> events.Event:
        return events.window(action, window, window_dict(window, now), trigger)

    def _apply(self, trigger: Trigger | None, now: float | None = None) -> None:
        """Give the catalog what every window says at `now`, in one snapshot.

        `trigger` names what made the changes; None: the time (`schedule`, or
        `timeout` for a drain that ran out).
        """
        now = self.clock() if now is None else now
        ended: set[Target] = set()
        for window in [w for w in self._windows.values() if w.phase_at(now) is WindowPhase.OVER]:
            del self._windows[window.id]
            self._leaving[window.id] = (window, "ended", Trigger.SCHEDULE)
            ended.add(window.target)
        holds: dict[Target, tuple[Hold, Window]] = {}
        for window in self._windows.values():
            hold = window.hold_at(now)
            if hold is not None:
                holds[window.target] = (hold, window)
        local = self.catalog.identity.node
        with self.catalog.batch():
            self._delete_leaving(now)
            for target in set(self._applied) | set(holds):
                new, by = holds.get(target, (None, None))
                old = self._applied.get(target)
                if new == old:
                    continue
                why = Trigger.SCHEDULE if new is None and target in ended else trigger or _time_trigger(old, new, by)
                if target[1]:
                    self.catalog.hold_instance(target, new, why)
                elif target[0] == local:
                    self.catalog.set_node_maintenance(new, why)
                if new is None:
                    self._applied.pop(target, None)
                else:
                    self._applied[target] = new
            self.catalog.set_windows(tuple(w for w in self.windows() if w.node == local))

    def _delete_leaving(self, now: float) -> None:
        for window_id, (window, action, trigger) in list(self._leaving.items()):
            try:
                self.catalog.store.delete_window(window_id, self._event(action, window, now, trigger))
            except StorageError as exc:  # the hold is released all the same: the time says so
                self._write_log.note(error=str(exc), fault=exc.fault.value, window=window_id)
                return
            del self._leaving[window_id]

    def _drop_targets(self, targets: set[Target], action: str) -> None:
        """Forget the windows of instances that left the catalog; their rows go with the next apply."""
        for window in [w for w in self._windows.values() if w.target in targets]:
            del self._windows[window.id]
            self._leaving[window.id] = (window, action, Trigger.API)
        for target in targets:
            self._applied.pop(target, None)

    def _on_swap(self, old: Snapshot, new: Snapshot) -> None:
        """An instance removed from the catalog takes its windows with it (a move between files does not)."""
        targets = {w.target for w in self._windows.values() if w.instance}
        gone = {t for t in targets if old.entry(t[1], t[0]) is not None and new.entry(t[1], t[0]) is None}
        if gone:
            self._drop_targets(gone, "cancelled: instance removed")
            self._wake.set()

    async def _run(self) -> None:
        while True:
            now = self.clock()
            due = min((t for w in self._windows.values() if (t := w.next_change(now)) is not None), default=None)
            delay = MAX_SLEEP if due is None else min(MAX_SLEEP, due - now + CLOCK_SLACK)
            if self._leaving:
                delay = min(delay, RETRY)
            await wait_or_wake(self._wake, delay)
            try:
                self._apply(None)
            except StorageError as exc:  # a full disk must not end the schedule, nor flood the log
                self._write_log.note(error=str(exc), fault=exc.fault.value)
                await asyncio.sleep(RETRY)
            except Exception:  # nor must a bug: logged once until an apply succeeds
                if not self._failing:
                    log.exception("applying maintenance windows failed; retrying every %gs", RETRY)
                    self._failing = True
                await asyncio.sleep(RETRY)
            else:
                self._failing = False


def _target_text(target: Target) -> str:
    return f"instance {target[1]}" if target[1] else f"node {target[0]}"


def _time_trigger(old: Hold | None, new: Hold | None, window: Window | None) -> Trigger:
    """What made a hold change by itself: a drain_timeout that ran out, else the window's schedule."""
    if (
        old is not None and old.state is NodeState.DRAINING and new is not None and new.state is NodeState.OFFLINE
        and window is not None and window.kind is MaintenanceKind.DRAINING
    ):
        return Trigger.TIMEOUT
    return Trigger.SCHEDULE

