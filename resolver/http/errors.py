"""The one place where errors become HTTP answers.

Route handlers raise registry errors (or `ApiError` for what only HTTP knows: a bad
query parameter, a missing token) and never build an error response themselves; the
middleware here maps each to a status and the design's shape
`{"error": {"code": ..., "message": ..., ...details}}`. It also counts every request
by route and status, because it is the one layer that sees the final status of both
answers and failures. It must never swallow an error silently: anything unexpected is
logged with its traceback and answered 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import Counter

from registry.errors import (
    ConfigValueError,
    ConflictError,
    DuplicateIdError,
    InvalidTransition,
    NotFoundError,
    Problem,
    ReadOnlyError,
    ValidationError,
)
from resolver.metrics import HTTP_REQUESTS

log = logging.getLogger("pilotfish.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorBody = tuple[int, str, str, dict[str, Any]]


class ApiError(Exception):
    """An HTTP-level refusal with its status, code and details."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details


def bad_request(field: str, message: str) -> ValidationError:
    """A request-level validation failure shaped like a registration problem."""
    return ValidationError([Problem("<request>", None, field, message)])


def _problems(problems: list[Problem]) -> list[dict[str, object]]:
    return [p.to_dict() for p in problems]


def _file_of(source: str) -> str | None:
    return source.removeprefix("file:") if source.startswith("file:") else None


def describe(exc: BaseException) -> ErrorBody | None:
    """Status, code, message and details for an error we expect; None for a bug."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code, str(exc), exc.details
    if isinstance(exc, ValidationError):
        return 400, "invalid", str(exc), {"problems": _problems(exc.problems)}
    if isinstance(exc, ConfigValueError):
        return 400, "invalid_value", str(exc), {"key": exc.key, "value_type": exc.value_type}
    if isinstance(exc, NotFoundError):
        return 404, "not_found", str(exc), {"what": exc.what, "name": exc.name}
    if isinstance(exc, ConflictError):
        return 409, "conflict", str(exc), exc.to_dict()
    if isinstance(exc, DuplicateIdError):
        details = {"id": exc.instance_id, "node": exc.node, "holder": exc.holder, "file": _file_of(exc.holder)}
        return 409, "duplicate_id", str(exc), details
    if isinstance(exc, ReadOnlyError):
        details = {"id": exc.instance_id, "source": exc.source, "file": _file_of(exc.source)}
        return 409, "read_only", str(exc), details
    if isinstance(exc, InvalidTransition):
        transition: dict[str, Any] = {"current": exc.current, "requested": exc.requested, "allowed": exc.allowed}
        return 409, "invalid_transition", str(exc), transition
    return None


def error_response(status: int, code: str, message: str, details: dict[str, Any]) -> web.Response:
    body = {"error": {"code": code, "message": message, **details}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json", headers=headers
    )


# prometheus_client's .labels() takes a lock and builds a key on every call; the
# children are cached here so that counting costs one dict lookup per request.
_children: dict[tuple[str, str, int], Counter] = {}


def _count(request: web.Request, status: int) -> None:
    info = request.match_info
    route = info.route.resource.canonical if info.route.resource is not None else "unmatched"
    key = (route, request.method, status)
    child = _children.get(key)
    if child is None:
        child = _children[key] = HTTP_REQUESTS.labels(route, request.method, str(status))
    child.inc()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        # aiohttp's own refusals (no such route, method not allowed) get our shape too.
        code = "not_found" if exc.status == 404 else exc.reason.lower().replace(" ", "_")
        response = error_response(exc.status, code, exc.reason, {})
        if exc.status == 405:
            response.headers["Allow"] = exc.headers.get("Allow", "")
    except Exception as exc:
        described = describe(exc)
        if described is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            described = (500, "internal", "internal error; see the daemon log", {})
        response = error_response(*described)
    _count(request, response.status)
    return response
