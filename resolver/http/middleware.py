"""The API's one middleware: token check on writes, error mapping, request counting.

One layer rather than three because every request of the lookup hot path pays for
each layer it crosses. The token is checked before the handler runs, so a refused
write changes nothing; errors of any kind leave here in the shape `describe` gives
them; and every request is counted by route template, method and final status
(templates, not paths, so that the label set stays bounded).
"""

from __future__ import annotations

import logging

from aiohttp import web

from resolver.http.appkeys import STATE
from resolver.http.auth import READ_METHODS, require_token
from resolver.http.consul_http import CONSUL_PREFIXES, answer_consul
from resolver.http.errors import Handler, describe, error_response
from resolver.http.reads import INDEX_HEADER
from resolver.metrics import HTTP_REQUESTS

log = logging.getLogger("pilotfish.http")


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(CONSUL_PREFIXES):
        # Consul's paths answer in Consul's conventions: its headers, plain-text errors.
        return await answer_consul(request, handler)
    try:
        if request.method not in READ_METHODS:
            require_token(request)
        response = await handler(request)
    except web.HTTPException as exc:
        # aiohttp's own refusals (no such route, method not allowed) get our shape too.
        code = "not_found" if exc.status == 404 else exc.reason.lower().replace(" ", "_")
        response = _refused(request, error_response(exc.status, code, exc.reason, {}))
        if exc.status == 405:
            response.headers["Allow"] = exc.headers.get("Allow", "")
    except Exception as exc:
        described = describe(exc)
        if described is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            described = (500, "internal", "internal error; see the daemon log", {})
        response = _refused(request, error_response(*described))
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    HTTP_REQUESTS[(route, request.method, response.status)] += 1
    return response


def _refused(request: web.Request, response: web.Response) -> web.Response:
    """A refused read carries the index too: a client can start a blocking query from
    the 404 of a service that is not registered yet."""
    if request.method in READ_METHODS:
        response.headers[INDEX_HEADER] = str(request.app[STATE].catalog.current.index)
    return response
