"""Typed config: `/v1/config/{key}` (global) and `/v1/nodes/{node}/config...` (per node).

The store does the typing: a PUT is cast before anything is written, so a value that
does not cast is refused (400) and the stored value stays. A node's read falls back to
the global value and says which scope answered. Config is not part of the catalog
snapshot, so these handlers read SQLite; they still carry the snapshot index so that
clients can use one header for every read, and every write moves that index, so a
blocking query on a config read returns when a key is written, as on catalog reads.

In fleet mode writes go to etcd (`config/global/<key>`, `config/nodes/<node>/<key>`)
and apply on every node, and reads see the fleet's values (kept in memory from the
watch) over this node's SQLite ones of the same scope; a node's value, from either,
still wins over a global one. A value stored before fleet mode can still be deleted
here.
"""

from __future__ import annotations

from aiohttp import web

from registry.configvalues import VALUE_TYPES, ConfigValue
from registry.errors import NotFoundError
from resolver.http.appkeys import STATE
from resolver.http.bodies import read_object
from resolver.http.errors import bad_request
from resolver.http.reads import json_response, read_snapshot
from resolver.state import DaemonState

PUT_FIELDS = ("value", "value_type")


def _node(request: web.Request) -> str | None:
    return request.match_info.get("node")


def config_view(state: DaemonState, node: str | None) -> dict[str, ConfigValue]:
    """Every key `node` sees: its own values over the global ones, the fleet's over SQLite's."""
    view = state.store.config_view(node)
    if state.cluster is None:
        return view
    for key, value in state.catalog.remote.config_view(node).items():
        held = view.get(key)
        if held is None or value.scope == "node" or held.scope == "global":
            view[key] = value
    return dict(sorted(view.items()))


async def get_value(request: web.Request) -> web.Response:
    snapshot = await read_snapshot(request)
    state = request.app[STATE]
    node, key = _node(request), request.match_info["key"]
    if state.cluster is None:
        return json_response(state.store.get_config(node, key).to_dict(), snapshot)
    value = config_view(state, node).get(key)
    if value is None:
        raise NotFoundError("config key", key)
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
    node, key = _node(request), request.match_info["key"]
    if state.cluster is not None:
        value = await state.cluster.set_config(node, key, body["value"], value_type)
    else:
        value = state.store.set_config(node, key, body["value"], value_type)
    state.catalog.note_config_change()
    return json_response(value.to_dict(), state.catalog.current)


async def delete_value(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = request.match_info["key"]
    node = _node(request)
    if state.cluster is not None and (node, key) in state.catalog.remote.config:
        await state.cluster.delete_config(node, key)
    else:
        state.store.delete_config(node, key)
    state.catalog.note_config_change()
    return json_response({"deleted": key, "scope": "node" if node else "global"}, state.catalog.current)


async def node_view(request: web.Request) -> web.Response:
    snapshot = await read_snapshot(request)
    node = request.match_info["node"]
    view = config_view(request.app[STATE], node)
    return json_response({"node": node, "config": {key: v.to_dict() for key, v in view.items()}}, snapshot)


def add_config_routes(app: web.Application) -> None:
    for prefix in ("/v1/config/{key}", "/v1/nodes/{node}/config/{key}"):
        app.router.add_get(prefix, get_value)
        app.router.add_put(prefix, put_value)
        app.router.add_delete(prefix, delete_value)
    app.router.add_get("/v1/nodes/{node}/config", node_view)
