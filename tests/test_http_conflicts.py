"""Conflict rules over HTTP: list, add, delete, and the per-service view."""

from __future__ import annotations

from apikit import ApiServer

RULE = {"a": "mongodb", "b": "ferretdb", "type": "port", "reason": "both bind 27017"}


def test_list_has_the_shipped_rules(api: ApiServer) -> None:
    reply = api.get("/v1/conflicts")
    assert reply.status == 200
    pairs = {(r["a"], r["b"]) for r in reply.body["rules"]}
    assert ("redis-server", "redis-stack-server") in pairs
    assert ("apache2", "nginx") in pairs
    assert reply.index == api.catalog.current.index


def test_added_rule_refuses_the_next_registration(api: ApiServer) -> None:
    reply = api.post("/v1/conflicts", RULE)
    assert reply.status == 201, reply.text
    assert (reply.body["a"], reply.body["b"]) == ("ferretdb", "mongodb")
    assert isinstance(reply.body["id"], int)
    assert api.post("/v1/services", {"name": "mongodb", "port": 27017}).status == 201
    refused = api.post("/v1/services", {"name": "ferretdb", "port": 27018})
    assert refused.status == 409
    assert refused.error["reason"] == "both bind 27017"


def test_add_rule_validation(api: ApiServer) -> None:
    reply = api.post("/v1/conflicts", {"a": "x", "type": "colour", "reason": "r", "extra": 1})
    assert reply.status == 400
    assert {p["field"] for p in reply.error["problems"]} == {"b", "type", "extra"}
    assert api.post("/v1/conflicts", RULE | {"b": "mongodb"}).error["problems"][0]["field"] == "b"
    assert api.request("POST", "/v1/conflicts", raw=b"[").status == 400


def test_rule_names_must_be_service_names(api: ApiServer) -> None:
    # A rule on "Redis Server" could never match a registration: refuse it, as the config file does.
    reply = api.post("/v1/conflicts", RULE | {"a": "Redis Server"})
    assert reply.status == 400, reply.text
    assert [p["field"] for p in reply.error["problems"]] == ["a"]
    assert all(r["a"] != "Redis Server" for r in api.get("/v1/conflicts").body["rules"])


def test_delete_rule_id_beyond_sqlite_integers_is_404(api: ApiServer) -> None:
    reply = api.delete("/v1/conflicts/99999999999999999999999")
    assert reply.status == 404, reply.text
    assert reply.error["code"] == "not_found"


def test_delete_rule(api: ApiServer) -> None:
    rule_id = api.post("/v1/conflicts", RULE).body["id"]
    reply = api.delete(f"/v1/conflicts/{rule_id}")
    assert reply.status == 200
    assert reply.body["deleted"]["id"] == rule_id
    assert all(r["id"] != rule_id for r in api.get("/v1/conflicts").body["rules"])
    assert api.delete(f"/v1/conflicts/{rule_id}").status == 404
    assert api.delete("/v1/conflicts/abc").error["problems"][0]["field"] == "id"


def test_service_conflicts_names_what_is_in_the_way(api: ApiServer) -> None:
    clear = api.get("/v1/services/redis-stack-server/conflicts")
    assert clear.status == 200
    assert clear.body["blocked"] is False
    [rule] = clear.body["rules"]
    assert rule["other"] == "redis-server"
    assert rule["registered"] == []
    api.post("/v1/services", {"name": "redis-server"})
    blocked = api.get("/v1/services/redis-stack-server/conflicts").body
    assert blocked["blocked"] is True
    assert blocked["rules"][0]["registered"][0]["id"] == "redis-server-6379"
    assert api.get("/v1/services/redis-stack-server/conflicts?node=elsewhere").body["blocked"] is False
    assert api.get("/v1/services/unruled/conflicts").body["rules"] == []


def test_a_fleet_rule_id_on_a_single_host_is_not_found(api: ApiServer) -> None:
    reply = api.delete("/v1/conflicts/memcached+varnish")
    assert reply.status == 404 and reply.error["code"] == "not_found"
