"""Service lookups and API registrations: `/v1/services...` and `/v1/instances/{id}`.

Lookups answer from one snapshot and cache their answers in `snapshot.memo` (body,
ETag and gzip twin: resolver/http/representation.py), so a repeated
`GET /v1/services/{name}` costs a dict lookup until the catalog changes.
Registrations go through the catalog, the single writer, which commits to SQLite
before it returns: when a handler answers 201, the instance is durable and already
served by DNS and HTTP. Handlers never build error responses; they raise.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from registry.errors import ConflictError, DuplicateIdError, NotFoundError, ValidationError
from registry.model import CheckKind, Entry, Instance, Status
from registry.schema import parse_registration
from registry.snapshot import Snapshot
from resolver.client.selection import Strategy
from resolver.config import Config
from resolver.http.appkeys import STATE
from resolver.http.bodies import optional_string, read_object, required_string
from resolver.http.errors import ApiError, bad_request
from resolver.http.params import object_entries
from resolver.http.reads import json_response, memo_representation, read_snapshot
from resolver.http.representation import Representation
from resolver.http.selection import SELECTOR
from resolver.metrics import REGISTRATIONS, REJECTIONS

ANY_STATUS = "any"
PASSING_ONLY = frozenset({Status.PASSING})

Filters = tuple[tuple[str, ...], str | None, str | None, frozenset[Status] | None, tuple[tuple[str, str], ...]]


def parse_filters(request: web.Request, default_status: frozenset[Status] | None) -> Filters:
    """(tags, version, node, statuses, meta) from the query string; hashable, for memo keys."""
    query = request.query
    tags = tuple(sorted(set(query.getall("tag", []))))
    statuses = default_status
    if "status" in query:
        statuses = parse_statuses(query.getall("status"))
    # `meta[<key>]` as OpenAPI clients send the deepObject, `meta.<key>` as pilotfish took it first.
    meta = tuple(sorted(set(object_entries(query, "meta"))))
    return tags, query.get("version"), query.get("node"), statuses, meta


def parse_statuses(values: list[str]) -> frozenset[Status] | None:
    """`status=passing&status=warning`, `status=passing,warning`, or `status=any`."""
    words = [word.strip() for value in values for word in value.split(",") if word.strip()]
    if ANY_STATUS in words:
        return None
    allowed = ", ".join([s.value for s in Status] + [ANY_STATUS])
    try:
        statuses = frozenset(Status(word) for word in words)
    except ValueError:
        raise bad_request("status", f"must be one of {allowed}") from None
    if not statuses:
        raise bad_request("status", f"empty; use one or more of {allowed}")
    return statuses


def matching(snapshot: Snapshot, name: str, filters: Filters) -> list[Entry]:
    tags, version, node, statuses, meta = filters
    return snapshot.query(name, tags, version, node, statuses, dict(meta))


def require_service(snapshot: Snapshot, name: str) -> None:
    if name not in snapshot.entries_by_name:
        raise NotFoundError("service", name)


async def list_services(request: web.Request) -> web.Response:
    """All discoverable instances grouped by name; every status unless `status` says otherwise."""
    snapshot = await read_snapshot(request)
    filters = parse_filters(request, None)

    def build() -> dict[str, list[dict[str, object]]]:
        grouped = {name: [e.to_dict() for e in matching(snapshot, name, filters)] for name in snapshot.service_names()}
        return {name: entries for name, entries in grouped.items() if entries}

    return memo_representation(snapshot, ("http", "services", filters), build).respond(request)


async def service_instances(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not request.query_string:
        # The hot path: no filters, no blocking, passing instances only; once the
        # answer is in the snapshot's memo this is one dict lookup.
        snapshot = request.app[STATE].catalog.current
        key: tuple[Any, ...] = ("http", "instances", name)
        cached: Representation | None = snapshot.memo.get(key)
        if cached is not None:
            return cached.respond(request)
        filters: Filters = ((), None, None, PASSING_ONLY, ())
    else:
        snapshot = await read_snapshot(request)
        filters = parse_filters(request, PASSING_ONLY)
        key = ("http", "instances", name, filters)
    require_service(snapshot, name)
    answer = memo_representation(snapshot, key, lambda: [e.to_dict() for e in matching(snapshot, name, filters)],
                                 (snapshot.entries_by_name.get(name),))
    return answer.respond(request)


async def service_url(request: web.Request) -> web.Response:
    snapshot = await read_snapshot(request)
    name = request.match_info["name"]
    require_service(snapshot, name)
    raw = request.query.get("strategy", Strategy.ROUND_ROBIN.value)
    try:
        strategy = Strategy(raw)
    except ValueError:
        raise bad_request("strategy", f"must be one of {', '.join(s.value for s in Strategy)}") from None
    candidates = matching(snapshot, name, parse_filters(request, PASSING_ONLY))
    if not candidates:
        raise ApiError(503, "no_instance", f"no instance of {name!r} matches (check status and filters)")
    client = request.remote or ""
    entry = request.app[SELECTOR].select(name, candidates, strategy, client, snapshot.local_node)
    body = {"url": entry.instance.url, "strategy": strategy.value, "instance": entry.to_dict()}
    return json_response(body, snapshot)


async def service_feedback(request: web.Request) -> web.Response:
    """least_conn feedback: a client reports how many connections it has open to an instance."""
    snapshot = request.app[STATE].catalog.current
    name = request.match_info["name"]
    body = await read_object(request)
    instance_id = required_string(body, "id")
    node = optional_string(body, "node") or snapshot.local_node
    active = body.get("active")
    if not isinstance(active, int) or isinstance(active, bool) or active < 0:
        raise bad_request("active", "required, an integer of zero or more")
    entry = snapshot.entry(instance_id, node)
    if entry is None or entry.instance.name != name:
        raise NotFoundError("instance", f"{instance_id} of {name} on {node}")
    request.app[SELECTOR].report(entry.instance.key, active)
    return json_response({"id": instance_id, "node": node, "active": active}, snapshot)


def require_exec_allowed(instance: Instance, config: Config) -> None:
    """403 for an exec check unless the config allows them from the API (with a token).

    Exec checks run commands as the daemon. Without a token any local user can
    reach the API, so by default they come only from files in services_dir, which
    only whoever may write that directory can add (Consul's script checks were
    abused in the wild the other way).
    """
    execs = [n for n, check in enumerate(instance.checks) if check.kind is CheckKind.EXEC]
    if not execs or (config.health.exec_from_api and config.http.token is not None):
        return
    raise ApiError(
        403, "exec_not_allowed",
        "exec checks run commands as the daemon, so they come from files in services_dir; the API accepts "
        "them only when the daemon's config sets health.exec_from_api: true and http.token",
        field=f"checks[{execs[0]}].exec",
    )


async def register(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await read_object(request)
    try:
        instance = parse_registration(body, state.identity)
        require_exec_allowed(instance, state.config)
        entry, created = state.catalog.register(instance)
    except (ValidationError, ConflictError, DuplicateIdError, ApiError):
        REJECTIONS.labels("api").inc()
        raise
    REGISTRATIONS.labels("api").inc()
    return json_response(entry.to_dict(), state.catalog.current, 201 if created else 200)


def instance_id_of(request: web.Request) -> str:
    """The instance id in the path: `{id}`, or `{name}` on the older paths it shares with lookups."""
    match = request.match_info
    return match["id"] if "id" in match else match["name"]


async def replace(request: web.Request) -> web.Response:
    state = request.app[STATE]
    instance_id = instance_id_of(request)
    body = await read_object(request)
    if body.get("id", instance_id) != instance_id:
        raise bad_request("id", f"does not match the id in the path ({instance_id!r})")
    try:
        instance = parse_registration({**body, "id": instance_id}, state.identity)
        require_exec_allowed(instance, state.config)
        entry = state.catalog.update(instance)
    except (ValidationError, ConflictError, DuplicateIdError, ApiError):
        REJECTIONS.labels("api").inc()
        raise
    REGISTRATIONS.labels("api").inc()
    return json_response(entry.to_dict(), state.catalog.current)


async def deregister(request: web.Request) -> web.Response:
    state = request.app[STATE]
    instance = state.catalog.deregister(instance_id_of(request), request.query.get("node"))
    return json_response({"deregistered": instance.registration_dict()}, state.catalog.current)


def add_service_routes(app: web.Application) -> None:
    app.router.add_get("/v1/services", list_services)
    app.router.add_post("/v1/services", register)
    app.router.add_get("/v1/services/{name}", service_instances)
    app.router.add_put("/v1/instances/{id}", replace)
    app.router.add_delete("/v1/instances/{id}", deregister)
    # The design's first paths for the two, kept for the clients that use them. They
    # share the lookup's template, since OpenAPI forbids twins that differ only in a
    # parameter's name, so there the segment named `name` carries an instance id;
    # the document marks them deprecated in favour of /v1/instances/{id}.
    app.router.add_put("/v1/services/{name}", replace)
    app.router.add_delete("/v1/services/{name}", deregister)
    app.router.add_get("/v1/services/{name}/url", service_url)
    app.router.add_post("/v1/services/{name}/feedback", service_feedback)
