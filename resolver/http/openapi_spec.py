"""What the OpenAPI document says of each route: a declarative table, written by hand.

`OPERATIONS` describes every route by (method, path template), because a description
is a promise to clients and has to be written, not inferred; `COMPONENTS` holds the
shared schemas. Enums and the registration's fields come from the Python
declarations. resolver.http.openapi builds the served document from this.
"""

from __future__ import annotations

from typing import Any

from registry.configvalues import CONFIG_SCOPES, VALUE_TYPES
from registry.events import EventKind
from registry.model import REGISTRATION_FIELDS, ConflictType, Status, Transport
from registry.states import MaintenanceKind, NodeState, WindowPhase
from registry.windows import DRAIN_PATTERN, MAX_REASON, TIME_PATTERN
from resolver.client.selection import Strategy
from resolver.http.openapi_parts import Operation, enum_schema, error, json_body, path_param, query, ref

DOCUMENTED_METHODS = ("GET", "POST", "PUT", "DELETE")

DURATION_PATTERN = r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+$"
BLOCKING = [
    {**query("index", "blocking query: return once the catalog index exceeds this", "integer"),
     "schema": {"type": "integer", "minimum": 0}},
    {**query("wait", "longest wait of a blocking query (500ms, 30s, 5m; at most 10m; default 5m)"),
     "schema": {"type": "string", "pattern": DURATION_PATTERN}},
]
# The meta filter is an object parameter: `style: deepObject` is how OpenAPI says
# `meta[<key>]=<value>`, which generated clients send and the server reads (a
# form-exploded object would go out as bare `<key>=<value>`, which no route takes).
# The server reads `meta.<key>=<value>` too, which OpenAPI 3.0 cannot declare.
META = {
    "name": "meta",
    "in": "query",
    "required": False,
    "description": "instances whose meta has every one of these key/value pairs",
    "style": "deepObject",
    "explode": True,
    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
}
FILTERS = [
    query("tag", "instances carrying this tag; repeat it, every tag must match", repeat=True),
    query("version", "exact version"),
    query("node", "node name"),
    query("status", "passing, warning, critical, maintenance (repeat or comma-separate), or any", repeat=True),
    META,
]
META_FILTER = (
    "Filter on meta with `meta[<key>]=<value>` (the `meta` parameter) or `meta.<key>=<value>`; repeat for "
    "several keys, all must match. Any other query parameter is refused (400 `invalid`, naming it)."
)
NAME = path_param("name", "service name")
INSTANCE_ID = path_param("id", "instance id")
# The older PUT and DELETE paths share the lookup's template: OpenAPI forbids two
# templates that differ only in a parameter's name.
LEGACY_INSTANCE_ID = path_param("name", "the instance id, though named `name`: use /v1/instances/{id}")
KEY = path_param("key", "config key")
NODE = path_param("node", "node name")
WRITE_ERRORS = {"401": error("a token is configured and the request has no valid bearer token")}
INVALID = {"400": error("invalid JSON or a field at fault (`problems` names it)")}
EXEC_REFUSED = {"403": error("an exec check, and the config does not set health.exec_from_api: true with http.token (`exec_not_allowed`)")}
# Writes that SQLite must commit before the answer (`file` names the database).
STORAGE_ERRORS = {
    "503": error("the database cannot be written: storage_read_only, storage_corrupt or storage_unavailable"),
    "507": error("storage_full: the disk, or limits.database_size, is full; nothing was written"),
}
INDEX_HEADER = {
    "X-Pilotfish-Index": {
        "description": "the catalog index this answer was built from; send it back as `index` to block",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
}
# The service lookups' answers (resolver/http/representation.py): a strong ETag of
# the body, gzip when asked, 304 for a client that has it already.
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "the ETag of an answer held: 304 without a body while it is still the answer",
    "schema": {"type": "string"},
}
REPRESENTATION_HEADERS = {
    "ETag": {
        "description": "strong, a digest of the body (the gzip body has its own); the same body keeps it",
        "required": True,
        "schema": {"type": "string"},
    },
    "Vary": {"description": "Accept-Encoding", "required": True, "schema": {"type": "string"}},
    "Content-Encoding": {
        "description": "gzip when Accept-Encoding takes it and the body is 1 KiB or more",
        "schema": {"type": "string", "enum": ["gzip"]},
    },
}
NOT_MODIFIED = {"304": {"description": "not modified: If-None-Match names the current ETag", "headers": REPRESENTATION_HEADERS}}


