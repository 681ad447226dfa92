"""HTTP checks: one request, judged by its status code and optionally its body.

All HTTP checks share one aiohttp ClientSession (one connection pool with a
limit), created when the runner starts and closed when it stops. Redirects are
not followed: a 3xx is the answer of the checked service and is judged against
the expected list like any other status. Connections are not kept alive (as in
Consul): a pooled connection that the service closed while it restarted would
otherwise fail the next check for the wrong reason.
"""

from __future__ import annotations

import aiohttp

from registry.health.outcome import Outcome
from registry.model import CheckSpec, Status

_USER_AGENT = "pilotfish-health/0.1"
# Enough of a body to find a marker such as `"status":"ok"`; a check never buffers more.
BODY_LIMIT = 65536
TOO_MANY_REQUESTS = 429


class HttpProber:
    """Owns the shared session; `probe` is safe to call concurrently."""

    def __init__(self, connection_limit: int) -> None:
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._connection_limit, force_close=True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": _USER_AGENT},
            # The runner bounds every probe with the check's own timeout.
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def probe(self, spec: CheckSpec) -> Outcome:
        if self._session is None:
            raise RuntimeError("HttpProber.probe called before open()")
        try:
            async with self._session.request(
                spec.method,
                spec.target,
                headers=dict(spec.headers),
                allow_redirects=False,
                ssl=False if spec.tls_skip_verify else True,
            ) as response:
                status_line = f"HTTP {spec.method} {spec.target}: {response.status} {response.reason or ''}".rstrip()
                status = judge_status(response.status, spec.expected_status)
                if status is Status.PASSING and spec.body_contains is not None:
                    body = await _read_up_to(response.content, BODY_LIMIT)
                    if spec.body_contains.encode() not in body:
                        return Outcome(Status.CRITICAL, f"{status_line}; body lacks {spec.body_contains!r}")
                return Outcome(status, status_line)
        except aiohttp.ClientError as exc:
            return Outcome(Status.CRITICAL, f"HTTP {spec.method} {spec.target}: {exc}")


async def _read_up_to(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body's first `limit` bytes; `read(n)` alone returns only what has arrived so far."""
    body = bytearray()
    while len(body) < limit and (chunk := await stream.read(limit - len(body))):
        body += chunk
    return bytes(body)


def judge_status(code: int, expected: tuple[int, ...]) -> Status:
    """Expected list (default any 2xx) passes; 429 warns, as in Consul; the rest is critical."""
    if code in expected if expected else 200 <= code < 300:
        return Status.PASSING
    if code == TOO_MANY_REQUESTS:
        return Status.WARNING
    return Status.CRITICAL
