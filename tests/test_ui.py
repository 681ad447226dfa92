"""The status page without a browser: its HTML, its escaping, its headers, its bounds.

Pages are fetched over real HTTP from the API harness (or a real daemon where check
output and the node monitor are needed) and read with the standard library's HTML
parser, which is how these tests see what a browser would build and run.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import threading
import time
from html.parser import HTMLParser
from typing import Any

import pytest
import yaml

import resolver.http.ui_page as ui_page
from conftest import wait_for
from daemonkit import DaemonFactory
from registry.errors import Problem
from resolver.http.ui_assets import SCRIPT, STYLE
from resolver.http.ui_catalog import INSTANCES_SHOWN
from resolver.http.ui_html import VALUE
from resolver.http.ui_node import WINDOWS_SHOWN
from resolver.http.ui_view import PAGE_SERVICES, View
from apikit import ApiServer

# Markup in every place a registrant, a checked service or an operator can put text.
# Short enough to be shown whole (escaped, it fits the page's clip of a value).
HOSTILE = """"'></code><script>alert(1)</script><img src=x onerror=alert(2)>&amp;"""
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Page(HTMLParser):
    """What a browser would make of a page: its elements in order, its text, its scripts.

    Fails on an end tag that does not close the element open last, which for our
    markup (every element closed, in order) is what "the HTML parses" means.
    """

    VOID = frozenset({"meta", "input", "br", "img", "link"})

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self.feed(markup)
        self.close()
        assert not self.open, f"never closed: {self.open}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag in self.raw:
            self.raw[tag].append("")
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> while <{self.open[-1] if self.open else None}> is open"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1] in self.raw:
            self.raw[self.open[-1]][-1] += data
        else:
            self.texts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def all(self, tag: str, **wanted: str) -> list[dict[str, str | None]]:
        found = [attrs for name, attrs in self.elements if name == tag]
        return [attrs for attrs in found if all(attrs.get(k) == v for k, v in wanted.items())]

    def services(self) -> list[str]:
        return [str(attrs["data-service"]) for attrs in self.all("tbody") if "data-service" in attrs]


