"""The API's one middleware: token check on writes, error mapping, request counting.

One layer rather than three because every request of the lookup hot path pays for
each layer it crosses. The token and the query parameters are checked before the
handler runs (the parameters only when there is a query string: the plain lookup
pays one test), so a refused write changes nothing and a typo is refused instead of
widening the answer; errors of any kind leave here in the shape `describe` gives
them; and every request is counted by route template, method and final status
(templates, not paths, so that the label set stays bounded). It also tells the
connection guard when a handler starts and ends (resolver/http/guard.py), which is
how the guard knows what it may cut off.

Nothing a client sends may put a traceback in the log: a client that went away, a
malformed body and a refusing database are answered (or not, when no one is left to
answer) and logged at most once per interval. Only an error of ours logs a traceback.
"""

from __future__ import annotations

import logging
from typing import cast

from aiohttp import web

from registry.errors import StorageError
from registry.ratelog import RateLimitedLog
from resolver.http.appkeys import GUARD, QUERY_RULES, STATE
from resolver.http.auth import READ_METHODS, require_token
from resolver.http.consul_http import CONSUL_PREFIXES, answer_consul
from resolver.http.errors import Handler, describe, error_response
from resolver.http.guard import GuardedRequestHandler
from resolver.http.reads import INDEX_HEADER
from resolver.metrics import count_request

log = logging.getLogger("pilotfish.http")
_storage_log = RateLimitedLog(log, logging.ERROR, "API write refused by the database")

# nginx's status for "the client closed the connection": counted, never sent.
CLIENT_GONE = 499


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # The app is only ever served by resolver.http.server, whose connections are these.
    connection = cast(GuardedRequestHandler, request.protocol)
    connection.request_started(request)
    if request.path.startswith(CONSUL_PREFIXES):
        # Consul's paths answer in Consul's conventions: its headers, plain-text errors.
        try:
            return await answer_consul(request, handler)
        finally:
            connection.request_finished()
    try:
        if request.method not in READ_METHODS:
            require_token(request)
        if request.query_string:
            _check_query(request)
        response = await handler(request)
    except web.HTTPException as exc:
        # aiohttp's own refusals (no such route, method not allowed) get our shape too.
        code = "not_found" if exc.status == 404 else exc.reason.lower().replace(" ", "_")
        response = _refused(request, error_response(exc.status, code, exc.reason, {}))
        if exc.status == 405:
            response.headers["Allow"] = exc.headers.get("Allow", "")
    except ConnectionResetError:
        # The client went away mid-request, or the guard cut it off: no one to answer.
        response = web.Response(status=CLIENT_GONE)
    except web.RequestPayloadError as exc:
        # A body aiohttp could not decode (broken chunked encoding, bad compression).
        request.app[GUARD].malformed_log.note(client=request.remote, status=400, error=str(exc))
        response = _refused(request, error_response(400, "bad_request", f"malformed request body: {exc}", {}))
    except Exception as exc:
        described = describe(exc)
        if described is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            described = (500, "internal", "internal error; see the daemon log", {})
        elif isinstance(exc, StorageError):
            _storage_log.note(method=request.method, path=request.path, fault=exc.fault.value, error=str(exc))
        response = _refused(request, error_response(*described))
    finally:
        connection.request_finished()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    count_request(route, request.method, response.status)
    return response


def _check_query(request: web.Request) -> None:
    """400 for a query parameter the route does not declare (resolver/http/params.py).

    A request no route matched is left to the handler, whose 404 or 405 says more.
    """
    resource = request.match_info.route.resource
    if resource is not None:
        request.app[QUERY_RULES].check(request.method, resource.canonical, request.query)


def _refused(request: web.Request, response: web.Response) -> web.Response:
    """A refused read carries the index too: a client can start a blocking query from
    the 404 of a service that is not registered yet."""
    if request.method in READ_METHODS:
        response.headers[INDEX_HEADER] = str(request.app[STATE].catalog.current.index)
    return response
