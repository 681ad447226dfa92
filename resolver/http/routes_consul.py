"""Consul's read API on pilotfish's port: `/v1/catalog`, `/v1/health`, `/v1/agent`, `/v1/status`.

So that Prometheus `consul_sd_configs`, Traefik, consul-template, Fabio and `py-consul`
discover through pilotfish unchanged. Each handler answers from one snapshot, with the
body built by resolver/http/consul_shapes.py once per snapshot and per query (in the
memo of pilotfish's own lookups, under its bound), and blocks on `?index=` as
pilotfish's own reads do. Headers, query parameters and errors follow Consul's
conventions (resolver/http/consul_http.py), which the API middleware applies to every
path under Consul's prefixes, those these routes do not serve included.
"""

from __future__ import annotations

from aiohttp import web

from registry.snapshot import Snapshot
from resolver.http import consul_shapes as shapes
from resolver.http.appkeys import STATE
from resolver.http.consul_http import NO_QUERY, answer_read, consul_response
from resolver.state import VERSION

TAGGED = frozenset({"tag"})
HEALTH = frozenset({"tag", "passing"})
NONE: frozenset[str] = frozenset()
# The filters of a read without a query string, once: the hot path builds no tuple it can avoid.
UNFILTERED = NO_QUERY.filters


async def health_service(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not request.query_string:
        # The hot path (a poller, a watcher's first read): one dict lookup once built.
        snapshot = request.app[STATE].catalog.current
        body = snapshot.memo.get(("http", "consul", "health", name, UNFILTERED))
        if body is not None:
            return consul_response(body, snapshot)
    return await answer_read(
        request, HEALTH, ("health", name),
        lambda snapshot, dc, query: shapes.health_service(
            snapshot, dc, name, query.tags, query.passing, query.node_meta
        ),
        basis=lambda snapshot: service_basis(snapshot, name),
    )


async def catalog_service(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return await answer_read(
        request, TAGGED, ("catalog", name),
        lambda snapshot, dc, query: shapes.catalog_service(snapshot, dc, name, query.tags, query.node_meta),
        basis=lambda snapshot: service_basis(snapshot, name),
    )


def service_basis(snapshot: Snapshot, name: str) -> tuple[object, ...]:
    """What a Consul body of one service is made of: its instances and the nodes they run on."""
    return snapshot.entries_by_name.get(name.lower()), snapshot.nodes


async def catalog_services(request: web.Request) -> web.Response:
    return await answer_read(
        request, NONE, ("services",), lambda snapshot, _, query: shapes.catalog_services(snapshot, query.node_meta)
    )


async def health_state(request: web.Request) -> web.Response:
    state = request.match_info["state"]
    return await answer_read(
        request, NONE, ("state", state),
        lambda snapshot, _, query: shapes.checks_in_state(snapshot, state, query.node_meta),
    )


async def agent_services(request: web.Request) -> web.Response:
    return await answer_read(
        request, NONE, ("agent-services",), lambda snapshot, dc, _: shapes.agent_services(snapshot, dc), blocking=False
    )


async def agent_self(request: web.Request) -> web.Response:
    return await answer_read(
        request, NONE, ("self",), lambda snapshot, dc, _: shapes.agent_self(snapshot, dc, VERSION), blocking=False
    )


async def status_leader(request: web.Request) -> web.Response:
    """This daemon's address and HTTP port: the leader of a catalog it alone writes."""
    bound = request.app[STATE].bound.get("http") or [""]
    port = bound[0].rpartition(":")[2]
    return await answer_read(request, NONE, ("leader", port), lambda snapshot, _, __: shapes.leader(snapshot, port),
                             blocking=False)


def add_consul_routes(app: web.Application) -> None:
    app.router.add_get("/v1/agent/self", agent_self)
    app.router.add_get("/v1/agent/services", agent_services)
    app.router.add_get("/v1/status/leader", status_leader)
    app.router.add_get("/v1/catalog/services", catalog_services)
    app.router.add_get("/v1/catalog/service/{name}", catalog_service)
    app.router.add_get("/v1/health/service/{name}", health_service)
    app.router.add_get("/v1/health/state/{state}", health_state)
