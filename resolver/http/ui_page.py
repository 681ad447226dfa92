"""The status page: a snapshot and the node's last figures in, HTML out.

What the catalog decides (services, rejected files, conflict rules, the last events:
resolver/http/ui_catalog.py) is rendered once per snapshot and view (filter and page,
ui_view.py) and kept in the snapshot's memo, as the JSON reads keep their bodies; the
node's psutil figures change between snapshots, so that small part (ui_node.py) is
rendered per request. The memo is bounded in bytes per snapshot, whatever filters
readers send. This module puts the parts together and wraps them in the document.

The page shows what an anonymous reader of the API can already read, and less: no
token (no read has it), and of a check never its argv, URL or headers. Every string
goes through resolver/http/ui_html.py, which escapes it, and is clipped, so that a big
or hostile catalog cannot make a page without bound: at most PAGE_SERVICES services
of INSTANCES_SHOWN instances each, with a note and a link to the JSON for the rest.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

from registry.events import LoggedEvent
from registry.snapshot import Snapshot
from resolver.http.routes_health import node_body
from resolver.http.ui_assets import SCRIPT, STYLE
from resolver.http.ui_catalog import (
    EVENTS_SHOWN, events_section, files_section, rules_section, services_section, summary,
)
from resolver.http.ui_html import VALUE, Html, clip, join, tag, text
from resolver.http.ui_node import Shell, node_part
from resolver.http.ui_view import FILTER_MAX, View, matching, memo, page_count
from resolver.state import VERSION, DaemonState

# Rendered pages kept per snapshot, in bytes of HTML; past it pages are rendered per request.
MEMO_BYTES = 8 * 1024 * 1024
_MEMO_USED = ("ui", "memo-bytes")


def render_fragment(state: DaemonState, snapshot: Snapshot, view: View) -> tuple[bytes, View]:
    """The live part of the page, and the view as served (the page clamped to the last one)."""
    catalog, served = catalog_part(snapshot, view, lambda: state.store.events(EVENTS_SHOWN))
    shell = Shell(VERSION, time.time() - state.started, state.bound)
    return node_part(_node_body(state, snapshot), shell) + catalog, served


def render_page(state: DaemonState, snapshot: Snapshot, view: View) -> bytes:
    live, served = render_fragment(state, snapshot, view)
    return page(snapshot.local_node, served, snapshot.index, live)


def _node_body(state: DaemonState, snapshot: Snapshot) -> Mapping[str, Any]:
    """What `GET /v1/node` answers (figures are null without a node monitor)."""
    return node_body(snapshot, state.node_monitor)


# -- the catalog part, once per snapshot and view ------------------------------------


def catalog_part(snapshot: Snapshot, view: View, events: Callable[[], Sequence[LoggedEvent]]) -> tuple[bytes, View]:
    """Services, rejected files, rules and events as HTML, and the view as served
    (the page clamped to the last one). `events` is called at most once per snapshot."""
    key = ("ui", "catalog", view)
    kept: tuple[bytes, View] | None = snapshot.memo.get(key)
    if kept is not None:
        return kept
    listed = matching(snapshot, view.filter)
    served = View(view.filter, min(view.page, page_count(len(listed))))
    body = join([
        summary(snapshot),
        services_section(snapshot, served, listed),
        files_section(snapshot.file_errors),
        rules_section(snapshot.rules),
        events_section(memo(snapshot, ("ui", "events"), lambda: tuple(events()[:EVENTS_SHOWN]))),
    ]).encode()
    used = snapshot.memo.get(_MEMO_USED, 0)
    if used + len(body) <= MEMO_BYTES:
        snapshot.memo[key] = (body, served)
        snapshot.memo[_MEMO_USED] = used + len(body)
    return body, served


# -- the page around the parts, per request -------------------------------------------


def page(node: str, view: View, index: int, fragment: bytes) -> bytes:
    """The whole document around the live part (node and catalog), for a reader without script."""
    search = tag(
        "form",
        tag("label", "Filter services ", tag("input", type="search", id="filter", name="filter", value=view.filter,
                                              maxlength=FILTER_MAX, placeholder="name or tag", autocomplete="off")),
        " ", tag("button", "Filter", type="submit"),
        method="get", action="./", role="search",
    )
    head = tag("head",
               tag("meta", charset="utf-8"),
               tag("meta", name="viewport", content="width=device-width, initial-scale=1"),
               tag("title", "pilotfish · ", clip(node, VALUE)),
               tag("style", Html(STYLE)))
    header = tag("header",
                 tag("h1", "pilotfish ", tag("code", clip(node, VALUE))),
                 tag("span", "static: reload to refresh", id="conn", class_="conn"),
                 search)
    # The fragment is bytes already (kept per snapshot), so <main> is opened and closed around it.
    main = Html(f'<main id="live" data-index="{index}" data-page="{view.page}" data-filter="{text(view.filter)}">')
    json_reads = "/v1/status, /v1/node, /v1/services, /v1/conflicts, /v1/events"
    footer = tag("footer", f"Read-only. The same data as JSON: {json_reads}.", class_="note")
    before = f"<!doctype html>\n<html lang=\"en\">{head}<body>{header}{main}"
    after = f"</main>{footer}{tag('script', Html(SCRIPT))}</body></html>"
    return before.encode() + fragment + after.encode()
