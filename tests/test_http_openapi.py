"""The OpenAPI document matches the routes the app serves, both ways."""

from __future__ import annotations

from aiohttp import web

from apikit import ApiServer
from resolver.http.consul_http import CONSUL_PREFIXES
from resolver.http.openapi import OPERATIONS, routes

HEALTH_ROUTES = {("PUT", "/v1/checks/{check_id}/{result}"), ("GET", "/v1/node"), ("PUT", "/v1/node/maintenance")}


def _app(api: ApiServer) -> web.Application:
    return api.app


def test_every_route_is_in_the_document_and_every_operation_is_a_route(api: ApiServer) -> None:
    reply = api.get("/v1/openapi.json")
    assert reply.status == 200
    doc = reply.body
    assert doc["openapi"].startswith("3.0")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == routes(_app(api))


def test_every_route_has_a_written_description(api: ApiServer) -> None:
    undocumented = routes(_app(api)) - set(OPERATIONS)
    assert not undocumented
    # Described operations that the app does not serve are stale.
    stale = set(OPERATIONS) - routes(_app(api))
    assert not stale


def test_path_parameters_are_declared(api: ApiServer) -> None:
    doc = api.get("/v1/openapi.json").body
    for path, ops in doc["paths"].items():
        wanted = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == wanted, (method, path)
            assert op["responses"], (method, path)


def test_design_routes_are_served(api: ApiServer) -> None:
    served = routes(_app(api))
    for route in [
        ("GET", "/v1/services"),
        ("GET", "/v1/services/{name}"),
        ("GET", "/v1/services/{name}/url"),
        ("POST", "/v1/services"),
        ("PUT", "/v1/services/{name}"),
        ("DELETE", "/v1/services/{name}"),
        ("GET", "/v1/conflicts"),
        ("POST", "/v1/conflicts"),
        ("DELETE", "/v1/conflicts/{id}"),
        ("GET", "/v1/services/{name}/conflicts"),
        ("GET", "/v1/config/{key}"),
        ("PUT", "/v1/config/{key}"),
        ("DELETE", "/v1/config/{key}"),
        ("GET", "/v1/nodes/{node}/config/{key}"),
        ("PUT", "/v1/nodes/{node}/config/{key}"),
        ("DELETE", "/v1/nodes/{node}/config/{key}"),
        ("GET", "/v1/nodes/{node}/config"),
        ("GET", "/v1/events"),
        ("GET", "/v1/status"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("PUT", "/v1/checks/{check_id}/{result}"),
        ("GET", "/v1/node"),
        ("PUT", "/v1/node/maintenance"),
        # Consul-compatible reads.
        ("GET", "/v1/agent/self"),
        ("GET", "/v1/agent/services"),
        ("GET", "/v1/status/leader"),
        ("GET", "/v1/catalog/services"),
        ("GET", "/v1/catalog/service/{name}"),
        ("GET", "/v1/health/service/{name}"),
        ("GET", "/v1/health/state/{state}"),
    ]:
        assert route in served, route


def test_every_read_carries_the_index_header(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", "name: web\nport: 8080\n")
    api.put("/v1/config/k", {"value": "v"})
    values = {"name": "web", "node": "node1", "key": "k", "check_id": "none", "result": "pass", "id": "1", "state": "any"}
    for method, path in sorted(routes(_app(api))):
        # /v1/node needs the node monitor, which this harness does not run (the health tests do).
        if method != "GET" or path == "/v1/node":
            continue
        reply = api.get(path.format(**values))
        assert reply.status == 200, (path, reply.text)
        # Consul's reads carry Consul's header, for Consul's clients.
        header = "X-Consul-Index" if path.startswith(CONSUL_PREFIXES) else "X-Pilotfish-Index"
        assert int(reply.headers[header]) == api.catalog.current.index, path


def test_no_query_parameter_is_an_object_clients_would_send_as_bare_keys(api: ApiServer) -> None:
    # Found by schemathesis: `meta` was declared a form-exploded object, which OpenAPI
    # clients send as `team=edge`; the API reads `meta.team=edge`, so such a filter
    # was silently ignored. The meta filters are described in words instead.
    doc = api.get("/v1/openapi.json").body
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                assert param["schema"].get("type") != "object", (method, path, param["name"])
    assert "meta.<key>=<value>" in doc["paths"]["/v1/services/{name}"]["get"]["description"]
    api.apply_yaml("/srv/web.yaml", "name: web\nport: 8080\nmeta: {team: edge}\n")
    assert len(api.get("/v1/services/web?meta.team=edge").body) == 1
    assert api.get("/v1/services/web?meta.team=core").body == []


def test_null_optional_strings_are_accepted_as_documented(api: ApiServer) -> None:
    # Found by schemathesis: `"reason": null` was accepted but documented as a string.
    doc = api.get("/v1/openapi.json").body
    schemas = doc["components"]["schemas"]
    assert schemas["Maintenance"]["properties"]["reason"]["nullable"] is True
    feedback = doc["paths"]["/v1/services/{name}/feedback"]["post"]["requestBody"]["content"]["application/json"]
    assert feedback["schema"]["properties"]["node"]["nullable"] is True
    api.apply_yaml("/srv/web.yaml", "name: web\nport: 8080\n")
    reply = api.put("/v1/services/web-8080/maintenance", {"enable": True, "reason": None})
    assert reply.status == 200 and reply.body["status"] == "maintenance"
    reply = api.post("/v1/services/web/feedback", {"id": "web-8080", "node": None, "active": 2})
    assert reply.status == 200 and reply.body["node"] == "node1"
