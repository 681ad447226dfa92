"""The OpenAPI descriptions of the Consul-compatible reads (resolver/http/routes_consul.py).

Kept beside the routes they describe and merged into the served document by
resolver/http/openapi.py, whose tests tie every description to a route. The schemas
name the fields Consul's clients decode and their types; the full field sets are
Consul's own (resolver/http/consul_shapes.py).
"""

from __future__ import annotations

from typing import Any

from resolver.http.openapi_parts import Operation, json_body, path_param, query, ref, text_body

HEADERS = {
    "X-Consul-Index": {
        "description": "the catalog index this answer was built from (never 0)", "schema": {"type": "integer"},
    },
    "X-Consul-KnownLeader": {"description": "always true", "schema": {"type": "string"}},
    "X-Consul-LastContact": {"description": "always 0", "schema": {"type": "integer"}},
}
COMMON = [
    query("index", "blocking query: answer once the catalog index exceeds this (0: at once)", "integer"),
    query("wait", "longest wait of a blocking query, a Go duration (120000ms, 10s, 5m; at most 10m; default 5m)"),
    query("dc", "this daemon's datacenter (cluster.datacenter) only; another answers 400 No path to datacenter"),
    query("node-meta", "k:v, repeatable: nodes whose meta has that value (every node: consul-network-segment:)",
           repeat=True),
    query("stale", "accepted with or without a value; every answer comes from the local snapshot"),
    query("consistent", "accepted with or without a value (not with stale or cached)"),
    query("cached", "accepted with or without a value"),
    query("near", "accepted and ignored: no network coordinates"),
]
REFUSALS = {
    "400": text_body(
        "a query parameter refused, in Consul's words: Invalid wait time, Invalid index, Invalid value for ?passing, "
        "filter (not served), a namespace, partition or peer, a name that is not a parameter of this endpoint, "
        "or dc naming another datacenter (No path to datacenter)"
    ),
}
NAME = path_param("name", "service name (any case)")
TAGS = query("tag", "instances carrying this tag (any case); repeat it, every tag must match", repeat=True)


def _op(summary: str, description: str, body: dict[str, Any], parameters: list[dict[str, Any]]) -> Operation:
    ok = {**body, "headers": HEADERS}
    return {"summary": summary, "description": description, "tags": ["consul"], "parameters": parameters,
            "responses": {"200": ok, **REFUSALS}}


CONSUL_OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/v1/agent/self"): _op(
        "Consul: this agent (Config.Datacenter, Config.NodeName, Member.Addr, Meta)",
        "Every top-level value is an object, as Consul's clients decode it.",
        json_body({"type": "object", "additionalProperties": {"type": "object"}}, "the agent"),
        COMMON,
    ),
    ("GET", "/v1/agent/services"): _op(
        "Consul: this node's discoverable services, keyed by ID",
        "Consul's AgentService per instance registered on this node.",
        json_body({"type": "object", "additionalProperties": ref("ConsulAgentService")}, "by service ID"),
        COMMON,
    ),
    ("GET", "/v1/status/leader"): _op(
        "Consul: the leader's address, here this daemon's (\"address:port\")",
        "pilotfish has no Raft; the daemon is the one writer of its catalog.",
        json_body({"type": "string"}, "address:port"),
        COMMON,
    ),
    ("GET", "/v1/catalog/services"): _op(
        "Consul: every service name with its instances' tags",
        "All discoverable services, whatever their health (the catalog's view).",
        json_body({"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
              "name -> tags"),
        COMMON,
    ),
    ("GET", "/v1/catalog/service/{name}"): _op(
        "Consul: a service's instances as flat catalog rows",
        "Every discoverable instance whatever its health; an unknown service is an empty list.",
        json_body({"type": "array", "items": ref("ConsulCatalogService")}, "rows"),
        [NAME, TAGS] + COMMON,
    ),
    ("GET", "/v1/health/service/{name}"): _op(
        "Consul: a service's instances with their node and checks",
        "Every discoverable instance unless `passing`; each carries its node's serfHealth check, its own checks and "
        "maintenance as _service_maintenance:<id> / _node_maintenance critical checks. An unknown service is an "
        "empty list.",
        json_body({"type": "array", "items": ref("ConsulServiceEntry")}, "rows"),
        [NAME, TAGS, query("passing", "only instances whose every check passes; empty or a Go bool (1, true, ...)")]
        + COMMON,
    ),
    ("GET", "/v1/health/state/{state}"): _op(
        "Consul: node and service checks in a state",
        "state is any, passing, warning or critical; any other state answers an empty list, as Consul's does.",
        json_body({"type": "array", "items": ref("ConsulHealthCheck")}, "checks, by node then check ID"),
        [path_param("state", "any, passing, warning or critical")] + COMMON,
    ),
}

_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
_STRING_MAP = {"type": "object", "additionalProperties": _STRING}
_INT = {"type": "integer"}
_SERVICE_ADDRESSES = {
    "type": "object",
    "additionalProperties": {"type": "object", "properties": {"Address": _STRING, "Port": _INT}},
}
_WEIGHTS = {"type": "object", "properties": {"Passing": _INT, "Warning": _INT}}

CONSUL_SCHEMAS: dict[str, Any] = {
    "ConsulNode": {
        "type": "object",
        "properties": {
            "ID": _STRING, "Node": _STRING, "Address": _STRING, "Datacenter": _STRING,
            "TaggedAddresses": _STRING_MAP, "Meta": _STRING_MAP, "CreateIndex": _INT, "ModifyIndex": _INT,
        },
    },
    "ConsulAgentService": {
        "type": "object",
        "properties": {
            "ID": _STRING, "Service": _STRING, "Tags": _STRINGS, "Meta": _STRING_MAP, "Port": _INT,
            "Address": {"type": "string", "description": "empty when the instance uses its node's address"},
            "TaggedAddresses": _SERVICE_ADDRESSES, "Weights": _WEIGHTS, "EnableTagOverride": {"type": "boolean"},
        },
    },
    "ConsulHealthCheck": {
        "type": "object",
        "properties": {
            "Node": _STRING, "CheckID": _STRING, "Name": _STRING,
            "Status": {"type": "string", "enum": ["passing", "warning", "critical"]},
            "Notes": _STRING, "Output": _STRING, "ServiceID": _STRING, "ServiceName": _STRING,
            "ServiceTags": _STRINGS, "Type": _STRING, "Interval": _STRING, "Timeout": _STRING,
            "ExposedPort": _INT, "Definition": {"type": "object"}, "CreateIndex": _INT, "ModifyIndex": _INT,
        },
    },
    "ConsulServiceEntry": {
        "type": "object",
        "properties": {
            "Node": ref("ConsulNode"),
            "Service": ref("ConsulAgentService"),
            "Checks": {"type": "array", "items": ref("ConsulHealthCheck")},
        },
    },
    "ConsulCatalogService": {
        "type": "object",
        "properties": {
            "ID": _STRING, "Node": _STRING, "Address": _STRING, "Datacenter": _STRING,
            "TaggedAddresses": _STRING_MAP, "NodeMeta": _STRING_MAP, "ServiceID": _STRING, "ServiceName": _STRING,
            "ServiceAddress": _STRING, "ServiceTaggedAddresses": _SERVICE_ADDRESSES, "ServicePort": _INT,
            "ServiceTags": _STRINGS, "ServiceMeta": _STRING_MAP, "ServiceWeights": _WEIGHTS,
            "CreateIndex": _INT, "ModifyIndex": _INT,
        },
    },
}
