"""The maintenance scheduler on a real catalog and store, in real time set short: kinds, windows, recovery.

(Through the real daemon, DNS and the CLI: test_maintenance_e2e.py; the HTTP routes: test_http_maintenance.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import AsyncIterator

import pytest

from conftest import NODE, eventually, run, started, status_of
from healthkit import TcpService, register
from registry import events
from registry.catalog import Catalog
from registry.errors import InvalidTransition, NotDraining, NotFoundError, WindowOverlap
from registry.health.runner import HealthRunner
from registry.maintenance import MaintenanceScheduler
from registry.migrations import MIGRATIONS
from registry.model import Status
from registry.nodestate import NodeMonitor, NodeThresholds
from registry.states import MaintenanceKind, NodeState, Trigger, Window
from registry.store import Store
from registry.windows import planned

NODE_TARGET = (NODE.node, "")
LOW = NodeThresholds(cpu=1000, memory=0, disk=1000)  # memory use is always above 0%
HIGH = NodeThresholds(cpu=1000, memory=1000, disk=1000)


def moves(catalog: Catalog) -> list[tuple[str, str, str]]:
    """The node's transitions so far: (from, to, trigger), oldest first."""
    return [(e.detail["from"], e.detail["to"], e.detail["trigger"]) for e in reversed(catalog.store.events(kind="node"))]


def state(catalog: Catalog) -> NodeState:
    return catalog.current.nodes[NODE.node].state


def plan(scheduler: MaintenanceScheduler, start: float, end: float, drain_ahead: float, instance: str = "") -> Window:
    """A planned window `start` and `end` seconds from now."""
    now = time.time()
    return scheduler.plan(planned(NODE.node, instance, "kernel upgrade", now + start, now + end, drain_ahead, now))


@contextlib.asynccontextmanager
async def scheduling(catalog: Catalog) -> AsyncIterator[MaintenanceScheduler]:
    scheduler = MaintenanceScheduler(catalog)
    scheduler.load()
    async with started(scheduler):
        yield scheduler


def test_immediate_maintenance_drains_restores_and_refuses_what_the_table_does_not_allow(catalog: Catalog) -> None:
    register(catalog, {"id": "redis-1", "name": "redis", "port": 6379})

    async def scenario() -> None:
        async with scheduling(catalog) as scheduler:
            with pytest.raises(InvalidTransition):
                scheduler.end(NODE_TARGET)  # off when not on
            scheduler.begin(NODE_TARGET, MaintenanceKind.IMMEDIATE, "kernel upgrade")
            assert (state(catalog), catalog.current.nodes[NODE.node].reason) == (NodeState.MAINTENANCE, "kernel upgrade")
            assert catalog.current.answerable("redis") == ()
            entry = catalog.current.entry("redis-1")
            assert entry is not None and (entry.status, entry.maintenance_state) == (Status.MAINTENANCE, NodeState.MAINTENANCE)
            with pytest.raises(InvalidTransition) as refused:
                scheduler.begin(NODE_TARGET, MaintenanceKind.IMMEDIATE, "again")
            assert refused.value.current == "maintenance"
            scheduler.end(NODE_TARGET)
            assert state(catalog) is NodeState.ONLINE  # no checks: nothing to recover
            assert [e.instance.id for e in catalog.current.answerable("redis")] == ["redis-1"]
            assert scheduler.windows() == [] and catalog.store.windows() == []

    run(scenario())
    assert moves(catalog) == [("online", "maintenance", "api"), ("maintenance", "online", "api")]
    assert [e.detail["action"] for e in reversed(catalog.store.events(kind="window"))] == ["opened", "ended"]


def test_leaving_maintenance_lands_on_what_the_figures_say(catalog: Catalog) -> None:
    async def scenario() -> None:
        async with scheduling(catalog) as scheduler:
            monitor = NodeMonitor(catalog, LOW, degrade_after=1)
            scheduler.begin(NODE_TARGET, MaintenanceKind.IMMEDIATE, "disk swap")
            monitor.sample()
            assert state(catalog) is NodeState.MAINTENANCE  # the figures never end maintenance
            scheduler.end(NODE_TARGET)
            assert state(catalog) is NodeState.DEGRADED

    run(scenario())
    assert moves(catalog) == [("online", "maintenance", "api"), ("maintenance", "degraded", "api")]