def _conditional(responses: dict[str, Any]) -> dict[str, Any]:
    """A lookup's responses with its representation headers on the 200, and the 304."""
    ok = {**responses["200"], "headers": REPRESENTATION_HEADERS}
    return {**responses, "200": ok, **NOT_MODIFIED}


# Every operation of ours may answer this (resolver/http/params.py); `document` adds
# it where an operation has no 400 of its own.
PARAMETER_ERRORS = {"400": error("a query parameter this operation does not take (`problems` names it)")}
# Conflict rules and config: SQLite on one host, etcd in fleet mode.
FLEET_WRITE_ERRORS = {
    **STORAGE_ERRORS,
    "503": error("the database cannot be written (storage_read_only, storage_corrupt, storage_unavailable), "
                  "or in fleet mode etcd did not take the write (cluster_unavailable); nothing changed"),
}
# Every operation with the blocking-query parameters may also answer these; they are
# added by `document` so that no read can forget them.
READ_ERRORS = {
    "400": error("a query parameter is invalid (`problems` names it)"),
    "503": error("too_many_waiting: too many blocking queries wait already; or the database cannot be read"),
}
CONFIG_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["value"],
                "properties": {
                    "value": {"description": "the value, or its text form"},
                    "value_type": enum_schema(VALUE_TYPES, default="string"),
                },
            }
        }
    },
}
REGISTRATION_BODY = {"required": True, "content": {"application/json": {"schema": ref("Registration")}}}
MAINTENANCE_BODY = {"required": True, "content": {"application/json": {"schema": ref("Maintenance")}}}
MAINTENANCE_REFUSED = {
    "409": error("refused: a move the state table does not allow (`invalid_transition`: on twice, off when not on), "
                  "a window overlapping another of the target (`window_overlap`), or `too_many_windows`"),
}
MAINTENANCE_WORDS = (
    "enable true begins maintenance of the given kind: immediate (at once, until ended), draining (leaves DNS "
    "and healthy lookups at once, offline after drain_timeout or .../done) or planned (from start to end, "
    "draining drain_ahead before start). enable false ends the maintenance under way; the target then "
    "recovers until each of its checks has passed rise times anew."
)
WINDOW_ID = path_param("window_id", "window id (GET /v1/maintenance lists them)")
TIME = {"type": "string", "pattern": TIME_PATTERN, "description": "RFC 3339 with its offset, or +<duration> from now"}
DRAIN = {"type": "string", "pattern": DRAIN_PATTERN,
         "description": "a duration: 5m, 30s; 0s for none (at most 24h)"}


NODE_OF_INSTANCE = query("node", "the instance's node (default: this node)")
REPLACE: Operation = {
    "summary": "Replace an instance registered through the API",
    "parameters": [INSTANCE_ID],
    "requestBody": REGISTRATION_BODY,
    "responses": {
        "200": json_body(ref("Instance"), "replaced"),
        **INVALID,
        **EXEC_REFUSED,
        "404": error("no such instance"),
        "409": error("owned by a file (`file`), or a conflict"),
        **WRITE_ERRORS,
        **STORAGE_ERRORS,
    },
}
DEREGISTER: Operation = {
    "summary": "Deregister an instance registered through the API",
    "parameters": [INSTANCE_ID, NODE_OF_INSTANCE],
    "responses": {
        "200": json_body({"type": "object"}, "deregistered"),
        "404": error("no such instance"),
        "409": error("owned by a file (`file` names it) or the cluster"),
        **WRITE_ERRORS,
        **STORAGE_ERRORS,
    },
}


def _legacy(operation: Operation, method: str) -> Operation:
    """The same operation on its older path, whose segment is named `name` (see LEGACY_INSTANCE_ID)."""
    parameters = [LEGACY_INSTANCE_ID] + [p for p in operation["parameters"] if p is not INSTANCE_ID]
    return {
        **operation,
        "summary": f"{operation['summary']} (older path: {method} /v1/instances/{{id}} is the same)",
        "deprecated": True,
        "parameters": parameters,
    }


