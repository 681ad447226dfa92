"""A memoised read's answer: its JSON body, a strong ETag, and a gzip twin made once.

Pollers that cannot block (a cron job, a load balancer's template loop) ask the same
read again and again; with `If-None-Match` they are answered 304 with no body, and
with `Accept-Encoding: gzip` a 20 KB listing (56 instances) crosses as 1.1 KB. Both cost a
header lookup, never a rebuild: a `Representation` is built once per snapshot and
key (resolver/http/reads.py memoises it under the JSON memo's bound) and its gzip
body is compressed at most once, on the first request that accepts it.

The ETag is a digest of the body itself, not of the snapshot index: a strong ETag
must change whenever the body does, and only then. The index moves on any change
in the catalog and starts again at 1 when the daemon restarts, so a validator built
from it would either miss (every unrelated change costs pollers a full body) or lie
(a 304 after a restart for a body that changed). The gzip body is another
representation and has its own ETag; every answer says `Vary: Accept-Encoding`.

A request with neither header is the plain lookup of the hot path: one test of two
headers, then the ready body and headers, exactly as before.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from dataclasses import dataclass

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

INDEX_HEADER = "X-Pilotfish-Index"
JSON = "application/json"
# Smaller bodies go as they are: they fit one packet, and gzip's own 18 bytes of
# framing would win little or lose.
GZIP_MIN_BYTES = 1024
GZIP_LEVEL = 6  # zlib's default: a 25 KB listing in well under a millisecond, once per snapshot
GZIP_SUFFIX = "-gz"
# Spelled out: aiohttp's constants would send `Etag`.
ETAG = "ETag"
VARY = "Vary"
CONTENT_ENCODING = "Content-Encoding"


@dataclass(frozen=True, slots=True)
class Encoded:
    """One encoding of an answer: its body, the 200's headers, and the 304's.

    The 304 carries what the 200 would have, less the body and its type (RFC 9110
    15.4.5); both header maps are built once, so that neither answer builds any.
    """

    body: bytes
    headers: CIMultiDict[str]
    unchanged: CIMultiDict[str]

    @classmethod
    def of(cls, body: bytes, headers: CIMultiDict[str]) -> Encoded:
        kept = (ETAG, VARY, INDEX_HEADER, CONTENT_ENCODING)
        return cls(body, headers, CIMultiDict((name, headers[name]) for name in kept if name in headers))


class Representation:
    """The answer to one read in one snapshot, plain and (on demand) gzipped."""

    __slots__ = ("plain", "_gzipped")

    def __init__(self, body: bytes, index: int) -> None:
        digest = hashlib.blake2b(body, digest_size=15).digest()
        etag = f'"{base64.urlsafe_b64encode(digest).decode()}"'
        headers = CIMultiDict({"Content-Type": JSON, INDEX_HEADER: str(index), ETAG: etag, VARY: "Accept-Encoding"})
        self.plain = Encoded.of(body, headers)
        self._gzipped: Encoded | None = None

    def respond(self, request: web.Request) -> web.Response:
        headers = request.headers
        if hdrs.IF_NONE_MATCH not in headers and hdrs.ACCEPT_ENCODING not in headers:
            return web.Response(body=self.plain.body, headers=self.plain.headers)
        return self._negotiated(headers)

    def _negotiated(self, asked: CIMultiDictProxy[str]) -> web.Response:
        plain = self.plain
        take_gzip = len(plain.body) >= GZIP_MIN_BYTES and accepts_gzip(asked.get(hdrs.ACCEPT_ENCODING, ""))
        encoded = self.gzipped() if take_gzip else plain
        tags = asked.get(hdrs.IF_NONE_MATCH)
        if tags is not None and none_match(tags, encoded.headers[ETAG]):
            return web.Response(status=304, headers=encoded.unchanged)
        return web.Response(body=encoded.body, headers=encoded.headers)

    def gzipped(self) -> Encoded:
        """The gzip encoding, compressed on first use (mtime 0: the same bytes every time), with its own ETag."""
        if self._gzipped is None:
            headers = self.plain.headers.copy()
            headers[CONTENT_ENCODING] = "gzip"
            headers[ETAG] = headers[ETAG][:-1] + GZIP_SUFFIX + '"'
            self._gzipped = Encoded.of(gzip.compress(self.plain.body, GZIP_LEVEL, mtime=0), headers)
        return self._gzipped


@functools.lru_cache(maxsize=128)
def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding value takes gzip (RFC 9110 12.5.3): named, as x-gzip or by `*`, with q > 0.

    Clients send the same few values over and over; the cache is bounded, so varied
    values cost a parse each and nothing more.
    """
    named: float | None = None
    anything: float | None = None
    for item in header.split(","):
        coding, _, parameters = item.partition(";")
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            named = max(named or 0.0, _quality(parameters))
        elif coding == "*":
            anything = _quality(parameters)
    if named is not None:
        return named > 0
    return anything is not None and anything > 0


def _quality(parameters: str) -> float:
    """The q of `;q=0.5`, 1 when absent; a q that does not read refuses the coding."""
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 0.0
            return quality if 0 <= quality <= 1 else 0.0
    return 1.0


def none_match(header: str, etag: str) -> bool:
    """Whether If-None-Match names `etag` (weak comparison, RFC 9110 13.1.2) or is `*`."""
    if header.strip() == "*":
        return True
    # Our tags hold no comma, so a list split on commas finds them whole.
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))