def test_a_draining_node_is_drained_at_once_and_offline_after_its_timeout(catalog: Catalog) -> None:
    register(catalog, {"id": "redis-1", "name": "redis", "port": 6379})

    async def scenario() -> None:
        async with scheduling(catalog) as scheduler:
            began = time.monotonic()
            window = scheduler.begin(NODE_TARGET, MaintenanceKind.DRAINING, "rack move", drain=1.0)
            assert state(catalog) is NodeState.DRAINING and catalog.current.answerable("redis") == ()
            entry = catalog.current.entry("redis-1")
            assert entry is not None and entry.maintenance_state is NodeState.DRAINING
            assert entry.maintenance_until == window.starts
            await eventually(lambda: state(catalog) is NodeState.OFFLINE, 5, "offline")
            assert time.monotonic() - began >= 0.9
            with pytest.raises(NotDraining):
                scheduler.done(NODE_TARGET)

    run(scenario())
    assert moves(catalog) == [("online", "draining", "api"), ("draining", "offline", "timeout")]


def test_done_cuts_a_drain_short_and_is_refused_when_nothing_drains(catalog: Catalog) -> None:
    async def scenario() -> None:
        async with scheduling(catalog) as scheduler:
            with pytest.raises(NotDraining):
                scheduler.done(NODE_TARGET)
            scheduler.begin(NODE_TARGET, MaintenanceKind.DRAINING, "rack move", drain=600.0)
            window = scheduler.done(NODE_TARGET)
            assert state(catalog) is NodeState.OFFLINE and window.starts <= time.time()
            assert catalog.store.windows()[0].starts == window.starts  # stored, for a restart

    run(scenario())
    assert moves(catalog) == [("online", "draining", "api"), ("draining", "offline", "api")]


def test_a_planned_window_drains_ahead_goes_offline_ends_and_recovers_through_a_tcp_check(catalog: Catalog) -> None:
    async def scenario() -> None:
        service = await TcpService().up()
        register(catalog, {"id": "db-1", "name": "db", "port": service.port,
                           "checks": [{"tcp": f"127.0.0.1:{service.port}", "interval": "1s", "rise": 2}]})
        try:
            async with started(HealthRunner(catalog)), scheduling(catalog) as scheduler:
                await eventually(lambda: status_of(catalog, "db-1") is Status.PASSING, 5, "db passing")
                window = plan(scheduler, start=1.5, end=3.0, drain_ahead=1.0)
                assert state(catalog) is NodeState.ONLINE  # announced, not begun
                assert catalog.current.nodes[NODE.node].windows == (window,)
                await eventually(lambda: state(catalog) is NodeState.DRAINING, 3, "draining ahead")
                assert catalog.current.answerable("db") == ()
                await eventually(lambda: state(catalog) is NodeState.OFFLINE, 3, "offline")
                await eventually(lambda: state(catalog) is NodeState.RECOVERING, 4, "recovering")
                assert catalog.current.answerable("db") == ()  # not before its check passed twice anew
                entry = catalog.current.entry("db-1")
                assert entry is not None and entry.maintenance_state is NodeState.RECOVERING
                await eventually(lambda: state(catalog) is NodeState.ONLINE, 5, "online again")
                assert [e.instance.id for e in catalog.current.answerable("db")] == ["db-1"]
                assert scheduler.windows() == [] and catalog.current.nodes[NODE.node].windows == ()
        finally:
            await service.down()

    run(scenario())
    assert moves(catalog) == [
        ("online", "draining", "schedule"), ("draining", "offline", "schedule"),
        ("offline", "recovering", "schedule"), ("recovering", "online", "health"),
    ]
    actions = [e.detail["action"] for e in reversed(catalog.store.events(kind="window"))]
    assert actions == ["planned", "ended"]
    assert catalog.store.events(kind="maintenance") == []  # the node's recovery is the node's event, not each instance's


def test_a_check_failing_during_recovery_degrades_the_node_until_it_passes(catalog: Catalog) -> None:
    async def scenario() -> None:
        service = await TcpService().up()
        register(catalog, {"id": "db-1", "name": "db", "port": service.port,
                           "checks": [{"tcp": f"127.0.0.1:{service.port}", "interval": "1s"}]})
        try:
            async with started(HealthRunner(catalog)), scheduling(catalog) as scheduler:
                await eventually(lambda: status_of(catalog, "db-1") is Status.PASSING, 5, "db passing")
                scheduler.begin(NODE_TARGET, MaintenanceKind.IMMEDIATE, "upgrade")
                await service.down()  # the work: the service is stopped, and still down when it ends
                scheduler.end(NODE_TARGET)
                await eventually(lambda: state(catalog) is NodeState.DEGRADED, 4, "degraded")
                assert "check db-1:tcp of db-1 critical" in catalog.current.nodes[NODE.node].reason
                assert status_of(catalog, "db-1") is Status.CRITICAL
                await service.up()
                await eventually(lambda: state(catalog) is NodeState.ONLINE, 5, "online")
                assert status_of(catalog, "db-1") is Status.PASSING
        finally:
            await service.down()

    run(scenario())
    assert moves(catalog) == [
        ("online", "maintenance", "api"), ("maintenance", "recovering", "api"),
        ("recovering", "degraded", "health"), ("degraded", "online", "health"),
    ]


