"""Maintenance routes: the node's and one instance's maintenance, and the windows that hold them.

    PUT    /v1/node/maintenance              {"enable", "kind", "reason", kind's fields}
    PUT    /v1/node/maintenance/done         a draining node may go offline now
    PUT    /v1/services/{id}/maintenance     the same for one instance of this node
    PUT    /v1/services/{id}/maintenance/done
    GET    /v1/maintenance                   every window, planned ones too (a blocking read)
    PUT    /v1/maintenance/{id}              change a window: reason, start, end, drain_ahead
    DELETE /v1/maintenance/{id}              cancel it (one under way ends now)

Handlers parse the body into one call on the maintenance scheduler and raise registry
errors for the middleware to map: InvalidTransition and WindowOverlap 409,
ValidationError 400, NotFoundError 404. The list is read from the snapshot (the
node's record carries its windows), never from SQLite.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from registry.errors import NotFoundError
from registry.maintenance import MaintenanceScheduler, Target
from registry.states import MaintenanceKind, Window
from registry.windows import changed, parse_drain, parse_reason, parse_time, planned, refused, window_dict
from resolver.http.appkeys import STATE
from resolver.http.bodies import optional_object, read_object
from resolver.http.errors import ApiError, bad_request
from resolver.http.reads import json_response, read_snapshot
from resolver.http.routes_health import node_body
from resolver.state import DaemonState

DEFAULT_REASON = "maintenance mode"
# The fields each kind takes besides enable and reason.
KIND_FIELDS = {
    MaintenanceKind.IMMEDIATE: (),
    MaintenanceKind.DRAINING: ("drain_timeout",),
    MaintenanceKind.PLANNED: ("start", "end", "drain_ahead"),
}
BODY_FIELDS = ("enable", "enabled", "kind", "reason", "drain_timeout", "start", "end", "drain_ahead")


def _scheduler(state: DaemonState) -> MaintenanceScheduler:
    if state.maintenance is None:
        raise ApiError(503, "unavailable", "the maintenance scheduler is not running")
    return state.maintenance


def _maintain(scheduler: MaintenanceScheduler, target: Target, body: dict[str, Any]) -> Window:
    """One maintenance request: begin one of the three kinds (enable) or end the one under way."""
    for key in body:
        if key not in BODY_FIELDS:
            raise bad_request(key, f"unknown field (a maintenance body takes {', '.join(BODY_FIELDS[:1] + BODY_FIELDS[2:])})")
    if "enable" in body and "enabled" in body:  # one would be ignored: which is the request?
        raise bad_request("enabled", "give enable or enabled (its older name), not both")
    field = "enable" if "enable" in body or "enabled" not in body else "enabled"
    enable = body.get(field)
    if not isinstance(enable, bool):
        raise bad_request(field, "required, true or false")
    raw_kind = body.get("kind", MaintenanceKind.IMMEDIATE.value)
    try:
        kind = MaintenanceKind(raw_kind)
    except ValueError:
        raise bad_request("kind", f"must be one of {', '.join(k.value for k in MaintenanceKind)}") from None
    for key in ("drain_timeout", "start", "end", "drain_ahead"):
        if key in body and (not enable or key not in KIND_FIELDS[kind]):
            owner = next(k.value for k, fields in KIND_FIELDS.items() if key in fields)
            raise bad_request(key, f"only with enable: true and kind: {owner}")
    reason = parse_reason(body.get("reason"), DEFAULT_REASON)
    if not enable:
        return scheduler.end(target)
    if kind is MaintenanceKind.PLANNED:
        now = scheduler.clock()
        for key in ("start", "end"):
            if key not in body:
                raise bad_request(key, "required for a planned window")
        window = planned(
            target[0], target[1], reason, parse_time(body["start"], now, "start"), parse_time(body["end"], now, "end"),
            parse_drain(body.get("drain_ahead"), "drain_ahead"), now,
        )
        return scheduler.plan(window)
    drain = parse_drain(body.get("drain_timeout"), "drain_timeout") if kind is MaintenanceKind.DRAINING else 0.0
    return scheduler.begin(target, kind, reason, drain)


def _instance_target(request: web.Request, state: DaemonState) -> Target:
    """This node's instance named by the path; windows are kept by the node they hold."""
    instance_id = request.match_info["id"]
    node = request.query.get("node") or state.identity.node
    if node != state.identity.node or state.catalog.instance(instance_id) is None:
        raise NotFoundError("instance", instance_id)
    return (node, instance_id)


def _node_answer(state: DaemonState, window: Window) -> web.Response:
    snapshot = state.catalog.current
    return json_response({**node_body(snapshot, state.node_monitor), "window": window_dict(window, time.time())}, snapshot)


def _instance_answer(state: DaemonState, target: Target, window: Window) -> web.Response:
    entry = state.catalog.entry(target[1], target[0])
    if entry is None:
        raise NotFoundError("instance", target[1])
    return json_response({**entry.to_dict(), "window": window_dict(window, time.time())}, state.catalog.current)


async def node_maintenance(request: web.Request) -> web.Response:
    state = request.app[STATE]
    window = _maintain(_scheduler(state), (state.identity.node, ""), await optional_object(request))
    return _node_answer(state, window)


async def node_done(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return _node_answer(state, _scheduler(state).done((state.identity.node, "")))


async def instance_maintenance(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await optional_object(request)  # a body that is not JSON is a 400 whatever it names
    target = _instance_target(request, state)
    return _instance_answer(state, target, _maintain(_scheduler(state), target, body))


async def instance_done(request: web.Request) -> web.Response:
    state = request.app[STATE]
    target = _instance_target(request, state)
    return _instance_answer(state, target, _scheduler(state).done(target))


async def list_windows(request: web.Request) -> web.Response:
    snapshot = await read_snapshot(request)
    now = time.time()
    windows = snapshot.nodes[snapshot.local_node].windows
    return json_response({"windows": [window_dict(w, now) for w in windows]}, snapshot)


def _window_id(request: web.Request) -> int:
    raw = request.match_info["window_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise bad_request("window_id", f"{raw[:32]!r} is not a window id")
    return int(raw)


async def change_window(request: web.Request) -> web.Response:
    state = request.app[STATE]
    scheduler = _scheduler(state)
    window_id = _window_id(request)
    body = await read_object(request)
    if not body:
        raise refused("(body)", "name what changes: reason, start, end or drain_ahead")
    new = scheduler.change(window_id, changed(scheduler.window(window_id), body, scheduler.clock()))
    return json_response(window_dict(new, time.time()), state.catalog.current)


async def cancel_window(request: web.Request) -> web.Response:
    state = request.app[STATE]
    window = _scheduler(state).cancel(_window_id(request))
    return json_response({**window_dict(window, time.time()), "cancelled": True}, state.catalog.current)


def add_maintenance_routes(app: web.Application) -> None:
    app.router.add_put("/v1/node/maintenance", node_maintenance)
    app.router.add_put("/v1/node/maintenance/done", node_done)
    app.router.add_put("/v1/services/{id}/maintenance", instance_maintenance)
    app.router.add_put("/v1/services/{id}/maintenance/done", instance_done)
    app.router.add_get("/v1/maintenance", list_windows)
    app.router.add_put("/v1/maintenance/{window_id}", change_window)
    app.router.add_delete("/v1/maintenance/{window_id}", cancel_window)
