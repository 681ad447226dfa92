"""Registrations through the API: created, replaced, refused, durable, deregistered."""

from __future__ import annotations

from apikit import ApiServer
from registry.store import Store

API_DB = {"name": "api-db", "port": 5544, "protocol": "postgres", "tags": ["primary"]}


def test_register_returns_201_and_the_stored_instance(api: ApiServer) -> None:
    before = api.catalog.current.index
    reply = api.post("/v1/services", API_DB)
    assert reply.status == 201, reply.text
    assert reply.body["id"] == "api-db-5544"
    assert reply.body["source"] == "api"
    assert reply.body["url"] == "postgres://10.0.0.1:5544"
    assert reply.index > before
    # Visible to lookups in the very snapshot the answer names.
    assert [e["id"] for e in api.get("/v1/services/api-db").body] == ["api-db-5544"]


def test_register_is_durable_before_the_answer(api: ApiServer) -> None:
    assert api.post("/v1/services", API_DB).status == 201
    other = Store(api.store.path)
    try:
        assert [body["id"] for body in other.registrations()] == ["api-db-5544"]
    finally:
        other.close()


def test_reposting_an_api_instance_replaces_it_with_200(api: ApiServer) -> None:
    assert api.post("/v1/services", API_DB).status == 201
    reply = api.post("/v1/services", API_DB | {"version": "15"})
    assert reply.status == 200
    assert api.get("/v1/services/api-db").body[0]["version"] == "15"


def test_invalid_registration_is_400_with_the_field_at_fault(api: ApiServer) -> None:
    reply = api.post("/v1/services", {"name": "web", "port": 99999})
    assert reply.status == 400
    assert reply.error["code"] == "invalid"
    assert [p["field"] for p in reply.error["problems"]] == ["port"]
    assert "65535" in reply.error["problems"][0]["message"]
    assert api.post("/v1/services", {"name": "web", "port": 80, "prot": "x"}).error["problems"][0]["field"] == "prot"
    assert api.post("/v1/services", ["not", "an", "object"]).status == 400


def test_bad_json_is_400(api: ApiServer) -> None:
    reply = api.request("POST", "/v1/services", raw=b"{name: web")
    assert reply.status == 400
    assert reply.error["code"] == "invalid_json"


def test_nan_and_infinity_are_not_json(api: ApiServer) -> None:
    # Python's json module reads them; stored, they would come back as bare NaN, which
    # no strict JSON parser (jq, browsers) accepts.
    for raw in (b'{"value": NaN, "value_type": "json"}', b'{"value": [-Infinity], "value_type": "json"}',
                b'{"value": 1e400, "value_type": "json"}'):
        reply = api.request("PUT", "/v1/config/k", raw=raw)
        assert reply.status == 400, reply.text
        assert reply.error["code"] == "invalid_json"
    assert api.get("/v1/config/k").status == 404


def test_deeply_nested_json_is_400_not_500(api: ApiServer) -> None:
    # json.loads raises RecursionError past Python's recursion limit.
    nested = b"[" * 100_000 + b"]" * 100_000
    for method, path in (("POST", "/v1/services"), ("PUT", "/v1/config/k"), ("PUT", "/v1/services/x-1/maintenance")):
        reply = api.request(method, path, raw=nested)
        assert reply.status == 400, (path, reply.text)
        assert reply.error["code"] == "invalid_json"


def test_conflict_rule_refuses_with_rule_reason_and_incumbent(api: ApiServer) -> None:
    assert api.post("/v1/services", {"name": "redis-server"}).status == 201
    reply = api.post("/v1/services", {"name": "redis-stack-server", "port": 6380, "protocol": "redis"})
    assert reply.status == 409
    error = reply.error
    assert error["code"] == "conflict"
    assert {error["rule"]["a"], error["rule"]["b"]} == {"redis-server", "redis-stack-server"}
    assert error["reason"] == "both bind 6379"
    assert error["incumbent"]["name"] == "redis-server"
    assert error["incumbent"]["id"] == "redis-server-6379"
    # Nothing changed: the incumbent stays, the candidate is absent.
    assert api.get("/v1/services/redis-stack-server").status == 404
    assert len(api.get("/v1/services/redis-server").body) == 1


def test_same_socket_conflicts_without_a_rule(api: ApiServer) -> None:
    assert api.post("/v1/services", {"name": "alpha", "port": 9000}).status == 201
    reply = api.post("/v1/services", {"name": "beta", "port": 9000})
    assert reply.status == 409
    assert reply.error["rule"] is None
    assert reply.error["incumbent"]["name"] == "alpha"


def test_put_replaces_an_api_instance(api: ApiServer) -> None:
    api.post("/v1/services", API_DB)
    reply = api.put("/v1/services/api-db-5544", API_DB | {"tags": ["replica"]})
    assert reply.status == 200, reply.text
    assert reply.body["tags"] == ["replica"]
    assert api.get("/v1/services/api-db?tag=replica").body[0]["id"] == "api-db-5544"


def test_put_errors(api: ApiServer) -> None:
    api.post("/v1/services", API_DB)
    mismatch = api.put("/v1/services/api-db-5544", API_DB | {"id": "other"})
    assert mismatch.status == 400
    assert mismatch.error["problems"][0]["field"] == "id"
    assert api.put("/v1/services/nobody", API_DB).status == 404
    assert api.put("/v1/services/api-db-5544", API_DB | {"port": "x"}).status == 400


def test_delete_deregisters_then_404(api: ApiServer) -> None:
    api.post("/v1/services", API_DB)
    reply = api.delete("/v1/services/api-db-5544")
    assert reply.status == 200
    assert reply.body["deregistered"]["id"] == "api-db-5544"
    assert api.get("/v1/services/api-db").status == 404
    assert api.delete("/v1/services/api-db-5544").status == 404
    other = Store(api.store.path)
    try:
        assert other.registrations() == []
    finally:
        other.close()


def test_yaml_owned_instance_cannot_be_deleted_or_replaced(api: ApiServer) -> None:
    path = "/etc/pilotfish/services.d/cache.yaml"
    api.apply_yaml(path, "name: cache\nport: 11211\nprotocol: memcache\n")
    reply = api.delete("/v1/services/cache-11211")
    assert reply.status == 409
    assert reply.error["code"] == "read_only"
    assert reply.error["file"] == path
    assert path in reply.error["message"]
    assert api.put("/v1/services/cache-11211", {"name": "cache", "port": 11211}).error["file"] == path
    # Registering the same id through the API is refused too, naming the file.
    taken = api.post("/v1/services", {"name": "cache", "port": 11211})
    assert taken.status == 409
    assert taken.error["code"] == "duplicate_id"
    assert taken.error["file"] == path
    assert len(api.get("/v1/services/cache").body) == 1


def test_registrations_and_rejections_are_counted(api: ApiServer) -> None:
    api.post("/v1/services", API_DB)
    api.post("/v1/services", {"name": "x"})
    metrics = api.get("/metrics").text
    assert 'pilotfish_registrations_total{source="api"}' in metrics
    assert 'pilotfish_rejections_total{source="api"}' in metrics
