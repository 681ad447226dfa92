"""The OpenAPI 3.0 document served at `/v1/openapi.json`, built from resolver.http.openapi_spec.

The served document lists exactly the operations of the running app's router: a
route without a description, or a description without a route, fails
tests/test_http_openapi.py. Its query parameters are also what the server accepts
(resolver/http/params.py builds its rules from OPERATIONS). Building it must not
change the app; it reads the router only.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from resolver.http import openapi_spec
from resolver.http.consul_openapi import CONSUL_OPERATIONS, CONSUL_SCHEMAS
from resolver.http.openapi_parts import Operation
from resolver.http.openapi_spec import DOCUMENTED_METHODS, INDEX_HEADER, PARAMETER_ERRORS, READ_ERRORS
from resolver.http.ui_openapi import UI_OPERATIONS
from resolver.state import VERSION

# Our own API, the Consul-compatible reads and the status page, each described beside its routes.
OPERATIONS: dict[tuple[str, str], Operation] = {**openapi_spec.OPERATIONS, **CONSUL_OPERATIONS, **UI_OPERATIONS}
COMPONENTS: dict[str, Any] = {
    **openapi_spec.COMPONENTS,
    "schemas": {**openapi_spec.COMPONENTS["schemas"], **CONSUL_SCHEMAS},
}


def routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves (HEAD twins left out)."""
    out = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is not None and route.method in DOCUMENTED_METHODS:
            out.add((route.method, resource.canonical))
    return out


def _with_index_header(operation: Operation) -> Operation:
    """Every answer of our reads, refusals included, carries X-Pilotfish-Index (added here, so none forgets)."""
    responses = {
        status: {**response, "headers": {**INDEX_HEADER, **response.get("headers", {})}}
        for status, response in operation["responses"].items()
    }
    return {**operation, "responses": responses}


def document(app: web.Application) -> dict[str, Any]:
    # Writes name the bearer scheme; the empty alternative says it is optional
    # (only required when the daemon has a token configured).
    paths: dict[str, dict[str, Any]] = {}
    for method, path in sorted(routes(app)):
        operation = OPERATIONS.get((method, path), {"summary": "undocumented", "responses": {"200": {"description": "ok"}}})
        if any(param["name"] == "index" for param in operation.get("parameters", [])):
            operation = {**operation, "responses": {**READ_ERRORS, **operation["responses"]}}
        if (method, path) not in CONSUL_OPERATIONS:
            # Any of our routes refuses a query parameter it does not declare.
            operation = {**operation, "responses": {**PARAMETER_ERRORS, **operation["responses"]}}
            if method == "GET":
                operation = _with_index_header(operation)
        if method != "GET":
            operation = {**operation, "security": [{}, {"bearer": []}]}
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "pilotfish", "version": VERSION, "description": "Per-host service discovery: lookups, registrations, conflicts, config."},
        "components": {
            **COMPONENTS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }
