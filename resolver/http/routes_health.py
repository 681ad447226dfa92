"""Health routes: TTL reports and this node's state (maintenance: routes_maintenance).

Handlers turn a request into one call on the health runner and raise registry errors
for the error middleware to map (NotFoundError 404, ValidationError 400). `GET
/v1/node` reads the current snapshot and the monitor's last psutil sample; it never
samples psutil itself.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from registry.health.runner import HealthRunner
from registry.health.ttl import status_for_verb
from registry.model import Node, rfc3339
from registry.nodestate import NodeMonitor
from registry.snapshot import Snapshot
from registry.transitions import transitions_dict
from registry.windows import window_dict
from resolver.http.appkeys import STATE
from resolver.http.bodies import optional_object, optional_string
from resolver.http.errors import ApiError
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


def _local_counts(snapshot: Snapshot) -> dict[str, dict[str, int]]:
    """Checks and instances of this node by status, as the snapshot keeps them counted."""
    return {
        "checks": {status.value: count for status, count in snapshot.local_check_counts.items()},
        "instances": {status.value: count for status, count in snapshot.local_status_counts.items()},
    }


def maintenance_body(node: Node, now: float) -> dict[str, Any] | None:
    """The window holding the node now, with the time it has left (None: none holds it)."""
    for window in node.windows:
        hold = window.hold_at(now) if not window.instance else None
        if hold is not None:
            left = None if hold.until is None else round(max(0.0, hold.until - now), 1)
            return {"state": hold.state.value, "reason": hold.reason, "window": window.id,
                    "until": rfc3339(hold.until), "time_left": left}
    return None


def node_body(snapshot: Snapshot, monitor: NodeMonitor | None) -> dict[str, Any]:
    """`GET /v1/node`: state, maintenance and windows, the state table, figures and counts.

    Without a node monitor (a test harness) the figures and thresholds are null.
    """
    node = snapshot.nodes[snapshot.local_node]
    now = time.time()
    return {
        "name": node.name,
        "address": node.address,
        "state": node.state.value,
        "reason": node.reason,
        "maintenance": maintenance_body(node, now),
        "windows": [window_dict(window, now) for window in node.windows],
        "transitions": transitions_dict(),
        "figures": monitor.figures() if monitor is not None else None,
        "thresholds": monitor.thresholds_dict() if monitor is not None else None,
        **_local_counts(snapshot),
        "index": snapshot.index,
    }


async def ttl_report(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await optional_object(request)
    note = optional_string(body, "note") if "note" in body else request.query.get("note", "")
    entry = _health(state).ttl_update(request.match_info["check_id"], status_for_verb(request.match_info["result"]), note or "")
    return json_response(entry.to_dict(), state.catalog.current)


async def get_node(request: web.Request) -> web.Response:
    monitor = _monitor(request.app[STATE])
    snapshot = await read_snapshot(request)
    return json_response(node_body(snapshot, monitor), snapshot)


def add_health_routes(app: web.Application) -> None:
    app.router.add_put("/v1/checks/{check_id}/{result:pass|warn|fail}", ttl_report)
    app.router.add_get("/v1/node", get_node)
