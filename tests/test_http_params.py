"""Query parameters: a route takes what its OpenAPI operation declares, and refuses the rest.

A typo in a query string used to widen the answer in silence: `?stauts=critical`,
`?tags=blue`, `?Tag=blue` and `?owner=web-team` each returned every instance.
"""

from __future__ import annotations

from typing import Any

import pytest

from apikit import ApiServer
from resolver.http.consul_http import CONSUL_PREFIXES
from resolver.http.openapi import OPERATIONS, routes

WEB = """
services:
  - {name: web, id: web-1, port: 8001, protocol: http, tags: [blue], meta: {owner: web-team}}
  - {name: web, id: web-2, port: 8002, protocol: http, tags: [green], meta: {owner: db-team}}
"""


@pytest.mark.parametrize(
    ("query", "field", "hint"),
    [
        ("stauts=critical", "stauts", "did you mean 'status'?"),
        ("tags=blue", "tags", "did you mean 'tag'?"),
        ("Tag=blue", "Tag", "did you mean 'tag'?"),
        ("owner=web-team", "owner", "did you mean 'meta.owner'?"),
        ("meta=owner", "meta", "meta filters read meta.<key>=<value> or meta[<key>]=<value>"),
        ("meta.=x", "meta.", "meta filters read"),
    ],
)
def test_an_unknown_parameter_is_refused_with_a_suggestion(api: ApiServer, query: str, field: str, hint: str) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    for path in ("/v1/services/web", "/v1/services", "/v1/services/web/url"):
        reply = api.get(f"{path}?{query}")
        assert reply.status == 400, (path, reply.text)
        assert reply.error["code"] == "invalid"
        [problem] = reply.error["problems"]
        assert problem["field"] == field and hint in problem["message"], problem
        assert "this endpoint takes" in problem["message"] and "tag, version, node, status" in problem["message"]
        assert reply.index == api.catalog.current.index  # a refused read carries the index too


def test_every_unknown_parameter_is_named_and_the_known_ones_still_work(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    reply = api.get("/v1/services/web?tag=blue&colour=red&size=big&colour=blue")
    assert [p["field"] for p in reply.error["problems"]] == ["colour", "size"]
    assert [i["id"] for i in api.get("/v1/services/web?tag=blue&meta[owner]=web-team").body] == ["web-1"]
    assert [i["id"] for i in api.get("/v1/services/web?meta.owner=db-team").body] == ["web-2"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("version=1&version=2", "version"),
        ("node=node1&node=far", "node"),
        ("meta.owner=web-team&meta[owner]=db-team", "meta[owner]"),
        ("meta[owner]=web-team&meta[owner]=db-team", "meta[owner]"),
    ],
)
def test_a_parameter_that_takes_one_value_given_two_is_refused(api: ApiServer, query: str, field: str) -> None:
    """`meta[owner]=web-team&meta.owner=db-team` used to answer for db-team alone (the
    last key in sorted order won); a second `version` or `node` was dropped in silence."""
    api.apply_yaml("/srv/web.yaml", WEB)
    for path in ("/v1/services/web", "/v1/services", "/v1/services/web/url"):
        reply = api.get(f"{path}?{query}")
        assert reply.status == 400, (path, reply.text)
        [problem] = reply.error["problems"]
        assert problem["field"] == field and "given 2 different values; it takes one" in problem["message"], problem
    assert api.get("/v1/status?index=0&index=1").error["problems"][0]["field"] == "index"
    # Declared arrays repeat as before: every tag must match, any of the statuses may.
    assert [i["id"] for i in api.get("/v1/services/web?tag=blue&tag=green").body] == []
    assert len(api.get("/v1/services/web?status=passing&status=critical").body) == 2
    assert [i["id"] for i in api.get("/v1/services/web?meta.owner=web-team&meta[owner]=web-team").body] == ["web-1"]
    assert len(api.get("/v1/services/web?node=node1&node=node1").body) == 2  # the same value twice is one


def test_a_huge_unknown_name_is_echoed_cut_short(api: ApiServer) -> None:
    reply = api.get("/v1/services?" + "x" * 5000 + "=1")
    [problem] = reply.error["problems"]
    assert reply.status == 400 and problem["field"] == "x" * 100 and len(reply.text) < 1000


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz?verbose=1"),
        ("GET", "/metrics?name[]=x"),
        ("GET", "/v1/status?index=0&wiat=1s"),
        ("GET", "/v1/events?limt=5"),
        ("GET", "/v1/conflicts?nodes=n1"),
        ("GET", "/v1/config/k?scope=node"),
        ("GET", "/ui/?filtr=web"),
        ("GET", "/ui?filtr=web"),
        ("POST", "/v1/services?dry_run=1"),
        ("DELETE", "/v1/instances/web-9000?nod=far"),
        ("DELETE", "/v1/services/web-9000?nod=far"),
        ("PUT", "/v1/node/maintenance?enable=true"),
    ],
)
def test_every_route_is_strict(api: ApiServer, method: str, path: str) -> None:
    reply = api.request(method, path, {"name": "web", "port": 9000} if method == "POST" else None)
    assert reply.status == 400, reply.text
    assert "unknown query parameter" in reply.error["problems"][0]["message"]


def test_a_refused_write_changes_nothing(api: ApiServer) -> None:
    assert api.post("/v1/services", {"name": "api", "port": 9000}).status == 201
    assert api.delete("/v1/instances/api-9000?nod=far").status == 400
    assert api.get("/v1/services/api").body[0]["id"] == "api-9000"


def sample(param: dict[str, Any]) -> str:
    """A valid value for a declared query parameter (index 0 never blocks)."""
    schema = param["schema"]
    if schema.get("enum"):
        return str(schema["enum"][0])
    if schema.get("type") == "integer":
        return str(schema.get("minimum", 0))
    if "pattern" in schema:
        return "1ms"
    if param["name"] == "status":
        return "any"
    return "x"


def test_every_declared_parameter_is_accepted(api: ApiServer) -> None:
    """The converse: nothing the document declares is refused as unknown."""
    api.apply_yaml("/srv/web.yaml", WEB)
    values = {"name": "web", "node": "node1", "key": "k", "id": "web-1", "state": "any"}
    api.put("/v1/config/k", {"value": "v"})
    checked = 0
    for method, path in sorted(routes(api.app)):
        if method != "GET" or path.startswith(CONSUL_PREFIXES):
            continue
        for param in OPERATIONS[(method, path)].get("parameters", []):
            if param["in"] != "query":
                continue
            name = f"{param['name']}[owner]" if param.get("style") == "deepObject" else param["name"]
            reply = api.get(f"{path.format(**values)}?{name}={sample(param)}")
            assert "unknown query parameter" not in reply.text, (path, name, reply.text)
            checked += 1
    assert checked > 40
