"""HTTP/1.0 framing for the client: requests out as bytes, responses in from bytes.

Both transports (blocking sockets in sync.py, asyncio streams in aio.py) send what
`encode_request` builds and feed what they read to `ResponseReader`, so the two
flavours cannot disagree about HTTP, and each transport can hold its own deadline
over the whole exchange (urllib bounds each socket read, not the response: a server
dripping one header byte a second would hold it for days). HTTP/1.0 keeps the
framing small: no keep-alive, no chunked bodies; a body ends at Content-Length or at
the end of the connection. Every size is bounded, so whatever squats on the daemon's
port cannot make the client buffer without limit.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Mapping

MAX_HEADER_BYTES = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "pilotfish-client"


class MalformedResponse(Exception):
    """What came back is not an HTTP response we can read."""


@dataclass(frozen=True, slots=True)
class BaseUrl:
    """Where the daemon's API is: `http://127.0.0.1:8500`, maybe behind a path prefix."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, text: str) -> BaseUrl:
        parts = urllib.parse.urlsplit(text.strip())
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError(f"daemon URL {text!r}: the scheme must be http or https")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ValueError(f"daemon URL {text!r}: the port is not a number from 1 to 65535") from None
        if not parts.hostname or not parts.hostname.isascii():
            raise ValueError(f"daemon URL {text!r} names no host (or not in ASCII)")
        if parts.query or parts.fragment or parts.username:
            raise ValueError(f"daemon URL {text!r}: no query, fragment or user info")
        return cls(parts.scheme, parts.hostname, port, urllib.parse.quote(parts.path.rstrip("/"), safe="/%"))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    @property
    def host_is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.prefix}"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    reason: str
    headers: Mapping[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying context for every https exchange: building one reads the CA store."""
    return ssl.create_default_context()


def encode_request(base: BaseUrl, method: str, target: str, body: bytes | None, token: str | None) -> bytes:
    """The request's bytes; `target` is path and query, already quoted."""
    lines = [
        f"{method} {base.prefix}{target} HTTP/1.0",
        f"Host: {base.host_header}",
        "Accept: application/json",
        f"User-Agent: {USER_AGENT}",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


class ResponseReader:
    """Collects a response from the bytes of one connection, within `max_body`.

    `feed` says when the response is complete (Content-Length reached), so a
    transport can stop reading before the server closes; `finish` builds the
    response at that point or at the end of the connection.
    """

    def __init__(self, max_body: int) -> None:
        self._max_body = max_body
        self._buffer = bytearray()
        self._head: tuple[int, str, dict[str, str]] | None = None
        self._length: int | None = None

    def feed(self, data: bytes) -> bool:
        self._buffer += data
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    raise MalformedResponse(f"response headers longer than {MAX_HEADER_BYTES} bytes")
                return False
            self._head = _parse_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
            self._length = _content_length(self._head[2], self._max_body)
        if len(self._buffer) > self._max_body:
            raise MalformedResponse(f"response body larger than {self._max_body} bytes")
        return self._length is not None and len(self._buffer) >= self._length

    def finish(self) -> HttpResponse:
        """The response; raises if the connection ended before it was whole."""
        if self._head is None:
            raise MalformedResponse("the connection closed before the response headers ended")
        status, reason, headers = self._head
        if self._length is not None:
            if len(self._buffer) < self._length:
                raise MalformedResponse(f"the body ended after {len(self._buffer)} of {self._length} bytes")
            del self._buffer[self._length :]
        return HttpResponse(status, reason, headers, bytes(self._buffer))


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise MalformedResponse(f"not an HTTP response: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise MalformedResponse(f"malformed response header {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return int(code), reason, headers


def _content_length(headers: dict[str, str], max_body: int) -> int | None:
    raw = headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise MalformedResponse(f"Content-Length {raw[:40]!r} is not a number")
    length = int(raw)
    if length > max_body:
        raise MalformedResponse(f"response body of {length} bytes is larger than {max_body}")
    return length
