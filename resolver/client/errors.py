"""What the client raises, as types with fields.

An application decides by type: `DaemonUnavailable` means "nothing answered, not even
a fallback" (retry later or fail), `NoInstance` means "the lookup worked and found
nobody" (a deployment problem), `ApiError` means "the daemon refused the request"
(a bug in the caller). The message is built from the fields, never the other way.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Root of everything the client raises on purpose."""


class DaemonUnavailable(ClientError):
    """No daemon answered at `url`, and no fallback had an answer either.

    `reason` is why the daemon did not answer (refused, timed out, not a pilotfish
    daemon, circuit breaker open); `tried` says, per fallback, why it had nothing.
    """

    def __init__(self, url: str, reason: str, name: str | None = None, tried: tuple[str, ...] = ()) -> None:
        self.url = url
        self.reason = reason
        self.name = name
        self.tried = tried
        text = f"no pilotfish daemon at {url}: {reason}"
        if name is not None:
            text += f" (looking up {name!r}"
            text += f"; {'; '.join(tried)})" if tried else ")"
        super().__init__(text)


class NoInstance(ClientError):
    """`name` has no instance matching the lookup (unknown service, or none passing)."""

    def __init__(self, name: str, reason: str, source: str) -> None:
        self.name = name
        self.reason = reason
        self.source = source
        super().__init__(f"no instance of {name!r}: {reason}")


class ApiError(ClientError):
    """The daemon answered with an error: its HTTP status, code, message and the whole body."""

    def __init__(self, status: int, code: str, message: str, body: Any) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.body = body
        super().__init__(f"{message} (HTTP {status}, {code})")
