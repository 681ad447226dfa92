"""The status page: `/ui/` for people, `/ui/fragment` for its script, `/ui` sends to `/ui/`.

Read-only like every GET, so it never asks for the token, and it shows nothing an
anonymous reader of the JSON API could not read already (resolver/http/ui_page.py
and ui_catalog.py say what they leave out). The page itself answers at once from the current
snapshot; the fragment is the live part of the page, and takes `?index=&wait=` as
every JSON read does, so the page's script refreshes with one parked request that
the catalog's next change wakes (and that counts against the guard's cap on waiting
requests like any other). Every answer carries the security headers of
resolver/http/ui_assets.py.
"""

from __future__ import annotations

from aiohttp import web

from resolver.http.appkeys import STATE
from resolver.http.errors import bad_request
from resolver.http.reads import INDEX_HEADER, read_snapshot
from resolver.http.ui_assets import SECURITY_HEADERS
from resolver.http.ui_page import render_fragment, render_page
from resolver.http.ui_view import FILTER_MAX, View

HTML = "text/html; charset=utf-8"


def parse_view(request: web.Request) -> View:
    """`?filter=` (trimmed, lower-cased: names and tags are) and `?page=` (1 or more)."""
    words = request.query.get("filter", "")
    if len(words) > FILTER_MAX:
        raise bad_request("filter", f"at most {FILTER_MAX} characters")
    raw = request.query.get("page", "1")
    try:
        number = int(raw)
    except ValueError:
        raise bad_request("page", f"{raw!r} is not an integer") from None
    if number < 1:
        raise bad_request("page", "must be 1 or more")
    return View(words.strip().lower(), number)


def _html(body: bytes, index: int) -> web.Response:
    headers = {**SECURITY_HEADERS, INDEX_HEADER: str(index), "Content-Type": HTML}
    return web.Response(body=body, headers=headers)


async def status_page(request: web.Request) -> web.Response:
    """The whole page, at once: only its fragment takes part in blocking queries."""
    view = parse_view(request)
    state = request.app[STATE]
    snapshot = state.catalog.current
    return _html(render_page(state, snapshot, view), snapshot.index)


async def fragment(request: web.Request) -> web.Response:
    view = parse_view(request)
    snapshot = await read_snapshot(request)
    body, _ = render_fragment(request.app[STATE], snapshot, view)
    return _html(body, snapshot.index)


async def to_status_page(request: web.Request) -> web.Response:
    # Relative, so that it holds behind a proxy serving the daemon under a prefix.
    # Only the query string is carried over, as sent (still percent-encoded, so an
    # encoded line break stays encoded), so it can lead nowhere but the page.
    query = request.rel_url.raw_query_string
    location = "ui/" + (f"?{query}" if query else "")
    headers = {**SECURITY_HEADERS, "Location": location, INDEX_HEADER: str(request.app[STATE].catalog.current.index)}
    return web.Response(status=308, headers=headers)


def add_ui_routes(app: web.Application) -> None:
    app.router.add_get("/ui", to_status_page)
    app.router.add_get("/ui/", status_page)
    app.router.add_get("/ui/fragment", fragment)
