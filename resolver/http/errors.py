"""How errors become HTTP answers: the status, code and details of each.

Route handlers raise registry errors (or `ApiError` for what only HTTP knows: a bad
query parameter, a missing token) and never build an error response themselves;
`describe` maps each to a status and the design's shape
`{"error": {"code": ..., "message": ..., ...details}}`, and the API middleware
(resolver/http/middleware.py) is its one caller. `describe` returns None for anything
unexpected, which the middleware logs and answers 500: nothing is swallowed.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from aiohttp import web

from registry.cluster.errors import EtcdError
from registry.errors import (
    ConfigValueError,
    ConflictError,
    DuplicateIdError,
    InvalidTransition,
    NotFoundError,
    Problem,
    ReadOnlyError,
    StorageError,
    StorageFault,
    ValidationError,
    WindowLimit,
    WindowOverlap,
)

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
        return 409, "duplicate_id", str(exc), exc.to_dict()
    if isinstance(exc, ReadOnlyError):
        details = {"id": exc.instance_id, "source": str(exc.source), "file": exc.source.path or None}
        return 409, "read_only", str(exc), details
    if isinstance(exc, InvalidTransition):
        transition: dict[str, Any] = {"current": exc.current, "requested": exc.requested, "allowed": exc.allowed}
        return 409, "invalid_transition", str(exc), transition
    if isinstance(exc, WindowOverlap):
        overlap: dict[str, Any] = {"window": exc.window_id, "target": exc.target, "drain_at": exc.drain_at, "end": exc.ends}
        return 409, "window_overlap", str(exc), overlap
    if isinstance(exc, WindowLimit):
        return 409, "too_many_windows", str(exc), {"node": exc.node, "limit": exc.limit}
    if isinstance(exc, StorageError):
        # 507 Insufficient Storage is WebDAV's, and says exactly this; anything else
        # the database refuses makes the write side unavailable until an operator acts.
        status = 507 if exc.fault is StorageFault.FULL else 503
        return status, exc.fault.value, str(exc), {"file": exc.path}
    if isinstance(exc, EtcdError):
        # A fleet-wide write (fleet mode's rules and config) that etcd did not take: nothing changed.
        return 503, "cluster_unavailable", f"etcd did not take the write, nothing changed: {exc}", {}
    return None


def error_response(status: int, code: str, message: str, details: dict[str, Any]) -> web.Response:
    body = {"error": {"code": code, "message": message, **details}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json", headers=headers
    )
