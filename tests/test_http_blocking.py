"""Blocking queries: `?index=N&wait=...` returns when the catalog moves past N."""

from __future__ import annotations

import threading
import time

from apikit import ApiServer
from conftest import Reply, holds_for


def test_blocking_query_is_released_by_a_change(api: ApiServer) -> None:
    api.post("/v1/services", {"name": "web", "port": 8080})
    first = api.get("/v1/services/web")
    replies: list[Reply] = []
    waiter = threading.Thread(
        target=lambda: replies.append(api.get(f"/v1/services/web?index={first.index}&wait=60s", timeout=70))
    )
    started = time.monotonic()
    waiter.start()
    holds_for(lambda: not replies, 0.3, "the waiter must still be parked until something changes")
    api.post("/v1/services", {"name": "web", "port": 8081})
    waiter.join(10)
    assert replies, "blocking query was not released"
    released = replies[0]
    assert time.monotonic() - started < 10
    assert released.status == 200
    assert released.index > first.index
    assert sorted(e["port"] for e in released.body) == [8080, 8081]


def test_blocking_query_times_out_with_the_same_index(api: ApiServer) -> None:
    index = api.get("/v1/services").index
    started = time.monotonic()
    reply = api.get(f"/v1/services?index={index}&wait=300ms")
    elapsed = time.monotonic() - started
    assert reply.status == 200
    assert reply.index == index
    # Jitter only ever shortens the wait, by at most a sixteenth.
    assert 0.25 < elapsed < 5


def test_index_already_passed_answers_at_once(api: ApiServer) -> None:
    reply = api.get("/v1/status?index=0&wait=10m")
    assert reply.status == 200
    assert reply.index >= 1


def test_index_from_before_a_restart_answers_at_once(api: ApiServer) -> None:
    # The index starts again at 1 when the daemon restarts: a client still holding
    # a larger one must get the current state (and index) now, not after `wait`.
    current = api.catalog.current.index
    started = time.monotonic()
    reply = api.get(f"/v1/services?index={current + 1000}&wait=5s")
    assert reply.status == 200
    assert reply.index == current
    assert time.monotonic() - started < 2


def test_a_client_can_wait_for_a_service_not_registered_yet(api: ApiServer) -> None:
    # The 404 carries the index too, so a watch can start before the service exists.
    missing = api.get("/v1/services/late")
    assert missing.status == 404
    replies: list[Reply] = []
    waiter = threading.Thread(
        target=lambda: replies.append(api.get(f"/v1/services/late?index={missing.index}&wait=30s", timeout=40))
    )
    waiter.start()
    holds_for(lambda: not replies, 0.3, "parked until something changes")
    api.post("/v1/services", {"name": "late", "port": 7000})
    waiter.join(10)
    assert replies and replies[0].status == 200
    assert [e["port"] for e in replies[0].body] == [7000]


def test_every_read_is_blocking_capable(api: ApiServer) -> None:
    index = api.catalog.current.index
    for path in ("/v1/conflicts", "/v1/events", "/v1/status", "/v1/services/x/conflicts", "/v1/nodes/n/config"):
        reply = api.get(f"{path}?index={index}&wait=50ms")
        assert reply.status == 200, path
        assert reply.index == index


def test_bad_blocking_parameters_are_400(api: ApiServer) -> None:
    assert api.get("/v1/services?index=abc").error["problems"][0]["field"] == "index"
    assert api.get("/v1/services?index=-1").error["problems"][0]["field"] == "index"
    assert api.get("/v1/services?index=1&wait=30").error["problems"][0]["field"] == "wait"
    assert api.get("/v1/services?wait=soon").error["problems"][0]["field"] == "wait"
