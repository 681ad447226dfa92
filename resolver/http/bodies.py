"""Request bodies: JSON decoding and the small checks every write shares.

A body that is not JSON, or not the JSON shape a route expects, is refused here with
a 400 naming the field, before any handler logic runs. Nothing here changes state.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from resolver.http.errors import ApiError, bad_request


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON (RFC 8259 has no NaN or Infinity)")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large for a number")
    return value


async def read_json(request: web.Request) -> Any:
    # aiohttp refuses bodies over client_max_size (1 MiB) with 413 before this reads.
    raw = await request.read()
    try:
        return json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        # `[[[[...` deeper than the interpreter's recursion limit: no API body nests like that.
        raise ApiError(400, "invalid_json", "request body is nested too deeply") from None


async def read_object(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_request("(body)", "must be a JSON object")
    return body


async def optional_object(request: web.Request) -> dict[str, Any]:
    """A JSON object body, or {} when the body is empty (curl -X PUT without -d)."""
    if not request.can_read_body:
        return {}
    return await read_object(request)


def required_string(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise bad_request(field, "required, a non-empty string")
    return value


def optional_string(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise bad_request(field, "must be a string")
    return value
