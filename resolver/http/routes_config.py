"""Typed config: `/v1/config/{key}` (global) and `/v1/nodes/{node}/config...` (per node).

The store does the typing: a PUT is cast before anything is written, so a value that
does not cast is refused (400) and the stored value stays. A node's read falls back to
the global value and says which scope answered. Config is not part of the catalog
snapshot, so these handlers read SQLite; they still carry the snapshot index so that
clients can use one header for every read, and every write moves that index, so a
blocking query on a config read returns when a key is written, as on catalog reads.
"""

from __future__ import annotations

from aiohttp import web

from registry.configvalues import VALUE_TYPES
from resolver.http.appkeys import STATE
from resolver.http.bodies import read_object
from resolver.http.errors import bad_request
from resolver.http.reads import json_response, read_snapshot

PUT_FIELDS = ("value", "value_type")


def _node(request: web.Request) -> str | None:
    return request.match_info.get("node")


async def get_value(request: web.Request) -> web.Response:
    snapshot = await read_snapshot(request)
    value = request.app[STATE].store.get_config(_node(request), request.match_info["key"])
    return json_response(value.to_dict(), snapshot)


async def put_value(request: web.Request) -> web.Response:
    body = await read_object(request)
    for key in body:
        if key not in PUT_FIELDS:
            raise bad_request(key, "unknown key (a config body is {\"value\": ..., \"value_type\": ...})")
    if "value" not in body:
        raise bad_request("value", "required")
    value_type = body.get("value_type", "string")
    if value_type not in VALUE_TYPES:
        raise bad_request("value_type", f"must be one of {', '.join(VALUE_TYPES)}")
    state = request.app[STATE]
    value = state.store.set_config(_node(request), request.match_info["key"], body["value"], value_type)
    state.catalog.note_config_change()
    return json_response(value.to_dict(), state.catalog.current)


async def delete_value(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = request.match_info["key"]
    node = _node(request)
    state.store.delete_config(node, key)
    state.catalog.note_config_change()
    return json_response({"deleted": key, "scope": "node" if node else "global"}, state.catalog.current)


async def node_view(request: web.Request) -> web.Response:
    snapshot = await read_snapshot(request)
    node = request.match_info["node"]
    view = request.app[STATE].store.config_view(node)
    return json_response({"node": node, "config": {key: v.to_dict() for key, v in view.items()}}, snapshot)


def add_config_routes(app: web.Application) -> None:
    for prefix in ("/v1/config/{key}", "/v1/nodes/{node}/config/{key}"):
        app.router.add_get(prefix, get_value)
        app.router.add_put(prefix, put_value)
        app.router.add_delete(prefix, delete_value)
    app.router.add_get("/v1/nodes/{node}/config", node_view)
