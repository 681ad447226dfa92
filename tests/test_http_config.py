"""Typed config over HTTP: global and per-node values, fallback, merged view."""

from __future__ import annotations

import threading
import time

import pytest

from apikit import ApiServer
from conftest import Reply, holds_for


def test_global_value_round_trip_cast(api: ApiServer) -> None:
    reply = api.put("/v1/config/check_concurrency", {"value": "30", "value_type": "int"})
    assert reply.status == 200, reply.text
    assert reply.body == {"key": "check_concurrency", "value": 30, "value_type": "int", "scope": "global"}
    got = api.get("/v1/config/check_concurrency")
    assert got.body["value"] == 30
    assert "X-Pilotfish-Index" in got.headers


def test_value_that_does_not_cast_is_400_and_changes_nothing(api: ApiServer) -> None:
    api.put("/v1/config/limit", {"value": 5, "value_type": "int"})
    reply = api.put("/v1/config/limit", {"value": "lots", "value_type": "int"})
    assert reply.status == 400
    assert reply.error["code"] == "invalid_value"
    assert reply.error["key"] == "limit"
    assert api.get("/v1/config/limit").body["value"] == 5


def test_a_string_with_a_lone_surrogate_is_400_not_500(api: ApiServer) -> None:
    api.put("/v1/config/motd", {"value": "line one\nline two"})
    reply = api.request("PUT", "/v1/config/motd", raw=b'{"value": "bad \\ud800"}')
    assert reply.status == 400 and reply.error["code"] == "invalid_value", reply.text
    assert "lone surrogate" in reply.error["message"]
    assert api.get("/v1/config/motd").body["value"] == "line one\nline two"


def test_put_body_validation(api: ApiServer) -> None:
    assert api.put("/v1/config/k", {"value_type": "int"}).error["problems"][0]["field"] == "value"
    assert api.put("/v1/config/k", {"value": "1", "value_type": "float"}).error["problems"][0]["field"] == "value_type"
    assert api.put("/v1/config/k", {"value": "1", "colour": "red"}).error["problems"][0]["field"] == "colour"
    assert api.put("/v1/config/k", {"value": "plain"}).body["value_type"] == "string"


def test_node_value_falls_back_to_global(api: ApiServer) -> None:
    api.put("/v1/config/debug", {"value": "false", "value_type": "bool"})
    fallback = api.get("/v1/nodes/node1/config/debug").body
    assert (fallback["value"], fallback["scope"]) == (False, "global")
    api.put("/v1/nodes/node1/config/debug", {"value": "true", "value_type": "bool"})
    own = api.get("/v1/nodes/node1/config/debug").body
    assert (own["value"], own["scope"]) == (True, "node")
    assert api.get("/v1/config/debug").body["value"] is False
    assert api.get("/v1/nodes/other/config/debug").body["scope"] == "global"


def test_merged_view(api: ApiServer) -> None:
    api.put("/v1/config/a", {"value": "1", "value_type": "int"})
    api.put("/v1/config/b", {"value": '{"x": [1]}', "value_type": "json"})
    api.put("/v1/nodes/node1/config/a", {"value": "2", "value_type": "int"})
    view = api.get("/v1/nodes/node1/config").body
    assert view["node"] == "node1"
    assert view["config"]["a"] == {"key": "a", "value": 2, "value_type": "int", "scope": "node"}
    assert view["config"]["b"]["value"] == {"x": [1]}
    assert api.get("/v1/nodes/empty/config").body["config"]["a"]["value"] == 1


def test_delete_and_missing_keys(api: ApiServer) -> None:
    assert api.get("/v1/config/none").status == 404
    assert api.delete("/v1/config/none").status == 404
    api.put("/v1/config/x", {"value": "1"})
    api.put("/v1/nodes/node1/config/x", {"value": "2"})
    assert api.delete("/v1/nodes/node1/config/x").body == {"deleted": "x", "scope": "node"}
    assert api.get("/v1/nodes/node1/config/x").body["value"] == "1"
    assert api.delete("/v1/config/x").status == 200
    assert api.get("/v1/nodes/node1/config/x").error["code"] == "not_found"


@pytest.mark.parametrize(
    ("read", "write"),
    [
        ("/v1/config/pool", ("PUT", "/v1/config/pool", {"value": "31", "value_type": "int"})),
        ("/v1/nodes/node1/config", ("PUT", "/v1/nodes/node1/config/pool", {"value": "32", "value_type": "int"})),
        ("/v1/nodes/node1/config/pool", ("DELETE", "/v1/config/pool", None)),
    ],
)
def test_a_blocking_config_read_wakes_within_a_second_of_a_write(
    api: ApiServer, read: str, write: tuple[str, str, dict[str, str] | None]
) -> None:
    api.put("/v1/config/pool", {"value": "30", "value_type": "int"})
    index = api.get(read).index
    replies: list[tuple[float, Reply]] = []

    def wait() -> None:
        reply = api.get(f"{read}?index={index}&wait=30s", timeout=40)
        replies.append((time.monotonic(), reply))

    waiter = threading.Thread(target=wait)
    waiter.start()
    holds_for(lambda: not replies, 0.3, "parked until something is written")
    written_at = time.monotonic()
    assert api.request(*write).status == 200
    waiter.join(10)
    [(woke_at, reply)] = replies
    assert woke_at - written_at < 1.0, "the blocking read slept through the write"
    assert reply.index > index
    if write[0] == "DELETE":
        assert reply.status == 404  # the key it waited on is gone: said at once
    else:
        assert reply.body is not None and "pool" in str(reply.body)
