"""A bounded event log: the delete trigger lets only what retention permits go, and the pruner keeps to it."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import run, wait_for
from daemonkit import DaemonFactory
from registry.events import Event, EventKind
from registry.prune import EventPruner
from registry.store import Retention, Store


def fill(store: Store, count: int) -> None:
    """`count` events in one transaction, as a busy catalog writes them."""
    store.write_batch([Event(EventKind.REGISTRATION, f"file:/srv/{n}.yaml", {"n": n}) for n in range(count)])


def seqs(store: Store) -> list[int]:
    return sorted(e.seq for e in store.events(limit=100_000))


def test_young_events_within_max_rows_cannot_be_deleted_whatever_asks(store: Store) -> None:
    fill(store, 10)
    store.set_retention(Retention(max_age=3600, max_rows=5))
    newest = max(seqs(store))
    with pytest.raises(sqlite3.IntegrityError, match="append-only within their retention"):
        store._db.execute("DELETE FROM events WHERE seq = ?", (newest,))
    store._db.execute("DELETE FROM events WHERE seq <= ?", (newest - 5,))  # beyond max_rows: allowed
    assert seqs(store) == list(range(newest - 4, newest + 1))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._db.execute("UPDATE events SET subject = 'x'")  # and never changed


def test_a_batch_prunes_beyond_max_rows_then_what_is_older_than_max_age(store: Store) -> None:
    fill(store, 30)
    store.set_retention(Retention(max_age=3600, max_rows=20))
    assert store.prune_events_batch() == 10 and store.count_events() == 20
    assert store.prune_events_batch() == 0
    store.set_retention(Retention(max_age=0.2, max_rows=1000))
    wait_for(lambda: store.prune_events_batch() == 20, 5, "events past max_age pruned")
    assert store.count_events() == 0


def test_asking_to_prune_with_a_clock_ahead_is_refused_by_the_trigger(store: Store) -> None:
    fill(store, 3)
    store.set_retention(Retention(max_age=3600, max_rows=100))
    with pytest.raises(sqlite3.IntegrityError, match="retention"):
        store.prune_events_batch(now=time.time() + 7200)  # a bug or a wrong clock must not eat the log
    assert store.count_events() == 3


def test_the_pruner_keeps_max_rows_records_itself_once_and_leaves_a_log_within_its_slack_alone(store: Store) -> None:
    fill(store, 2500)
    pruner = EventPruner(store, Retention(max_age=3600, max_rows=1000))
    store.set_retention(pruner.retention)

    async def scenario() -> None:
        assert await pruner.prune() == 1500
        assert store.count_events() == 1001  # the newest 1000, and the prune event
        [pruned] = store.events(kind="prune")
        assert pruned.detail == {"deleted": 1500, "max_age": 3600, "max_rows": 1000, "oldest_seq": 1501}
        fill(store, 5)  # within the slack (1%): no prune, so no prune event per event
        assert await pruner.prune() == 0
        assert len(store.events(kind="prune")) == 1

    run(scenario())


def test_a_daemon_prunes_a_full_log_while_lookups_keep_answering(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    state_dir = tmp_path / "d" / "state"
    seeded = Store(state_dir / "pilotfish.db")
    try:
        for _ in range(6):
            fill(seeded, 10_000)
    finally:
        seeded.close()
    # Within the default max_rows at start: the pruning begins only once lookups are
    # known to be answering, so that the two surely overlap.
    daemon = start_daemon(files={"web.yaml": "name: web\nport: 8080\n"})
    answered: list[float] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def lookups() -> None:
        while not stop.is_set():
            try:
                assert daemon.srv_ports("_web._tcp") == [8080]
                assert daemon.get("/v1/services/web")[0]["port"] == 8080
                answered.append(time.time())  # the clock of the daemon's log lines
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
                return

    poller = threading.Thread(target=lookups)
    poller.start()
    try:
        wait_for(lambda: len(answered) >= 3 or failures, 10, "lookups answering")
        config = yaml.safe_load(daemon.config_path.read_text())
        config["events"] = {"max_rows": 1000, "max_age": "30d"}
        daemon.config_path.write_text(yaml.safe_dump(config))
        daemon.signal(signal.SIGHUP)
        pruned = wait_for(lambda: daemon.get("/v1/events?kind=prune")["events"], 30, "a prune event")
        [line] = wait_for(lambda: [e for e in daemon.logs() if e["msg"] == "event log pruned"], 10, "its log line")
    finally:
        stop.set()
        poller.join(10)
    assert failures == []
    assert pruned[0]["detail"]["deleted"] >= 59_000
    began = line["ts"] - line["seconds"]
    assert [t for t in answered if began <= t <= line["ts"]], "no lookup was answered while the log was pruned"
    gaps = [later - earlier for earlier, later in zip(answered, answered[1:])]
    assert max(gaps) < 2.0, "a lookup waited behind the pruning"
    page = daemon.get("/v1/events?limit=1000")
    assert len(page["events"]) == 1000 and page["next_before"] is not None
    assert len(daemon.get(f"/v1/events?limit=1000&before={page['next_before']}")["events"]) < 20
