"""What operators look at: `/v1/events`, `/v1/status`, `/healthz`, `/metrics`, `/v1/openapi.json`.

`/healthz` answers as long as the event loop does and touches nothing else, so a
supervisor's probe cannot be slowed by a busy catalog. `/v1/status` reports every
rejected registration file with its problems, which is how an operator finds out why
a drop-in did not take.
"""

from __future__ import annotations

import time

from aiohttp import web

from registry.windows import window_dict
from resolver.http.appkeys import GUARD, STATE
from resolver.http.errors import bad_request
from resolver.http.openapi import document
from resolver.http.reads import INDEX_HEADER, bytes_response, json_body, json_response, read_snapshot
from resolver.metrics import render
from resolver.state import VERSION

DEFAULT_EVENTS = 100
MAX_EVENTS = 1000
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(name, f"{raw!r} is not an integer") from None
    if not low <= value <= high:
        raise bad_request(name, f"must be between {low} and {high}")
    return value


async def events(request: web.Request) -> web.Response:
    """Newest first; the next page is `?before=<next_before>`."""
    snapshot = await read_snapshot(request)
    limit = _int_param(request, "limit", DEFAULT_EVENTS, 1, MAX_EVENTS) or DEFAULT_EVENTS
    before = _int_param(request, "before", None, 1, 2**63 - 1)
    kind = request.query.get("kind") or None
    page = request.app[STATE].store.events(limit, before, kind)
    next_before = page[-1].seq if len(page) == limit else None
    return json_response({"events": [e.to_dict() for e in page], "next_before": next_before}, snapshot)


async def status(request: web.Request) -> web.Response:
    snapshot = await read_snapshot(request)
    state = request.app[STATE]
    guard = request.app[GUARD]
    node = snapshot.nodes[snapshot.local_node]
    now = time.time()
    body = {
        "version": VERSION,
        "node": {
            "name": node.name, "address": node.address, "state": node.state.value, "reason": node.reason,
            "windows": [window_dict(window, now) for window in node.windows],
        },
        "domain": snapshot.domain,
        "started": state.started,
        "uptime": round(time.time() - state.started, 3),
        "bound": state.bound,
        "index": snapshot.index,
        "services": snapshot.service_count(),
        "instances": len(snapshot.entries_by_key),
        "counts": snapshot.counts_by_status(),
        "files": state.catalog.files(),
        "file_errors": [
            {"path": path, "problems": [p.to_dict() for p in problems]}
            for path, problems in sorted(snapshot.file_errors.items())
        ],
        "http": {
            "connections": guard.open_connections,
            "max_connections": state.config.http.max_connections,
            "blocking_queries": guard.blocking,
        },
        "cluster": (
            state.cluster.status() if state.cluster is not None
            else {"state": "off", "datacenter": state.config.cluster.datacenter}
        ),
    }
    # The daemon's own facts (config path, last reload, ...) never shadow the fields above.
    return json_response({**state.extra, **body}, snapshot)


async def healthz(request: web.Request) -> web.Response:
    snapshot = request.app[STATE].catalog.current
    return json_response({"status": "ok", "index": snapshot.index}, snapshot)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    headers = {"Content-Type": METRICS_CONTENT_TYPE, INDEX_HEADER: str(state.catalog.current.index)}
    return web.Response(body=render(state), headers=headers)


async def openapi(request: web.Request) -> web.Response:
    return bytes_response(json_body(document(request.app)), request.app[STATE].catalog.current)


def add_status_routes(app: web.Application) -> None:
    app.router.add_get("/v1/events", events)
    app.router.add_get("/v1/status", status)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/openapi.json", openapi)
