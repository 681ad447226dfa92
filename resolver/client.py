"""A small synchronous client of the daemon's HTTP API, for the CLI.

urllib rather than aiohttp: a CLI verb makes one or two requests and exits, and the
standard library starts faster than an event loop. The client turns the API's error
shape into `ApiError` and a refused connection into `Unreachable`; it never prints.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8500"


class ApiError(Exception):
    """The daemon answered with an error: its HTTP status, code, message and the whole body."""

    def __init__(self, status: int, code: str, message: str, body: Any) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.body = body
        super().__init__(f"{message} (HTTP {status}, {code})")


class Unreachable(Exception):
    """No daemon answered at the URL given."""


class ApiClient:
    def __init__(self, base_url: str = DEFAULT_URL, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, query=query)

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            exc.close()
            try:
                parsed = json.loads(raw)
                error = parsed["error"]
                raise ApiError(exc.code, str(error.get("code")), str(error.get("message")), parsed) from None
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ApiError(exc.code, "http", raw.decode(errors="replace")[:200] or exc.reason, None) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"no pilotfish daemon at {self.base_url}: {reason}") from None
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise Unreachable(f"{self.base_url} answered, but not as a pilotfish daemon (not JSON)") from None


def quote(segment: str) -> str:
    """One path segment, safe to put into a URL (ids may hold ':' or '@')."""
    return urllib.parse.quote(segment, safe="")