def fetch(base: str, path: str) -> tuple[int, dict[str, str], str]:
    """GET without following redirects: status, headers, body."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def test_every_catalog_string_is_escaped_and_shown_as_text(start_daemon: DaemonFactory) -> None:
    web = {"name": "web", "port": 8080, "protocol": "http", "version": HOSTILE, "meta": {"note": HOSTILE},
           "checks": [{"id": "web-ttl", "ttl": "30s"}]}
    evil = {"name": "evil", "port": 81, "<script>alert('key')</script>": 1}
    daemon = start_daemon(files={"web.yaml": yaml.safe_dump(web), "evil.yaml": yaml.safe_dump(evil)})
    assert daemon.write("PUT", "/v1/checks/web-ttl/fail", {"note": HOSTILE}).status == 200
    assert daemon.write("PUT", "/v1/services/web-8080/maintenance", {"enable": True, "reason": HOSTILE}).status == 200
    rule = {"a": "aa", "b": "bb", "type": "port", "reason": HOSTILE}
    assert daemon.write("POST", "/v1/conflicts", rule).status == 201
    assert daemon.write("PUT", "/v1/node/maintenance", {"enable": True, "reason": HOSTILE}).status == 200
    # A scheme a link must never carry, and a path that would end a comment in one.
    sneaky = {"name": "sneaky", "port": 82, "protocol": "javascript", "endpoint_path": "/%0aalert(1)"}
    assert daemon.write("POST", "/v1/services", sneaky).status == 201

    def page() -> str | None:
        body = daemon.text("/ui/")
        return body if "sneaky" in body and "web-ttl" in body else None

    markup = wait_for(page, 10, "the page to show every change")
    parsed = Page(markup)
    # One script, ours; no element or attribute the catalog could have made.
    assert parsed.raw["script"] == [SCRIPT]
    assert [tag for tag, _ in parsed.elements if tag in {"script", "img", "iframe", "object"}] == ["script"]
    assert not [(tag, name) for tag, attrs in parsed.elements for name in attrs if name.startswith("on")]
    hrefs = [str(attrs["href"]) for _, attrs in parsed.elements if "href" in attrs]
    assert hrefs and all(href.startswith(("http://", "#", "?", "./", "../v1/")) for href in hrefs), hrefs
    assert "javascript:" in parsed.text  # shown, as text only
    # Each hostile string is on the page as the text it is: the meta value, the
    # version, the check's output, the node's maintenance reason (on the node and on
    # the instance it drains), the other instance's own reason, the rule's reason;
    # and again inside the events' details.
    assert parsed.text.count(HOSTILE) >= 7, parsed.text
    assert "<script>alert('key')</script>" in parsed.text  # the rejected file's unknown key
    assert "<img" not in markup and "<script>alert" not in markup
    fragment = Page(daemon.text("/ui/fragment"))
    assert fragment.raw["script"] == [] and fragment.text.count(HOSTILE) >= 7


def test_headers_allow_only_the_page_s_own_script_and_style(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", "name: web\nport: 8080\n")
    for path in ("/ui/", "/ui/fragment", "/ui/?filter=web"):
        status, headers, body = fetch(api.base, path)
        assert status == 200, path
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert int(headers["X-Pilotfish-Index"]) == api.catalog.current.index
        assert SECURITY_HEADERS.items() <= headers.items(), path
        policy = {part.split()[0]: part.split()[1:] for part in headers["Content-Security-Policy"].split("; ")}
        assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
        assert policy["script-src"] == [csp_hash(SCRIPT)] and policy["style-src"] == [csp_hash(STYLE)]
        assert "unsafe" not in headers["Content-Security-Policy"]
    # The hashes are of what the page really carries.
    page = Page(fetch(api.base, "/ui/")[2])
    assert page.raw["script"] == [SCRIPT] and page.raw["style"] == [STYLE]
    assert not [attrs for _, attrs in page.elements if "style" in attrs]


def test_ui_redirects_to_the_page_with_its_query_and_nothing_else(api: ApiServer) -> None:
    status, headers, _ = fetch(api.base, "/ui?filter=a%0D%0AX-Evil:%201")
    assert status == 308
    assert headers["Location"] == "ui/?filter=a%0D%0AX-Evil:%201"
    assert "X-Evil" not in headers and headers["X-Frame-Options"] == "DENY"
    assert fetch(api.base, "/ui")[1]["Location"] == "ui/"


def test_the_page_needs_no_token(api_with_token: ApiServer) -> None:
    assert api_with_token.get("/ui/").status == 200
    assert api_with_token.get("/ui/fragment").status == 200
    assert "s3cret-token" not in api_with_token.get("/ui/").text


def test_everything_is_on_the_page_without_its_script(api: ApiServer) -> None:
    web = "name: web\nport: 8080\nprotocol: http\ntags: [blue]\nmeta: {team: edge}\nversion: '2.4'\n"
    api.apply_yaml("/srv/web.yaml", web)
    api.post("/v1/services", {"name": "db", "port": 5432, "protocol": "postgres"})
    problem = Problem("/srv/bad.yaml", 3, "services[0].port", "must be an integer")
    api.call(lambda: api.catalog.reject_file("/srv/bad.yaml", [problem]))
    page = Page(api.get("/ui/").text)
    text = page.text
    for shown in ["node1", "web-8080", "db-5432", "passing", "http://10.0.0.1:8080", "postgres://10.0.0.1:5432",
                  "blue", "team=edge", "2.4", "file web.yaml", "api",
                  "/srv/bad.yaml", "line 3", "services[0].port", "must be an integer",
                  "redis-stack-server", "both bind 6379", "registration", "rejection", "No resource figures"]:
        assert shown in text, shown
    assert page.services() == ["db", "web"]
    [form] = page.all("form")
    assert form["method"] == "get" and page.all("input", name="filter", type="search")


def test_the_filter_on_the_server_matches_names_and_tags(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", "name: web\nport: 8080\ntags: [blue, public]\n")
    api.apply_yaml("/srv/db.yaml", "name: db\nport: 5432\n")
    api.apply_yaml("/srv/cache.yaml", "name: cache\nport: 6379\ntags: [memory]\n")
    assert Page(api.get("/ui/").text).services() == ["cache", "db", "web"]
    assert Page(api.get("/ui/?filter=BLUE").text).services() == ["web"]
    assert Page(api.get("/ui/?filter=+ca+").text).services() == ["cache"]
    assert Page(api.get("/ui/fragment?filter=b").text).services() == ["db", "web"]
    empty = Page(api.get("/ui/?filter=zzz").text)
    assert empty.services() == [] and "No service matches." in empty.text
    # The words the script narrows on are the ones the server matched.
    assert Page(api.get("/ui/").text).all("tbody", **{"data-service": "web"})[0]["data-search"] == "web blue public"
    assert Page(api.get("/ui/?filter=Blue").text).all("input", name="filter")[0]["value"] == "blue"


@pytest.mark.parametrize("query, field", [
    ("page=0", "page"), ("page=-1", "page"), ("page=x", "page"), ("page=" + "9" * 5000, "page"),
    ("filter=" + "a" * 101, "filter"),
])
def test_bad_parameters_are_400(api: ApiServer, query: str, field: str) -> None:
    for path in ("/ui/", "/ui/fragment"):
        reply = api.get(f"{path}?{query}")
        assert reply.status == 400 and reply.error["problems"][0]["field"] == field
    assert api.get("/ui/fragment?index=1&wait=soon").error["problems"][0]["field"] == "wait"


def test_the_fragment_waits_for_the_next_change(api: ApiServer) -> None:
    index = api.catalog.current.index
    answers: list[Any] = []
    path = f"/ui/fragment?index={index}&wait=30s"
    waiting = threading.Thread(target=lambda: answers.append(api.get(path, timeout=60)))
    waiting.start()
    wait_for(lambda: api.get("/v1/status").body["http"]["blocking_queries"] == 1, 10, "the fragment to park")
    api.apply_yaml("/srv/late.yaml", "name: late\nport: 9000\n")
    waiting.join(30)
    [reply] = answers
    assert reply.index > index and Page(reply.text).services() == ["late"]
    # No change: it answers when the wait runs out, with the index it was given.
    started = time.monotonic()
    quiet = api.get(f"/ui/fragment?index={reply.index}&wait=300ms")
    assert quiet.index == reply.index and time.monotonic() - started >= 0.2


def test_a_big_catalog_is_paged_and_instances_are_capped(api: ApiServer) -> None:
    many = "services:\n" + "".join(f"  - {{name: svc-{n:03}, port: {1000 + n}}}\n" for n in range(120))
    api.apply_yaml("/srv/many.yaml", many)
    big = "services:\n" + "".join(f"  - {{name: big, id: big-{n}, port: {5000 + n}}}\n" for n in range(25))
    api.apply_yaml("/srv/big.yaml", big)
    first = Page(api.get("/ui/").text)
    assert first.services()[0] == "big" and len(first.services()) == PAGE_SERVICES
    assert "Services 1–50 of 121." in first.text
    assert first.all("a", rel="next")[0]["href"] == "?page=2"
    rows = [attrs for attrs in first.all("tr") if "data-status" in attrs]
    assert len(rows) == INSTANCES_SHOWN + PAGE_SERVICES - 1
    assert "and 15 more instances" in first.text and first.all("a", href="../v1/services/big?status=any")
    last = Page(api.get("/ui/?page=3").text)
    assert len(last.services()) == 21 and last.all("a", rel="prev")[0]["href"] == "?page=2"
    assert not last.all("a", rel="next")
    # Past the last page is the last page (the catalog may have shrunk under a reader).
    beyond = Page(api.get("/ui/?page=99").text)
    assert beyond.services() == last.services() and beyond.all("main")[0]["data-page"] == "3"
    filtered = Page(api.get("/ui/?filter=svc-11").text)
    assert filtered.services() == [f"svc-11{n}" for n in range(10)] and not filtered.all("nav")


def test_a_hostile_catalog_still_makes_a_bounded_page(api: ApiServer) -> None:
    quotes = '"' * 500
    tags = [f"{n:02}" + "t" * 61 for n in range(20)]
    meta = {f"key{n}": quotes for n in range(10)}
    for n in range(PAGE_SERVICES):
        for i in range(INSTANCES_SHOWN + 1):
            body = {"name": f"s{n:02}", "id": f"s{n:02}-{i}", "port": 1000 + n * 100 + i,
                    "tags": tags, "meta": meta, "version": quotes}
            assert api.post("/v1/services", body).status == 201
    markup = api.get("/ui/").text
    # Over a megabyte of quotes per service went in; the page stays within its bound.
    assert len(markup.encode()) < 3_000_000
    page = Page(markup)
    assert len(page.services()) == PAGE_SERVICES
    cell = f"key0={'&quot;' * ((VALUE - 1) // 6)}…"
    assert markup.count(cell) == PAGE_SERVICES * INSTANCES_SHOWN
    assert "+8 more tags" in page.text and "+4 more" in page.text


def test_pages_are_kept_per_snapshot_within_a_byte_budget(api: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    api.apply_yaml("/srv/web.yaml", "name: web\nport: 8080\n")
    first = api.get("/ui/").text
    snapshot = api.catalog.current
    kept, served = snapshot.memo[("ui", "catalog", View())]
    assert served == View()
    assert kept.decode() in first and api.get("/ui/fragment").text.endswith(kept.decode())
    monkeypatch.setattr(ui_page, "MEMO_BYTES", len(kept) * 3)
    pages = {words: Page(api.get(f"/ui/?filter={words}").text) for words in ("w", "we", "web", "e", "eb", "b", "x")}
    assert api.catalog.current is snapshot
    catalogs = [value[0] for key, value in snapshot.memo.items() if key[:2] == ("ui", "catalog")]
    assert 1 < len(catalogs) < 8 and sum(map(len, catalogs)) <= len(kept) * 3
    assert snapshot.memo[("ui", "memo-bytes")] <= len(kept) * 3
    # Past the budget pages are still right, only made per request.
    assert all(page.services() == ([] if words == "x" else ["web"]) for words, page in pages.items())


def test_maintenance_windows_are_announced_on_the_page_and_capped(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", "name: web\nport: 8080\n")
    for hour in range(1, WINDOWS_SHOWN + 3):
        body = {"enable": True, "kind": "planned", "start": f"+{hour}h", "end": f"+{hour}h30m", "reason": f"patch {hour}"}
        assert api.put("/v1/node/maintenance", body).status == 200
    assert api.put("/v1/services/web-8080/maintenance", {"enable": True, "kind": "draining", "reason": "reshard"}).status == 200
    page = Page(api.get("/ui/").text)
    assert "Maintenance windows" in page.text and "patch 1" in page.text and "draining of instance web-8080" in page.text
    assert "and 3 more: see /v1/maintenance" in page.text
    assert [attrs["class"] for _, attrs in page.elements if attrs.get("class") == "badge s-planned"]
