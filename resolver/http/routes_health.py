"""Health routes: TTL reports, this node's state, node and instance maintenance.

Handlers turn a request into one call on the health runner, the node monitor or the
catalog and raise registry errors for the error middleware to map (NotFoundError
404, InvalidTransition 409, ValidationError 400). `GET /v1/node` reads the current
snapshot and the monitor's last psutil sample; it never samples psutil itself.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from registry.health.runner import HealthRunner
from registry.health.ttl import status_for_verb
from registry.nodestate import NodeMonitor
from registry.snapshot import Snapshot
from resolver.http.appkeys import STATE
from resolver.http.bodies import optional_string, read_json
from resolver.http.errors import ApiError, bad_request
from resolver.http.reads import json_response, read_snapshot
from resolver.state import DaemonState


def _health(state: DaemonState) -> HealthRunner:
    if state.health is None:
        raise ApiError(503, "unavailable", "health checks are not running")
    return state.health


def _monitor(state: DaemonState) -> NodeMonitor:
    if state.node_monitor is None:
        raise ApiError(503, "unavailable", "the node monitor is not running")
    return state.node_monitor


async def _optional_object(request: web.Request) -> dict[str, Any]:
    """A JSON object body, or {} when the body is empty (curl -X PUT without -d)."""
    if not request.can_read_body:
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_request("(body)", "must be a JSON object")
    return body


async def _maintenance_body(request: web.Request) -> tuple[bool, str]:
    """`{"enable": bool, "reason": str}`; `enabled` is accepted as the same field."""
    body = await _optional_object(request)
    field = "enable" if "enable" in body or "enabled" not in body else "enabled"
    enable = body.get(field)
    if not isinstance(enable, bool):
        raise bad_request(field, "required, true or false")
    return enable, optional_string(body, "reason") or ""


def _local_counts(snapshot: Snapshot) -> dict[str, dict[str, int]]:
    """Checks and instances of this node by status, as the snapshot keeps them counted."""
    return {
        "checks": {status.value: count for status, count in snapshot.local_check_counts.items()},
        "instances": {status.value: count for status, count in snapshot.local_status_counts.items()},
    }


def node_body(snapshot: Snapshot, monitor: NodeMonitor) -> dict[str, Any]:
    node = snapshot.nodes[snapshot.local_node]
    return {
        "name": node.name,
        "address": node.address,
        "state": node.state.value,
        "reason": node.reason,
        "figures": monitor.figures(),
        "thresholds": monitor.thresholds_dict(),
        **_local_counts(snapshot),
        "index": snapshot.index,
    }


async def ttl_report(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await _optional_object(request)
    note = optional_string(body, "note") if "note" in body else request.query.get("note", "")
    entry = _health(state).ttl_update(request.match_info["check_id"], status_for_verb(request.match_info["result"]), note or "")
    return json_response(entry.to_dict(), state.catalog.current)


async def get_node(request: web.Request) -> web.Response:
    monitor = _monitor(request.app[STATE])
    snapshot = await read_snapshot(request)
    return json_response(node_body(snapshot, monitor), snapshot)


async def node_maintenance(request: web.Request) -> web.Response:
    state = request.app[STATE]
    monitor = _monitor(state)
    enable, reason = await _maintenance_body(request)
    monitor.set_maintenance(enable, reason)
    snapshot = state.catalog.current
    return json_response(node_body(snapshot, monitor), snapshot)


async def instance_maintenance(request: web.Request) -> web.Response:
    state = request.app[STATE]
    enable, reason = await _maintenance_body(request)
    entry = state.catalog.set_instance_maintenance(
        request.match_info["id"], (reason or "maintenance mode") if enable else None, request.query.get("node")
    )
    return json_response(entry.to_dict(), state.catalog.current)


def add_health_routes(app: web.Application) -> None:
    app.router.add_put("/v1/checks/{check_id}/{result:pass|warn|fail}", ttl_report)
    app.router.add_get("/v1/node", get_node)
    app.router.add_put("/v1/node/maintenance", node_maintenance)
    app.router.add_put("/v1/services/{id}/maintenance", instance_maintenance)