def test_back_to_back_windows_hand_the_node_over_without_a_recovery_between(catalog: Catalog) -> None:
    async def scenario() -> None:
        async with scheduling(catalog) as scheduler:
            now = time.time()
            first = scheduler.plan(planned(NODE.node, "", "first", now + 0.3, now + 1.0, 0, now))
            second = scheduler.plan(planned(NODE.node, "", "second", now + 1.5, now + 2.0, 0.5, now))
            assert second.drain_at == first.ends  # adjacent, not overlapping
            await eventually(lambda: state(catalog) is NodeState.DRAINING, 3, "the second drains")
            await eventually(lambda: scheduler.windows() == [] and state(catalog) is NodeState.ONLINE, 3, "both over")

    run(scenario())
    assert moves(catalog) == [
        ("online", "offline", "schedule"), ("offline", "draining", "schedule"),
        ("draining", "offline", "schedule"), ("offline", "online", "schedule"),
    ]


def test_a_service_that_does_not_come_back_holds_the_node_degraded_until_taken_out(catalog: Catalog) -> None:
    async def scenario() -> None:
        service = await TcpService().up()
        register(catalog, {"id": "db-1", "name": "db", "port": service.port,
                           "checks": [{"tcp": f"127.0.0.1:{service.port}", "interval": "1s"}]})
        async with started(HealthRunner(catalog)), scheduling(catalog) as scheduler:
            await eventually(lambda: status_of(catalog, "db-1") is Status.PASSING, 5, "db passing")
            scheduler.begin(NODE_TARGET, MaintenanceKind.IMMEDIATE, "upgrade")
            await service.down()
            scheduler.end(NODE_TARGET)
            await eventually(lambda: state(catalog) is NodeState.DEGRADED, 4, "degraded")
            scheduler.begin((NODE.node, "db-1"), MaintenanceKind.IMMEDIATE, "broken since the upgrade")
            assert state(catalog) is NodeState.ONLINE

    run(scenario())
    assert moves(catalog)[-1] == ("degraded", "online", "api")


def test_a_cancelled_window_changes_nothing(catalog: Catalog) -> None:
    register(catalog, {"id": "redis-1", "name": "redis", "port": 6379})

    async def scenario() -> None:
        async with scheduling(catalog) as scheduler:
            window = plan(scheduler, start=0.6, end=1.0, drain_ahead=0.3)
            scheduler.cancel(window.id)
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:  # through every time the window had, and past it
                assert state(catalog) is NodeState.ONLINE and len(catalog.current.answerable("redis")) == 1
                await asyncio.sleep(0.05)
            assert scheduler.windows() == [] and catalog.store.windows() == []

    run(scenario())
    assert moves(catalog) == []
    assert [e.detail["action"] for e in reversed(catalog.store.events(kind="window"))] == ["planned", "cancelled"]


def test_overlapping_windows_of_one_target_are_refused(catalog: Catalog) -> None:
    register(catalog, {"id": "redis-1", "name": "redis", "port": 6379})

    async def scenario() -> None:
        async with scheduling(catalog) as scheduler:
            first = plan(scheduler, start=600, end=1200, drain_ahead=60)
            with pytest.raises(WindowOverlap) as refused:
                plan(scheduler, start=1100, end=1800, drain_ahead=0)
            assert refused.value.window_id == first.id
            with pytest.raises(WindowOverlap):  # an immediate one now is open-ended: it would hold through the first
                scheduler.begin(NODE_TARGET, MaintenanceKind.IMMEDIATE, "now")
            plan(scheduler, start=1260, end=1800, drain_ahead=60)  # right after: fine
            plan(scheduler, start=600, end=1200, drain_ahead=60, instance="redis-1")  # another target: fine
            assert len(catalog.store.windows()) == 3

    run(scenario())


