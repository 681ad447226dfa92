"""Conditional and compressed reads of the service lookups: ETag/304, gzip, Vary.

Pollers that cannot block send If-None-Match and get 304 without a body; clients
that take gzip get the memoised gzip body. A strong ETag changes exactly when the
body does.
"""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message

import pytest

from apikit import ApiServer
from resolver.http.reads import MEMO_LIMIT
from resolver.http.representation import GZIP_MIN_BYTES, Representation, accepts_gzip, none_match

# Enough instances for a listing well over GZIP_MIN_BYTES.
MANY = "services:\n" + "".join(
    f"  - {{name: web, id: web-{i}, port: {8000 + i}, protocol: http, tags: [blue], meta: {{team: edge}}}}\n"
    for i in range(20)
)


@dataclass
class Raw:
    status: int
    headers: Message  # looked up without regard to case
    body: bytes


def fetch(api: ApiServer, path: str, **headers: str) -> Raw:
    """A GET with these headers (underscores read as dashes), its body as sent."""
    request = urllib.request.Request(api.base + path, headers={k.replace("_", "-"): v for k, v in headers.items()})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Raw(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Raw(exc.code, exc.headers, exc.read())


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        ("gzip", True), ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.8, *;q=0.1", True), ("GZIP", True),
        ("x-gzip", True), ("*", True), ("identity", False), ("", False), ("gzip;q=0", False), ("gzip; q=0.000", False),
        ("*;q=0", False), ("deflate, *;q=0", False), ("gzip;q=0, *", False), ("gzip;q=nope", False), ("gzip;q=2", False),
        ("br, gzip ;q=0.5", True),
    ],
)
def test_accept_encoding_is_read_with_its_qualities(header: str, gzip_ok: bool) -> None:
    assert accepts_gzip(header) is gzip_ok


@pytest.mark.parametrize(
    ("header", "matches"),
    [('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), (' "x" ,W/"abc" ', True), ("*", True),
     ('"abcd"', False), ('"ab"', False), ("abc", False), ("", False)],
)
def test_if_none_match_compares_weakly(header: str, matches: bool) -> None:
    assert none_match(header, '"abc"') is matches


def test_an_etag_poller_gets_304_until_its_body_changes(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", "name: web\nport: 8080\n")
    api.apply_yaml("/srv/db.yaml", "name: db\nport: 5432\n")
    first = fetch(api, "/v1/services/web")
    etag = first.headers["ETag"]
    assert first.status == 200 and etag.startswith('"') and first.headers["Vary"] == "Accept-Encoding"
    for tags in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = fetch(api, "/v1/services/web", If_None_Match=tags)
        assert again.status == 304 and again.body == b"", tags
        assert again.headers["ETag"] == etag and again.headers["Vary"] == "Accept-Encoding"
        assert int(again.headers["X-Pilotfish-Index"]) == api.catalog.current.index
    # A change elsewhere in the catalog moves the index, not this body: still 304.
    api.apply_yaml("/srv/db.yaml", "name: db\nport: 5433\n")
    unrelated = fetch(api, "/v1/services/web", If_None_Match=etag)
    assert unrelated.status == 304 and int(unrelated.headers["X-Pilotfish-Index"]) == api.catalog.current.index
    # A change to the body changes the ETag: the poller gets the new body.
    api.apply_yaml("/srv/web.yaml", "name: web\nport: 8081\n")
    changed = fetch(api, "/v1/services/web", If_None_Match=etag)
    assert changed.status == 200 and changed.headers["ETag"] != etag
    assert json.loads(changed.body)[0]["port"] == 8081
    # Every filtered lookup and the listing do the same.
    for path in ("/v1/services", "/v1/services/web?tag=x&status=any", "/v1/services?meta[team]=edge"):
        answer = fetch(api, path)
        assert fetch(api, path, If_None_Match=answer.headers["ETag"]).status == 304, path


def test_gzip_when_asked_with_its_own_etag(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", MANY)
    plain = fetch(api, "/v1/services")
    assert len(plain.body) > GZIP_MIN_BYTES and "Content-Encoding" not in plain.headers
    packed = fetch(api, "/v1/services", Accept_Encoding="gzip, deflate")
    assert packed.headers["Content-Encoding"] == "gzip" and packed.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(packed.body) == plain.body and len(packed.body) < len(plain.body) / 4
    assert int(packed.headers["Content-Length"]) == len(packed.body)
    # Two representations, two strong ETags; each is only good for its own encoding.
    assert packed.headers["ETag"] != plain.headers["ETag"]
    revalidated = fetch(api, "/v1/services", Accept_Encoding="gzip", If_None_Match=packed.headers["ETag"])
    assert revalidated.status == 304 and revalidated.headers["Content-Encoding"] == "gzip"
    assert fetch(api, "/v1/services", If_None_Match=packed.headers["ETag"]).status == 200
    assert fetch(api, "/v1/services", Accept_Encoding="gzip", If_None_Match=plain.headers["ETag"]).status == 200
    # Refused by its quality, or not offered: the plain body.
    assert fetch(api, "/v1/services", Accept_Encoding="gzip;q=0, identity").body == plain.body
    assert fetch(api, "/v1/services/web?tag=blue", Accept_Encoding="gzip").headers["Content-Encoding"] == "gzip"


def test_a_small_body_goes_plain_even_to_gzip_clients(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", "name: web\nport: 8080\n")
    small = fetch(api, "/v1/services/web", Accept_Encoding="gzip")
    assert len(small.body) < GZIP_MIN_BYTES and "Content-Encoding" not in small.headers
    assert small.headers["Vary"] == "Accept-Encoding" and json.loads(small.body)[0]["port"] == 8080


def test_the_gzip_body_is_compressed_once_per_snapshot_and_bounded_with_the_json(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", MANY)
    fetch(api, "/v1/services/web", Accept_Encoding="gzip")
    cached = api.catalog.current.memo[("http", "instances", "web")]
    assert isinstance(cached, Representation)
    first = cached.gzipped().body
    assert fetch(api, "/v1/services/web", Accept_Encoding="gzip").body == first
    assert cached.gzipped().body is first
    # Arbitrary query strings pin no more than the JSON memo's bound, gzip bodies included.
    for n in range(MEMO_LIMIT + 100):
        fetch(api, f"/v1/services/web?tag=t{n}", Accept_Encoding="gzip")
    assert len(api.catalog.current.memo) <= MEMO_LIMIT + 10
