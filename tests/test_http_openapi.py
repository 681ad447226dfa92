"""The OpenAPI document matches the routes the app serves, both ways."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import schemathesis
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
        ("PUT", "/v1/instances/{id}"),
        ("DELETE", "/v1/instances/{id}"),
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


def test_an_object_parameter_is_a_deep_object_clients_send_as_the_server_reads_it(api: ApiServer) -> None:
    # Found by schemathesis: `meta` was declared a form-exploded object, which OpenAPI
    # clients send as `team=edge`; the API read only `meta.team=edge`, so such a filter
    # was silently ignored. Now it is a deepObject: `meta[team]=edge`.
    doc = api.get("/v1/openapi.json").body
    objects = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                if param["schema"].get("type") == "object":
                    assert (param["in"], param.get("style"), param.get("explode")) == ("query", "deepObject", True), (
                        method, path, param["name"])
                    objects += 1
    assert objects == 3  # the meta filter of the three lookups
    assert "meta.<key>=<value>" in doc["paths"]["/v1/services/{name}"]["get"]["description"]


def test_a_meta_filter_built_from_the_document_by_an_openapi_library_is_understood(api: ApiServer) -> None:
    """schemathesis serialises the parameters as the served document describes them;
    the real server must filter on what it sends (issue 15)."""
    api.apply_yaml("/srv/web.yaml", "services:\n" + "".join(
        f"  - {{name: web, id: web-{n}, port: {8000 + n}, meta: {{owner: {owner}, tier: '{n}'}}}}\n"
        for n, owner in ((1, "web-team"), (2, "web-team"), (3, "db-team"))
    ))
    schema = schemathesis.openapi.from_dict(api.get("/v1/openapi.json").body)
    for path, parameters in [("/v1/services/{name}", {"name": "web"}), ("/v1/services", {}),
                             ("/v1/services/{name}/url", {"name": "web"})]:
        operation = schema[path]["GET"]
        serialise = operation.get_parameter_serializer("query")
        assert serialise is not None
        for meta, expected in [({"owner": "web-team"}, {"web-1", "web-2"}),
                               ({"owner": "web-team", "tier": "2"}, {"web-2"}), ({"owner": "db-team"}, {"web-3"})]:
            query = serialise({"meta": meta})
            assert set(query) == {f"meta[{key}]" for key in meta}  # what a generated client sends
            response = operation.Case(path_parameters=parameters, query=query).call(base_url=api.base)
            assert response.status_code == 200, (path, response.text)
            found = instance_ids(response.json())
            # /url picks one of them.
            assert found == expected if "url" not in path else len(found) == 1 and found <= expected, (path, meta)


def instance_ids(body: Any) -> set[str]:
    """The instance ids in a lookup's, the listing's or /url's answer."""
    if isinstance(body, list):
        return {item["id"] for item in body}
    if "instance" in body:
        return {body["instance"]["id"]}
    return {item["id"] for items in body.values() for item in items}


def test_every_read_documents_the_index_header_and_blocks_as_documented(api: ApiServer) -> None:
    """Every GET of ours carries X-Pilotfish-Index; those that document `index` and `wait`
    (all but the few that must answer at once) really wait on them."""
    doc = api.get("/v1/openapi.json").body
    api.apply_yaml("/srv/web.yaml", "name: web\nport: 8080\n")
    api.put("/v1/config/k", {"value": "v"})
    values = {"name": "web", "node": "node1", "key": "k"}
    blocking = []
    for path, ops in doc["paths"].items():
        op = ops.get("get")
        if op is None or path.startswith(CONSUL_PREFIXES):
            continue
        for status, response in op["responses"].items():
            header = response.get("headers", {}).get("X-Pilotfish-Index")
            assert header is not None and header["schema"]["type"] == "integer", (path, status)
        names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        if path in NOT_BLOCKING:
            assert not names & {"index", "wait"}, path
        else:
            assert {"index", "wait"} <= names, path
            # /v1/node needs the node monitor, which this harness does not run (the health tests do).
            if path != "/v1/node":
                blocking.append(path.format(**values))
    assert len(blocking) >= 11
    index = api.catalog.current.index

    def waited(path: str) -> float:
        started = time.monotonic()
        reply = api.get(f"{path}?index={index}&wait=300ms")
        assert reply.status == 200 and reply.index == index, (path, reply.text)
        return time.monotonic() - started

    with ThreadPoolExecutor(len(blocking)) as pool:
        durations = dict(zip(blocking, pool.map(waited, blocking)))
    # At most 1/16 of the wait goes to jitter: each parked for 281 ms or more.
    assert all(seconds >= 0.28 for seconds in durations.values()), durations


# Reads that answer at once, whatever the catalog does: a supervisor's probe, a
# scrape, this document, and the status page itself (its fragment blocks).
NOT_BLOCKING = {"/healthz", "/metrics", "/v1/openapi.json", "/ui", "/ui/"}


def test_instance_writes_name_the_instance_id_and_the_older_paths_still_work(api: ApiServer) -> None:
    doc = api.get("/v1/openapi.json").body
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                if param["in"] == "path" and "instance id" in param["description"] and not op.get("deprecated"):
                    assert param["name"] == "id", (method, path)
    for method in ("put", "delete"):
        assert doc["paths"]["/v1/instances/{id}"][method]["parameters"][0]["name"] == "id"
        older = doc["paths"]["/v1/services/{name}"][method]
        assert older["deprecated"] is True and "/v1/instances/{id}" in older["summary"]
    body = {"name": "api", "port": 9000}
    assert api.post("/v1/services", body).status == 201
    assert api.put("/v1/instances/api-9000", {**body, "tags": ["a"]}).body["tags"] == ["a"]
    assert api.put("/v1/services/api-9000", {**body, "tags": ["b"]}).body["tags"] == ["b"]
    assert api.delete("/v1/instances/api-9000").status == 200
    assert api.post("/v1/services", body).status == 201
    assert api.delete("/v1/services/api-9000").status == 200
    assert api.get("/v1/services/api").status == 404


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