def _config_ops(prefix: str, scope: str, params: list[dict[str, Any]]) -> dict[tuple[str, str], Operation]:
    fallback = ", else the global default" if params[0]["name"] == "node" else ""
    return {
        ("GET", prefix): {
            "summary": f"Read a {scope} config value{fallback}",
            "parameters": params + BLOCKING,
            "responses": {"200": json_body(ref("ConfigValue"), "the value, cast"), "404": error("no such key")},
        },
        ("PUT", prefix): {
            "summary": f"Set a {scope} config value (fleet mode: in etcd, for every node)",
            "parameters": params,
            "requestBody": CONFIG_BODY,
            "responses": {
                "200": json_body(ref("ConfigValue"), "the stored value, cast"),
                "400": error("the value does not cast to value_type (fleet mode: or a key or node name etcd cannot hold)"),
                **WRITE_ERRORS,
                **FLEET_WRITE_ERRORS,
            },
        },
        ("DELETE", prefix): {
            "summary": f"Delete a {scope} config value",
            "parameters": params,
            "responses": {
                "200": json_body({"type": "object"}, "deleted"), "404": error("no such key"), **WRITE_ERRORS,
                **FLEET_WRITE_ERRORS,
            },
        },
    }


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/v1/services"): {
        "summary": "Every discoverable instance, grouped by service name (all statuses unless `status` is given)",
        "description": META_FILTER,
        "parameters": FILTERS + BLOCKING + [IF_NONE_MATCH],
        "responses": _conditional({
            "200": json_body({"type": "object", "additionalProperties": {"type": "array", "items": ref("Instance")}}, "by name")
        }),
    },
    ("POST", "/v1/services"): {
        "summary": "Register an instance (durable before the answer); re-posting an API instance replaces it",
        "requestBody": REGISTRATION_BODY,
        "responses": {
            "201": json_body(ref("Instance"), "registered"),
            "200": json_body(ref("Instance"), "replaced an instance registered through the API"),
            **INVALID,
            **EXEC_REFUSED,
            "409": error("refused: a conflict rule or an instance in the way (`rule`, `reason`, `incumbent`), or the id is owned by a file"),
            **WRITE_ERRORS,
            **STORAGE_ERRORS,
        },
    },
    ("GET", "/v1/services/{name}"): {
        "summary": "Instances of a service (passing only unless `status` is given)",
        "description": META_FILTER,
        "parameters": [NAME] + FILTERS + BLOCKING + [IF_NONE_MATCH],
        "responses": _conditional({
            "200": json_body({"type": "array", "items": ref("Instance")}, "matching instances"),
            "404": error("no such service"),
        }),
    },
    ("PUT", "/v1/instances/{id}"): REPLACE,
    ("DELETE", "/v1/instances/{id}"): DEREGISTER,
    ("PUT", "/v1/services/{name}"): _legacy(REPLACE, "PUT"),
    ("DELETE", "/v1/services/{name}"): _legacy(DEREGISTER, "DELETE"),
    ("GET", "/v1/services/{name}/url"): {
        "summary": "One instance's URL, chosen by a strategy",
        "description": (
            "least_conn picks the instance with the fewest connections: each selection counts as one new "
            "connection, and clients may report the real count through POST /v1/services/{name}/feedback. "
            "ip_hash hashes the client's address; local_first prefers this node (round robin within). "
            + META_FILTER
        ),
        "parameters": [
            NAME,
            {
                "name": "strategy",
                "in": "query",
                "required": False,
                "schema": enum_schema(Strategy, default=Strategy.ROUND_ROBIN.value),
            },
        ]
        + FILTERS
        + BLOCKING,
        "responses": {
            "200": json_body(
                {"type": "object", "properties": {"url": {"type": "string"}, "strategy": {"type": "string"}, "instance": ref("Instance")}},
                "the chosen instance",
            ),
            "400": error("unknown strategy or filter value"),
            "404": error("no such service"),
            "503": error("no instance matches"),
        },
    },
    ("POST", "/v1/services/{name}/feedback"): {
        "summary": "Report the connections a client has open to an instance (least_conn)",
        "parameters": [NAME],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["id", "active"],
                        "properties": {
                            "id": {"type": "string"},
                            "node": {"type": "string", "nullable": True},
                            "active": {"type": "integer", "minimum": 0},
                        },
                    }
                }
            },
        },
        "responses": {"200": json_body({"type": "object"}, "recorded"), **INVALID, "404": error("no such instance"), **WRITE_ERRORS},
    },
    ("GET", "/v1/services/{name}/conflicts"): {
        "summary": "Conflict rules naming a service, and what on the node each would clash with",
        "parameters": [NAME, query("node", "node to check (default: this node)")] + BLOCKING,
        "responses": {"200": json_body({"type": "object"}, "rules with the registered instances in the way")},
    },
    ("GET", "/v1/conflicts"): {
        "summary": "Every conflict rule in force (shipped, config file, API; fleet rules with `source: cluster`)",
        "parameters": BLOCKING,
        "responses": {"200": json_body({"type": "object", "properties": {"rules": {"type": "array", "items": ref("ConflictRule")}}}, "rules")},
    },
    ("POST", "/v1/conflicts"): {
        "summary": "Add a conflict rule (applies to later registrations; fleet mode: in etcd, on every node, id `<a>+<b>`)",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["a", "b", "type", "reason"],
                        "properties": {
                            "a": {"type": "string"},
                            "b": {"type": "string"},
                            "type": enum_schema(ConflictType),
                            "reason": {"type": "string"},
                        },
                    }
                }
            },
        },
        "responses": {
            "201": json_body(ref("ConflictRule"), "the rule (the existing one when the pair exists)"),
            **INVALID,
            **WRITE_ERRORS,
            **FLEET_WRITE_ERRORS,
        },
    },
    ("DELETE", "/v1/conflicts/{id}"): {
        "summary": "Delete a stored conflict rule (a number), or a fleet rule (`<a>+<b>`, either order: off etcd, every node)",
        "parameters": [path_param("id", "a stored rule's number, or a fleet rule's `<a>+<b>`")],
        "responses": {
            "200": json_body({"type": "object"}, "deleted"),
            "400": error("not an id"),
            "404": error("no such rule (a pair on a single host: there are no fleet rules)"),
            **WRITE_ERRORS,
            **FLEET_WRITE_ERRORS,
        },
    },
    **_config_ops("/v1/config/{key}", "global", [KEY]),
    **_config_ops("/v1/nodes/{node}/config/{key}", "node", [NODE, KEY]),
    ("GET", "/v1/nodes/{node}/config"): {
        "summary": "Every config key a node sees: its own values over the global ones",
        "parameters": [NODE] + BLOCKING,
        "responses": {"200": json_body({"type": "object"}, "merged view")},
    },
    ("GET", "/v1/events"): {
        "summary": "The event log, newest first",
        "parameters": [
            query("kind", ", ".join(kind.value for kind in EventKind)),
            query("before", "page: events older than this seq (the previous page's next_before)", "integer"),
            query("limit", "page size, 1..1000 (default 100)", "integer"),
        ]
        + BLOCKING,
        "responses": {"200": json_body({"type": "object", "properties": {"events": {"type": "array", "items": ref("Event")}, "next_before": {"type": "integer", "nullable": True}}}, "a page")},
    },
    ("GET", "/v1/status"): {
        "summary": "Version, node, bound ports, snapshot index, counts, rejected files and the fleet (`cluster`)",
        "parameters": BLOCKING,
        "responses": {"200": json_body({"type": "object"}, "status")},
    },
    ("GET", "/healthz"): {"summary": "Liveness", "responses": {"200": json_body({"type": "object"}, "alive")}},
    ("GET", "/metrics"): {
        "summary": "Prometheus metrics (text exposition format)",
        "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
    },
    ("GET", "/v1/openapi.json"): {"summary": "This document", "responses": {"200": json_body({"type": "object"}, "OpenAPI 3.0")}},
    # Health routes (resolver.http.routes_health, issue 4).
    ("PUT", "/v1/checks/{check_id}/{result}"): {
        "summary": "Report a TTL check's result (result: pass, warn or fail)",
        "parameters": [
            path_param("check_id", "check id"),
            path_param("result", "pass, warn or fail"),
            query("note", "kept as the check's output (a body's `note` wins)"),
        ],
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": {"note": {"type": "string", "nullable": True}}},
                }
            },
        },
        "responses": {
            "200": json_body({"type": "object"}, "recorded"),
            "400": error("a body that is not a JSON object, a note that is not a string, or a query parameter "
                          "this operation does not take (`problems` names it)"),
            "404": error("no such TTL check"),
            **WRITE_ERRORS,
        },
    },
    ("GET", "/v1/node"): {
        "summary": "This node: state, maintenance and windows, the state table (transitions), psutil figures",
        "parameters": BLOCKING,
        "responses": {"200": json_body({"type": "object"}, "node")},
    },
    ("PUT", "/v1/node/maintenance"): {
        "summary": "Maintenance of this node: begin one (immediate, draining or planned) or end the one under way",
        "description": MAINTENANCE_WORDS,
        "requestBody": MAINTENANCE_BODY,
        "responses": {"200": json_body(ref("NodeMaintenance"), "the node, and the window the request opened or ended"),
                      **INVALID, **MAINTENANCE_REFUSED, **WRITE_ERRORS, **STORAGE_ERRORS},
    },
    ("PUT", "/v1/node/maintenance/done"): {
        "summary": "The work may start: a draining node goes offline now",
        "responses": {"200": json_body(ref("NodeMaintenance"), "the node, offline"),
                      "409": error("the node is not draining (`invalid_transition`)"), **WRITE_ERRORS, **STORAGE_ERRORS},
    },
    ("PUT", "/v1/services/{id}/maintenance"): {
        "summary": "Maintenance of one instance of this node, as for the node (drains it from DNS and healthy lookups)",
        "description": MAINTENANCE_WORDS,
        "parameters": [path_param("id", "instance id"), query("node", "the instance's node: this node only")],
        "requestBody": MAINTENANCE_BODY,
        "responses": {"200": json_body(ref("InstanceMaintenance"), "the instance, and the window the request opened or ended"),
                      **INVALID, "404": error("no such instance on this node"), **MAINTENANCE_REFUSED,
                      **WRITE_ERRORS, **STORAGE_ERRORS},
    },
    ("PUT", "/v1/services/{id}/maintenance/done"): {
        "summary": "The work may start: a draining instance goes offline now",
        "parameters": [path_param("id", "instance id"), query("node", "the instance's node: this node only")],
        "responses": {"200": json_body(ref("InstanceMaintenance"), "the instance, offline"),
                      "404": error("no such instance on this node"),
                      "409": error("the instance is not draining (`invalid_transition`)"), **WRITE_ERRORS, **STORAGE_ERRORS},
    },
    ("GET", "/v1/maintenance"): {
        "summary": "Every maintenance window of this node and its instances, planned ones too, by start",
        "parameters": BLOCKING,
        "responses": {"200": json_body({"type": "object", "required": ["windows"],
                                    "properties": {"windows": {"type": "array", "items": ref("Window")}}}, "windows")},
    },
    ("PUT", "/v1/maintenance/{window_id}"): {
        "summary": "Change a window: its reason and end; a planned window not begun, its start and drain_ahead too",
        "parameters": [WINDOW_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref("WindowChange")}}},
        "responses": {"200": json_body(ref("Window"), "the window as changed"), **INVALID,
                      "404": error("no such window"), **MAINTENANCE_REFUSED, **WRITE_ERRORS, **STORAGE_ERRORS},
    },
    ("DELETE", "/v1/maintenance/{window_id}"): {
        "summary": "Cancel a window: one not begun changes nothing, one under way ends now (its target recovers)",
        "parameters": [WINDOW_ID],
        "responses": {"200": json_body(ref("Window"), "the window cancelled"), "400": error("not a window id"),
                      "404": error("no such window"), **WRITE_ERRORS, **STORAGE_ERRORS},
    },
}