def test_an_instance_window_drains_that_instance_only_and_it_recovers(catalog: Catalog) -> None:
    async def scenario() -> None:
        service = await TcpService().up()
        check = [{"tcp": f"127.0.0.1:{service.port}", "interval": "1s"}]
        register(catalog, {"id": "db-1", "name": "db", "port": service.port, "address": "127.0.0.1", "checks": check})
        register(catalog, {"id": "db-2", "name": "db", "port": service.port, "address": "127.0.0.2", "checks": check})
        try:
            async with started(HealthRunner(catalog)), scheduling(catalog) as scheduler:
                await eventually(lambda: len(catalog.current.answerable("db")) == 2, 5, "both passing")
                scheduler.begin((NODE.node, "db-1"), MaintenanceKind.DRAINING, "resharding", drain=0.5)
                assert [e.instance.id for e in catalog.current.answerable("db")] == ["db-2"]
                await eventually(lambda: (e := catalog.current.entry("db-1")) is not None
                                 and e.maintenance_state is NodeState.OFFLINE, 3, "db-1 offline")
                scheduler.end((NODE.node, "db-1"))
                entry = catalog.current.entry("db-1")
                assert entry is not None and entry.maintenance_state is NodeState.RECOVERING
                assert [e.instance.id for e in catalog.current.answerable("db")] == ["db-2"]
                await eventually(lambda: len(catalog.current.answerable("db")) == 2, 5, "db-1 back")
        finally:
            await service.down()

    run(scenario())
    assert moves(catalog) == []  # the node itself never moved
    detail = [(e.detail["from"], e.detail["to"], e.detail["trigger"]) for e in reversed(catalog.store.events(kind="maintenance"))]
    assert detail == [(None, "draining", "api"), ("draining", "offline", "timeout"), ("offline", "recovering", "api"),
                      ("recovering", None, "health")]


def test_an_instance_removed_takes_its_windows_and_one_not_registered_is_refused(catalog: Catalog) -> None:
    register(catalog, {"id": "redis-1", "name": "redis", "port": 6379})

    async def scenario() -> None:
        async with scheduling(catalog) as scheduler:
            with pytest.raises(NotFoundError):
                scheduler.begin((NODE.node, "nope"), MaintenanceKind.IMMEDIATE, "x")
            plan(scheduler, start=600, end=1200, drain_ahead=60, instance="redis-1")
            catalog.deregister("redis-1")
            assert scheduler.windows() == []
            await eventually(lambda: catalog.store.windows() == [], 3, "its rows deleted")
            assert catalog.current.nodes[NODE.node].windows == ()
            register(catalog, {"id": "redis-1", "name": "redis", "port": 6379})
            assert status_of(catalog, "redis-1") is Status.PASSING

    run(scenario())
    assert [e.detail["action"] for e in reversed(catalog.store.events(kind="window"))] == [
        "planned", "cancelled: instance removed"
    ]


def test_a_restart_mid_window_keeps_it_and_it_still_ends_by_itself(tmp_path: Path) -> None:
    path = tmp_path / "state" / "pilotfish.db"

    async def scenario() -> None:
        catalog = Catalog(Store(path), NODE)
        async with scheduling(catalog) as scheduler:
            window = plan(scheduler, start=0.0, end=2.0, drain_ahead=0)
            assert state(catalog) is NodeState.OFFLINE
        catalog.store.close()
        restarted = Catalog(Store(path), NODE)
        try:
            async with scheduling(restarted) as scheduler:
                node = restarted.current.nodes[NODE.node]
                assert (node.state, node.reason, node.windows) == (NodeState.OFFLINE, "kernel upgrade", (window,))
                await eventually(lambda: state(restarted) is NodeState.ONLINE, 4, "ended by itself")
                assert scheduler.windows() == []
        finally:
            restarted.store.close()

    run(scenario())


def test_a_window_that_ended_while_the_daemon_was_stopped_is_closed_at_start(store: Store) -> None:
    now = time.time()
    over = Window(0, NODE.node, "", MaintenanceKind.PLANNED, "kernel upgrade", now - 60, now - 50, now - 10, now - 70)
    store.add_window(over, lambda w: events.window("planned", w, {}, Trigger.API))
    catalog = Catalog(store, NODE)
    scheduler = MaintenanceScheduler(catalog)
    scheduler.load()
    assert state(catalog) is NodeState.ONLINE and scheduler.windows() == [] and store.windows() == []
    assert store.events(kind="window")[0].detail["action"] == "ended"
    assert moves(catalog) == []


def test_a_version_1_database_with_the_node_in_maintenance_comes_back_as_a_window(tmp_path: Path) -> None:
    path = tmp_path / "pilotfish.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(f"BEGIN;{MIGRATIONS[1]}PRAGMA user_version=1;COMMIT;")
    detail = '{"from": "online", "reason": "kernel upgrade", "to": "maintenance"}'
    db.execute("INSERT INTO events (ts, kind, subject, detail) VALUES (1.0, 'node', ?, ?)", (NODE.node, detail))
    db.close()
    store = Store(path)
    try:
        [window] = store.windows()
        assert (window.node, window.instance, window.kind, window.reason, window.ends) == (
            NODE.node, "", MaintenanceKind.IMMEDIATE, "kernel upgrade", None
        )
        catalog = Catalog(store, NODE)
        MaintenanceScheduler(catalog).load()
        assert state(catalog) is NodeState.MAINTENANCE
        store.migrate()  # idempotent: no second window
        assert len(store.windows()) == 1
    finally:
        store.close()
