"""Bearer-token enforcement for writes.

Reads stay open (the API is a lookup service for local processes); every method that
changes something needs `Authorization: Bearer <token>` once `http.token` is set. The
comparison is constant-time so that the token cannot be guessed byte by byte from
response timings. This module never logs a token, given or expected.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from resolver.http.appkeys import STATE
from resolver.http.errors import ApiError

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def authorised(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def require_token(request: web.Request) -> None:
    """Refuse a write without the configured bearer token (401)."""
    token = request.app[STATE].config.http.token
    if token and not authorised(request.headers.get("Authorization", ""), token):
        raise ApiError(401, "unauthorized", "this write needs Authorization: Bearer <token>")
