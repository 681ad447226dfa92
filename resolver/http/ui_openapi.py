"""The status page's operations in the OpenAPI document (resolver.http.routes_ui).

HTML for people, not for programs; described so that the document lists every route
the app serves, and so that schemathesis holds these routes to their promises too.
"""

from __future__ import annotations

from resolver.http.openapi_parts import Operation, error, query, text_body
from resolver.http.openapi_spec import BLOCKING

UI_VIEW = [
    {**query("filter", "services whose name or one of whose tags contains this (case-insensitive)"),
     "schema": {"type": "string", "maxLength": 100}},
    {**query("page", "page of services, 50 a page", "integer"), "schema": {"type": "integer", "minimum": 1}},
]
UI_ERRORS = {"400": error("a query parameter is invalid (`problems` names it)")}
# /ui passes its query string on to /ui/ as it came, unread: the page checks it.
UI_FORWARDED = [query(name, "passed on to /ui/ as it is") for name in ("filter", "page")]


UI_OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/ui"): {
        "summary": "Redirects to the status page, /ui/ (308), with the same query string",
        "parameters": UI_FORWARDED,
        "responses": {"308": {"description": "to /ui/", "headers": {"Location": {"schema": {"type": "string"}}}}},
    },
    ("GET", "/ui/"): {
        "summary": "The status page: services, this node, rejected files, conflict rules, the last events",
        "parameters": UI_VIEW,
        "responses": {"200": text_body("the page; complete without JavaScript", "text/html"), **UI_ERRORS},
    },
    ("GET", "/ui/fragment"): {
        "summary": "The live part of the status page, which its script refreshes with blocking queries",
        "parameters": UI_VIEW + BLOCKING,
        "responses": {"200": text_body("the node and catalog sections of the page", "text/html")},
    },
}
