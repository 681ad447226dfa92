"""Conflict rules: `/v1/conflicts` and `/v1/services/{name}/conflicts`.

Reads come from the snapshot (which carries every rule in force: shipped, config,
API and fleet ones); writes go through the catalog so that a new rule applies to the
very next registration. A rule never evicts what is already registered, so adding one
needs no check here.

In fleet mode a rule added here goes to etcd (`conflicts/<a>+<b>`) and applies on
every node; its id is that pair, and `DELETE /v1/conflicts/<a>+<b>` takes it off the
fleet. Rules stored before fleet mode keep their numbers and stay on this node.
"""

from __future__ import annotations

from aiohttp import web

from registry.errors import NotFoundError, Problem, ValidationError
from registry.model import ConflictType
from registry.names import DNS_LABEL
from resolver.http.appkeys import STATE
from resolver.http.bodies import read_object
from resolver.http.errors import bad_request
from resolver.http.reads import json_response, read_snapshot

RULE_FIELDS = ("a", "b", "type", "reason")


async def list_rules(request: web.Request) -> web.Response:
    snapshot = await read_snapshot(request)
    return json_response({"rules": [rule.to_dict() for rule in snapshot.rules]}, snapshot)


async def add_rule(request: web.Request) -> web.Response:
    body = await read_object(request)
    problems = [Problem("<request>", None, key, "unknown key") for key in body if key not in RULE_FIELDS]
    for key in RULE_FIELDS:
        if not isinstance(body.get(key), str) or not body[key].strip():
            problems.append(Problem("<request>", None, key, "required, a non-empty string"))
    for key in ("a", "b"):
        name = body.get(key)
        if isinstance(name, str) and name.strip() and not DNS_LABEL.fullmatch(name):
            # Service names are DNS labels; a rule on anything else could never match.
            problems.append(Problem("<request>", None, key, f"{name!r} is not a service name (a-z, 0-9, '-')"))
    types = [t.value for t in ConflictType]
    if isinstance(body.get("type"), str) and body["type"] not in types:
        problems.append(Problem("<request>", None, "type", f"must be one of {', '.join(types)}"))
    if not problems and body["a"] == body["b"]:
        problems.append(Problem("<request>", None, "b", "a service cannot conflict with itself"))
    if problems:
        raise ValidationError(problems)
    state = request.app[STATE]
    catalog = state.catalog
    if state.cluster is not None:
        rule = await state.cluster.add_rule(body["a"], body["b"], ConflictType(body["type"]), body["reason"])
    else:
        rule = catalog.add_rule(body["a"], body["b"], ConflictType(body["type"]), body["reason"])
    return json_response(rule.to_dict(), catalog.current, 201)


async def delete_rule(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    state = request.app[STATE]
    catalog = state.catalog
    a, plus, b = raw.partition("+")
    if plus and DNS_LABEL.fullmatch(a) and DNS_LABEL.fullmatch(b):
        if state.cluster is None:
            raise NotFoundError("conflict rule", raw)  # fleet rules exist in fleet mode only
        rule = await state.cluster.delete_rule(raw)
        return json_response({"deleted": rule.to_dict()}, catalog.current)
    try:
        rule_id = int(raw)
    except ValueError:
        raise bad_request("id", f"{raw!r} is not a rule id (an integer, or <a>+<b> for a fleet rule)") from None
    if rule_id.bit_length() > 63:
        raise NotFoundError("conflict rule", raw)  # beyond any SQLite rowid
    rule = catalog.delete_rule(rule_id)
    return json_response({"deleted": rule.to_dict()}, catalog.current)


async def service_conflicts(request: web.Request) -> web.Response:
    """The rules naming this service and, for each, what on the node it would clash with."""
    snapshot = await read_snapshot(request)
    name = request.match_info["name"]
    node = request.query.get("node", snapshot.local_node)
    rules = []
    for rule in snapshot.rules:
        if name not in rule.pair:
            continue
        other = rule.other(name)
        registered = [
            {
                "id": e.instance.id,
                "node": e.instance.node,
                "source": str(e.instance.source),
                "address": e.instance.address,
                "port": e.instance.port,
            }
            for e in snapshot.entries_by_name.get(other, ())
            if e.instance.node == node
        ]
        rules.append({**rule.to_dict(), "other": other, "registered": registered})
    blocked = any(rule["registered"] for rule in rules)
    return json_response({"name": name, "node": node, "blocked": blocked, "rules": rules}, snapshot)


def add_conflict_routes(app: web.Application) -> None:
    app.router.add_get("/v1/conflicts", list_rules)
    app.router.add_post("/v1/conflicts", add_rule)
    app.router.add_delete("/v1/conflicts/{id}", delete_rule)
    app.router.add_get("/v1/services/{name}/conflicts", service_conflicts)
