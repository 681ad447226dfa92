"""Maintenance over HTTP: the three kinds, windows listed, changed and cancelled, and every refusal."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from apikit import ApiServer
from conftest import Reply, wait_for


@pytest.fixture
def web(api: ApiServer) -> ApiServer:
    api.apply_yaml("/srv/web.yaml", "name: web\nport: 8080\n")
    return api


def node(api: ApiServer) -> dict[str, Any]:
    body: dict[str, Any] = api.get("/v1/maintenance").body
    return body


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "enable", "required"),
        ({"enable": "yes"}, "enable", "true or false"),
        ({"enable": True, "kind": "someday"}, "kind", "one of immediate, draining, planned"),
        ({"enable": True, "colour": "red"}, "colour", "unknown field"),
        ({"enable": True, "enabled": False}, "enabled", "not both"),  # enable won, in silence
        ({"enable": True, "drain_timeout": "5m"}, "drain_timeout", "only with enable: true and kind: draining"),
        ({"enable": True, "kind": "draining", "start": "+1h"}, "start", "kind: planned"),
        ({"enable": False, "kind": "planned", "end": "+1h"}, "end", "only with enable: true"),
        ({"enable": True, "kind": "draining", "drain_timeout": "2d"}, "drain_timeout", "must be a duration string"),
        ({"enable": True, "kind": "draining", "drain_timeout": "25h"}, "drain_timeout", "at most 24h"),
        ({"enable": True, "kind": "planned", "end": "+1h"}, "start", "required for a planned window"),
        ({"enable": True, "kind": "planned", "start": "noon", "end": "+1h"}, "start", "is not a time"),
        ({"enable": True, "kind": "planned", "start": "+2h", "end": "+1h"}, "end", "must be after the start"),
        ({"enable": True, "kind": "planned", "start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"},
         "end", "is in the past"),
        ({"enable": True, "reason": "x" * 1025}, "reason", "at most 1024"),
        # Year 1 used to pass and then fail as a 500: its drain began before year 1.
        ({"enable": True, "kind": "planned", "start": "0001-01-01T00:00:00Z", "end": "+1h"}, "start", "before 1970"),
        # A lone surrogate used to reach SQLite's encoder: a 500.
        ({"enable": True, "reason": "\ud800"}, "reason", "lone surrogate"),
        ({"enable": True, "reason": "rack\nmove"}, "reason", "control character"),
    ],
)
def test_a_maintenance_body_at_fault_is_400_naming_the_field_and_changes_nothing(
    web: ApiServer, body: dict[str, Any], field: str, message: str
) -> None:
    for path in ("/v1/node/maintenance", "/v1/services/web-8080/maintenance"):
        reply = web.put(path, body)
        assert reply.status == 400, reply.text
        [problem] = reply.error["problems"]
        assert problem["field"] == field and message in problem["message"], problem
    assert node(web)["windows"] == [] and web.catalog.current.nodes["node1"].state.value == "online"


def test_a_planned_window_is_announced_listed_changed_and_cancelled(web: ApiServer) -> None:
    before = web.get("/v1/maintenance").index
    woken: list[Reply] = []
    waiter = threading.Thread(target=lambda: woken.append(web.get(f"/v1/maintenance?index={before}&wait=30s", timeout=40)))
    waiter.start()
    reply = web.put("/v1/node/maintenance", {"enable": True, "kind": "planned", "start": "+1h", "end": "+2h",
                                             "drain_ahead": "10m", "reason": "kernel upgrade"})
    assert reply.status == 200, reply.text
    assert reply.body["state"] == "online" and reply.body["maintenance"] is None  # announced, not begun
    window = reply.body["window"]
    assert (window["kind"], window["phase"], window["reason"], window["instance"]) == ("planned", "planned", "kernel upgrade", None)
    waiter.join(10)
    assert woken and woken[0].body["windows"] == [window], "a blocking read of the windows wakes when one is planned"
    status = web.get("/v1/status").body
    assert status["node"]["windows"] == [window]
    events = web.get("/v1/events?kind=window").body["events"]
    assert [(e["detail"]["action"], e["detail"]["window"]["id"]) for e in events] == [("planned", window["id"])]

    changed = web.put(f"/v1/maintenance/{window['id']}", {"end": "+3h", "reason": "kernel and firmware"})
    assert changed.status == 200 and changed.body["reason"] == "kernel and firmware" and changed.body["end"] > window["end"]
    assert web.put(f"/v1/maintenance/{window['id']}", {"kind": "immediate"}).status == 400
    assert web.put(f"/v1/maintenance/{window['id']}", {}).status == 400
    assert web.put("/v1/maintenance/999", {"end": "+3h"}).status == 404
    assert web.put("/v1/maintenance/x1", {"end": "+3h"}).status == 400

    cancelled = web.delete(f"/v1/maintenance/{window['id']}")
    assert cancelled.status == 200 and cancelled.body["id"] == window["id"]
    assert web.delete(f"/v1/maintenance/{window['id']}").status == 404
    assert node(web)["windows"] == []
    actions = [e["detail"]["action"] for e in reversed(web.get("/v1/events?kind=window").body["events"])]
    assert actions == ["planned", "changed", "cancelled"]
    assert web.get("/v1/events?kind=node").body["events"] == []


def test_maintenance_off_before_a_planned_window_says_the_window_is_still_coming(web: ApiServer) -> None:
    """It used to say "cannot go from online to online", and the operator who meant
    to call the window off believed it gone."""
    window = web.put("/v1/node/maintenance", {"enable": True, "kind": "planned", "start": "+1h", "end": "+2h"}).body["window"]
    off = web.put("/v1/node/maintenance", {"enable": False})
    assert off.status == 409 and off.error["code"] == "invalid_transition"
    assert f"window {window['id']} is planned from {window['drain_at']}: cancel it" in off.error["message"], off.text
    assert node(web)["windows"] == [window]


def test_a_change_at_fault_is_400_and_leaves_the_window_as_it_was(web: ApiServer) -> None:
    window = web.put("/v1/node/maintenance", {"enable": True, "kind": "planned", "start": "+1h", "end": "+2h"}).body["window"]
    for body, field in [({"start": "0001-01-01T00:00:00Z"}, "start"), ({"reason": "\ud800"}, "reason"),
                        ({"end": "1969-12-31T23:59:59Z"}, "end")]:
        reply = web.put(f"/v1/maintenance/{window['id']}", body)
        assert reply.status == 400 and reply.error["problems"][0]["field"] == field, reply.text
    assert node(web)["windows"] == [window]


def test_an_overlapping_window_is_409_naming_the_one_in_the_way(web: ApiServer) -> None:
    first = web.put("/v1/node/maintenance", {"enable": True, "kind": "planned", "start": "+1h", "end": "+2h"})
    assert first.status == 200
    reply = web.put("/v1/node/maintenance", {"enable": True, "kind": "planned", "start": "+90m", "end": "+3h"})
    assert reply.status == 409 and reply.error["code"] == "window_overlap"
    assert reply.error["window"] == first.body["window"]["id"] and reply.error["target"] == "node node1"
    immediate = web.put("/v1/node/maintenance", {"enable": True})
    assert immediate.status == 409 and immediate.error["code"] == "window_overlap"
    # Moving a second window onto the first is refused too.
    second = web.put("/v1/node/maintenance", {"enable": True, "kind": "planned", "start": "+4h", "end": "+5h"})
    moved = web.put(f"/v1/maintenance/{second.body['window']['id']}", {"start": "+1h30m"})
    assert moved.status == 409 and moved.error["code"] == "window_overlap"
    assert len(node(web)["windows"]) == 2


def test_draining_shows_the_time_left_and_done_or_off_are_refused_when_they_mean_nothing(web: ApiServer) -> None:
    refused = web.put("/v1/node/maintenance/done")
    assert refused.status == 409 and refused.error["code"] == "invalid_transition"
    assert "not draining" in refused.error["message"]
    off = web.put("/v1/node/maintenance", {"enable": False})
    assert off.status == 409 and off.error["current"] == "online" and off.error["requested"] == "online"
    assert off.error["message"] == "node node1 is online, not in maintenance: nothing to end"
    reply = web.put("/v1/node/maintenance", {"enable": True, "kind": "draining", "drain_timeout": "10m", "reason": "rack"})
    assert reply.status == 200 and reply.body["state"] == "draining"
    held = reply.body["maintenance"]
    assert held["state"] == "draining" and held["reason"] == "rack" and 590 < held["time_left"] <= 600
    assert web.get("/v1/services/web").body == []  # out of healthy lookups at once
    [drained] = web.get("/v1/services/web?status=any").body
    assert drained["status"] == "maintenance" and drained["maintenance_state"] == "draining"
    assert drained["maintenance_until"] == held["until"]
    done = web.put("/v1/node/maintenance/done")
    assert done.status == 200 and done.body["state"] == "offline" and done.body["maintenance"]["until"] is None
    again = web.put("/v1/node/maintenance", {"enable": True})
    assert again.status == 409 and again.error["code"] == "invalid_transition"
    assert web.put("/v1/node/maintenance", {"enable": False}).body["state"] == "online"
    moves = [(e["detail"]["to"], e["detail"]["trigger"]) for e in reversed(web.get("/v1/events?kind=node").body["events"])]
    assert moves == [("draining", "api"), ("offline", "api"), ("online", "api")]


def test_instance_maintenance_of_every_kind_and_its_refusals(web: ApiServer) -> None:
    reply = web.put("/v1/services/web-8080/maintenance", {"enable": True, "kind": "draining", "drain_timeout": "1s"})
    assert reply.status == 200 and reply.body["maintenance_state"] == "draining"
    assert reply.body["window"]["instance"] == "web-8080"
    wait_for(lambda: web.get("/v1/services/web?status=any").body[0]["maintenance_state"] == "offline", 5, "offline")
    assert web.put("/v1/services/web-8080/maintenance/done").status == 409
    off = web.put("/v1/services/web-8080/maintenance", {"enable": False})
    assert off.status == 200 and off.body["status"] == "passing"  # no checks: back at once
    assert web.put("/v1/services/web-8080/maintenance?node=elsewhere", {"enable": True}).status == 404
    assert web.put("/v1/services/nope/maintenance/done").status == 404
    assert web.catalog.current.nodes["node1"].state.value == "online"


def test_the_node_answer_carries_the_state_table(web: ApiServer) -> None:
    reply = web.put("/v1/node/maintenance", {"enable": True, "reason": "now"})
    table = reply.body["transitions"]
    assert table["draining"] == ["degraded", "offline", "online", "recovering"]
    assert set(table) == {"online", "degraded", "draining", "maintenance", "offline", "recovering"}
    assert reply.body["figures"] is None  # the harness runs no node monitor; the rest is there