# The JSON schema of each registration field (the field list itself is the model's).
REGISTRATION_SCHEMAS: dict[str, dict[str, Any]] = {
    "id": {"type": "string"},
    "name": {"type": "string"},
    "node": {"type": "string"},
    "address": {"type": "string"},
    "port": {"type": "integer"},
    "protocol": {"type": "string"},
    "transport": enum_schema(Transport),
    "endpoint_path": {"type": "string"},
    "version": {"type": "string"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "meta": {"type": "object", "additionalProperties": {"type": "string"}},
    "weight": {"type": "integer"},
    "priority": {"type": "integer"},
    "discoverable": {"type": "boolean"},
    "checks": {"type": "array", "items": {"type": "object"}},
    "ttl": {"type": "string", "description": "duration: 30s, 5m"},
}

COMPONENTS: dict[str, Any] = {
    "schemas": {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    "additionalProperties": True,
                }
            },
        },
        "Registration": {
            "type": "object",
            "required": ["name"],
            # In registry.model.REGISTRATION_FIELDS order; a field without a schema here fails at import.
            "properties": {name: REGISTRATION_SCHEMAS[name] for name in REGISTRATION_FIELDS},
        },
        "Instance": {
            "type": "object",
            "description": "every registry field plus status, url and source (file:<path>, api or cluster)",
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "node": {"type": "string"},
                "address": {"type": "string"},
                "port": {"type": "integer"},
                "status": enum_schema(Status),
                "url": {"type": "string"},
                "source": {"type": "string"},
            },
            "additionalProperties": True,
        },
        "ConflictRule": {
            "type": "object",
            "properties": {
                "id": {"oneOf": [{"type": "integer"}, {"type": "string"}], "nullable": True,
                       "description": "a stored rule's number, a fleet rule's `<a>+<b>`, null for shipped and config rules"},
                "a": {"type": "string"},
                "b": {"type": "string"},
                "type": {"type": "string"},
                "reason": {"type": "string"},
                "source": {"type": "string"},
            },
        },
        "ConfigValue": {
            "type": "object",
            "properties": {
                "key": {"type": "string"},
                "value": {},
                "value_type": {"type": "string"},
                "scope": enum_schema(CONFIG_SCOPES),
            },
        },
        "Maintenance": {
            "type": "object",
            "required": ["enable"],
            "additionalProperties": False,
            "properties": {
                "enable": {"type": "boolean"},
                "kind": enum_schema(MaintenanceKind, default=MaintenanceKind.IMMEDIATE.value),
                # A null reason is no reason, as an absent one.
                "reason": {"type": "string", "nullable": True, "maxLength": MAX_REASON},
                "drain_timeout": {**DRAIN, "description": "kind draining: offline after this (default 5m)"},
                "start": {**TIME, "description": "kind planned, required: when the work starts"},
                "end": {**TIME, "description": "kind planned, required: when it ends by itself"},
                "drain_ahead": {**DRAIN, "description": "kind planned: drain this long before start (default 5m)"},
            },
        },
        "WindowChange": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "reason": {"type": "string", "nullable": True, "maxLength": MAX_REASON},
                "start": TIME,
                "end": {**TIME, "nullable": True},
                "drain_ahead": DRAIN,
            },
        },
        "Window": {
            "type": "object",
            "required": ["id", "node", "instance", "kind", "reason", "phase", "drain_at", "start", "end", "created"],
            "properties": {
                "id": {"type": "integer"},
                "node": {"type": "string"},
                "instance": {"type": "string", "nullable": True, "description": "null: the node itself"},
                "kind": enum_schema(MaintenanceKind),
                "reason": {"type": "string"},
                "phase": enum_schema(WindowPhase),
                "drain_at": {"type": "string", "description": "RFC 3339: drains from here"},
                "start": {"type": "string", "description": "RFC 3339: the work, offline (maintenance when immediate)"},
                "end": {"type": "string", "nullable": True, "description": "RFC 3339; null: until it is ended"},
                "created": {"type": "string"},
            },
        },
        "NodeMaintenance": {
            "type": "object",
            "description": "the node as GET /v1/node has it, with `window`",
            "required": ["state", "window"],
            "properties": {"state": enum_schema(NodeState), "window": ref("Window")},
            "additionalProperties": True,
        },
        "InstanceMaintenance": {
            "type": "object",
            "description": "the instance, with `window`",
            "required": ["status", "window"],
            "properties": {
                "status": enum_schema(Status),
                "maintenance_state": enum_schema(NodeState),
                "maintenance_until": {"type": "string", "nullable": True},
                "window": ref("Window"),
            },
            "additionalProperties": True,
        },
        "Event": {
            "type": "object",
            "properties": {
                "seq": {"type": "integer"},
                "ts": {"type": "number"},
                "kind": {"type": "string"},
                "subject": {"type": "string"},
                "detail": {"type": "object"},
            },
        },
    }
}
