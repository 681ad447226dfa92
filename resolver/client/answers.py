"""Reading an HTTP reply: a daemon's answer, or no answer at all.

The line matters because only "no answer" moves the client down its fallback chain
and counts against the circuit breaker. A reply is the daemon's answer when it is
JSON and carries `X-Pilotfish-Index` (every read of pilotfish does, refusals
included) and is not a server error. A proxy's 502, an HTML page, or a bare 500 are
no answer: whatever is at the address is not serving lookups. A pilotfish refusal
(400, 404, 409, 503 `no_instance`) is an answer the caller must hear.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from resolver.client.errors import ApiError
from resolver.client.http_wire import HttpResponse
from resolver.client.steps import Failure, Reply

INDEX_HEADER = "X-Pilotfish-Index"
NOT_PILOTFISH = "it answered, but not as a pilotfish daemon"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any  # the decoded JSON
    index: int
    code: str | None  # the error code of a refusal, else None


def classify(reply: Reply) -> Answer | Failure:
    if isinstance(reply, Failure):
        return reply
    if not isinstance(reply, HttpResponse):
        return Failure(f"an HTTP call got {type(reply).__name__} back")
    try:
        body = json.loads(reply.body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than any answer of ours
        return Failure(f"{NOT_PILOTFISH} (HTTP {reply.status}, not JSON)")
    raw_index = reply.header(INDEX_HEADER) or ""
    if not raw_index.isdigit():
        return Failure(f"{NOT_PILOTFISH} (HTTP {reply.status} without {INDEX_HEADER})")
    code = error_code(body)
    if reply.status >= 500 and not (reply.status == 503 and code == "no_instance"):
        return Failure(f"the daemon failed: HTTP {reply.status}" + (f", {code}" if code else ""))
    return Answer(reply.status, body, int(raw_index), code)


def error_code(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code")) if isinstance(error, dict) else None


def api_error(status: int, body: Any) -> ApiError:
    """The daemon's refusal as an exception; a body without the error shape still says what it can."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return ApiError(status, str(error.get("code")), str(error.get("message")), body)
    return ApiError(status, "http", json.dumps(body)[:200], None)


def raw_answer(response: HttpResponse) -> Any:
    """The JSON of a reply for callers that take whatever the API says (the CLI).

    Raises ApiError for an error status (with the API's shape, or the first 200
    characters of whatever came); returns NOT_JSON for a success that is not JSON.
    """
    try:
        body = json.loads(response.body or b"null")
    except (ValueError, RecursionError):
        if response.status >= 400:
            text = response.body.decode(errors="replace")[:200] or response.reason
            raise ApiError(response.status, "http", text, None) from None
        return NOT_JSON
    if response.status >= 400:
        raise api_error(response.status, body)
    return body


NOT_JSON = object()
