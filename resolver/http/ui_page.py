"""The status page's content: a snapshot and the node's last figures in, HTML out.

What the catalog decides (services, rejected files, conflict rules, the last events)
is rendered once per snapshot and view (filter and page) and kept in the snapshot's
memo, as the JSON reads keep their bodies; the node's psutil figures change between
snapshots, so that small part is rendered per request. The memo is bounded in bytes
per snapshot, whatever filters readers send.

The page shows what an anonymous reader of the API can already read, and less: no
token (no read has it), and of a check only its id, kind, status and output, never
an exec check's argv, an HTTP check's URL or its headers (which may carry
credentials). Instances that are not discoverable are left out, as in
`GET /v1/services`. Every string goes through resolver/http/ui_html.py, which
escapes it, and is clipped, so that a big or hostile catalog cannot make a page
without bound: at most PAGE_SERVICES services of INSTANCES_SHOWN instances each,
with a note and a link to the JSON for the rest.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlencode

from registry.errors import Problem
from registry.events import LoggedEvent
from registry.model import ConflictRule, Entry, Status
from registry.snapshot import Snapshot
from resolver.http.routes_health import node_body
from resolver.http.ui_assets import SCRIPT, STYLE
from resolver.http.ui_html import Html, clip, join, tag, text
from resolver.state import VERSION, DaemonState

PAGE_SERVICES = 50
INSTANCES_SHOWN = 10
TAGS_SHOWN = 12
META_SHOWN = 6
CHECKS_SHOWN = 3
FILES_SHOWN = 50
PROBLEMS_SHOWN = 10
RULES_SHOWN = 200
EVENTS_SHOWN = 30
WINDOWS_SHOWN = 10
# A service's filter words (its name and its first tags, sorted): bounds its
# `data-search` attribute, and the server filters on the same words as the script.
SEARCH_WORDS = 50
# Clips, in characters of escaped text: names (ids, tags, keys, fields), values (meta
# values, URLs, versions, paths), prose (check output, messages, reasons, details).
# With the counts above they bound a page at about 3 MB, however hostile the catalog.
NAME = 64
VALUE = 120
PROSE = 240
FILTER_MAX = 100
# Rendered pages kept per snapshot, in bytes of HTML; past it pages are rendered per request.
MEMO_BYTES = 8 * 1024 * 1024
_MEMO_USED = ("ui", "memo-bytes")
LINKED_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True)
class View:
    """What a reader asked to see: services whose name or a tag holds `filter`, page `page`."""

    filter: str = ""
    page: int = 1

    def query(self, page: int | None = None) -> str:
        """The query string of this view (at another page when given)."""
        params: dict[str, str | int] = {"filter": self.filter} if self.filter else {}
        page = self.page if page is None else page
        if page != 1:
            params["page"] = page
        return f"?{urlencode(params)}" if params else "./"


@dataclass(frozen=True)
class Shell:
    """The daemon's facts shown beside the node's, as `GET /v1/status` has them."""

    version: str
    uptime: float
    bound: Mapping[str, Sequence[str]]


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
    services = matching(snapshot, view.filter)
    served = View(view.filter, min(view.page, _page_count(len(services))))
    body = join([
        _summary(snapshot),
        _services(snapshot, served, services),
        _files(snapshot.file_errors),
        _rules(snapshot.rules),
        _events(_memo(snapshot, ("ui", "events"), lambda: tuple(events()[:EVENTS_SHOWN]))),
    ]).encode()
    used = snapshot.memo.get(_MEMO_USED, 0)
    if used + len(body) <= MEMO_BYTES:
        snapshot.memo[key] = (body, served)
        snapshot.memo[_MEMO_USED] = used + len(body)
    return body, served


def _memo(snapshot: Snapshot, key: tuple[str, ...], build: Callable[[], Any]) -> Any:
    if key not in snapshot.memo:
        snapshot.memo[key] = build()
    return snapshot.memo[key]


# A listed service and the words a filter looks at: its name, then its tags.
Searchable = tuple[str, tuple[str, ...]]


def search_index(snapshot: Snapshot) -> tuple[Searchable, ...]:
    """Every listed service (discoverable instances, as in /v1/services) with its words."""

    def build() -> tuple[Searchable, ...]:
        out = []
        for name in snapshot.service_names():
            tags = {t for e in snapshot.entries_by_name[name] if e.instance.discoverable for t in e.instance.tags}
            out.append((name, (name, *sorted(tags)[: SEARCH_WORDS - 1])))
        return tuple(out)

    index: tuple[Searchable, ...] = _memo(snapshot, ("ui", "search"), build)
    return index


def matching(snapshot: Snapshot, words: str) -> list[Searchable]:
    """The services whose name or one of whose tags contains `words` (all for none).

    The page's script narrows by the same rule, on the `data-search` words.
    """
    return [item for item in search_index(snapshot) if not words or any(words in t for t in item[1])]


def _page_count(matches: int) -> int:
    return max(1, -(-matches // PAGE_SERVICES))


def _summary(snapshot: Snapshot) -> Html:
    counts = snapshot.counts_by_status()
    services, instances = len(search_index(snapshot)), len(snapshot.entries_by_key)
    parts: list[Html] = [text(f"{_count(services, 'service')}, {_count(instances, 'instance')}")]
    parts += [_badge(status, f"{counts[status]} {status}") for status in counts if counts[status]]
    if snapshot.file_errors:
        rejected = _count(len(snapshot.file_errors), "rejected file")
        parts.append(tag("a", rejected, href="#files", class_="badge s-critical"))
    return tag("p", join(parts, " "), id="summary")


def _head(*columns: str) -> Html:
    return tag("thead", tag("tr", [tag("th", column) for column in columns]))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _badge(state: str, words: str) -> Html:
    return tag("span", words, class_=f"badge s-{state}")


def _services(snapshot: Snapshot, view: View, names: list[Searchable]) -> Html:
    first = (view.page - 1) * PAGE_SERVICES
    shown = names[first:first + PAGE_SERVICES]
    title = tag("h2", "Services", [" matching ", tag("q", clip(view.filter, VALUE))] if view.filter else None)
    parts: list[Html] = [title]
    if not shown:
        parts.append(tag("p", "No service matches." if view.filter else "No services registered.", class_="note"))
        return tag("section", parts, id="services")
    head = _head("Instance", "Status", "URL", "Tags", "Version", "Checks", "Meta")
    parts.append(tag("table", head, [_service(snapshot, name, words) for name, words in shown]))
    pages = _page_count(len(names))
    if pages > 1:
        last = min(first + PAGE_SERVICES, len(names))
        links: list[Html] = [text(f"Services {first + 1}–{last} of {len(names)}.")]
        if view.page > 1:
            links.append(tag("a", "previous page", href=view.query(view.page - 1), rel="prev"))
        if view.page < pages:
            links.append(tag("a", "next page", href=view.query(view.page + 1), rel="next"))
        parts.append(tag("nav", join(links, " "), class_="pages"))
    return tag("section", parts, id="services")


def _service(snapshot: Snapshot, name: str, words: tuple[str, ...]) -> Html:
    entries = [e for e in snapshot.entries_by_name[name] if e.instance.discoverable]
    counts: dict[Status, int] = {}
    for entry in entries:
        counts[entry.status] = counts.get(entry.status, 0) + 1
    heading: list[Html] = [tag("code", name), text(_count(len(entries), "instance"))]
    heading += [_badge(status.value, f"{counts[status]} {status.value}") for status in Status if status in counts]
    rows = [tag("tr", tag("th", join(heading, " "), colspan=7, scope="rowgroup"))]
    rows += [_instance(snapshot, entry) for entry in entries[:INSTANCES_SHOWN]]
    if len(entries) > INSTANCES_SHOWN:
        more = f"and {len(entries) - INSTANCES_SHOWN} more instances: "
        # Relative, so that the link holds behind a proxy that serves the daemon under a prefix.
        link = tag("a", f"/v1/services/{name}?status=any", href=f"../v1/services/{name}?status=any")
        rows.append(tag("tr", tag("td", text(more), link, colspan=7, class_="note")))
    return tag("tbody", rows, class_="svc", data_search=" ".join(words), data_service=name)


def _instance(snapshot: Snapshot, entry: Entry) -> Html:
    instance = entry.instance
    source = str(instance.source)
    # A file's name says enough in the table; its path is one hover away.
    where = [f"file {source.rsplit('/', 1)[-1]}" if source.startswith("file:") else source]
    if instance.node != snapshot.local_node:
        where.insert(0, f"node {instance.node}")
    status: list[Html] = [_badge(entry.status.value, entry.status.value)]
    if entry.maintenance_reason is not None:
        status.append(tag("div", clip(entry.maintenance_reason, PROSE), class_="muted"))
    whereabouts = tag("div", clip(", ".join(where), VALUE), title=clip(source, VALUE), class_="muted")
    return tag(
        "tr",
        tag("td", tag("code", clip(instance.id, NAME), class_="nowrap"), whereabouts),
        tag("td", status),
        tag("td", _url(instance.url, instance.protocol), class_="nowrap"),
        tag("td", _limited([tag("span", clip(t, NAME), class_="tag") for t in instance.tags], TAGS_SHOWN, "tags")),
        tag("td", clip(instance.version, VALUE)),
        tag("td", _checks(entry), class_="wrap"),
        tag("td", _meta(instance.meta), class_="wrap"),
        data_status=entry.status.value,
    )


def _url(url: str, scheme: str) -> Html:
    # Only web URLs become links: a registration can name any protocol, and a link
    # must never be a `javascript:` or `data:` one.
    shown = tag("code", clip(url, VALUE))
    return tag("a", shown, href=url, rel="noreferrer") if scheme in LINKED_SCHEMES else shown


def _limited(items: list[Html], limit: int, what: str) -> Html:
    out = items[:limit]
    if len(items) > limit:
        out.append(tag("span", f"+{len(items) - limit} more {what}", class_="note"))
    return join(out, " ")


def _checks(entry: Entry) -> Html:
    kinds = {check.id: check.kind.value for check in entry.instance.checks}
    items = []
    for state in entry.checks[:CHECKS_SHOWN]:
        label = f"{state.check_id} ({kinds.get(state.check_id, 'check')})"
        output = [": ", clip(state.output, PROSE)] if state.output else None
        badge = _badge(state.status.value, state.status.value)
        items.append(tag("li", badge, " ", tag("code", clip(label, VALUE)), output))
    if len(entry.checks) > CHECKS_SHOWN:
        items.append(tag("li", f"+{len(entry.checks) - CHECKS_SHOWN} more checks", class_="note"))
    return tag("ul", items, class_="plain") if items else text("")


def _meta(meta: Mapping[str, str]) -> Html:
    pairs = sorted(meta.items())
    items = [tag("li", tag("code", clip(k, NAME), "=", clip(v, VALUE))) for k, v in pairs[:META_SHOWN]]
    if len(pairs) > META_SHOWN:
        items.append(tag("li", f"+{len(pairs) - META_SHOWN} more", class_="note"))
    return tag("ul", items, class_="plain") if items else text("")


def _files(file_errors: Mapping[str, tuple[Problem, ...]]) -> Html:
    parts: list[Html] = [tag("h2", f"Rejected files ({len(file_errors)})")]
    if not file_errors:
        parts.append(tag("p", "No rejected files: every registration file in services_dir loaded.", class_="note"))
        return tag("section", parts, id="files")
    items = []
    for path, problems in sorted(file_errors.items())[:FILES_SHOWN]:
        lines = [tag("li", _problem(problem)) for problem in problems[:PROBLEMS_SHOWN]]
        if len(problems) > PROBLEMS_SHOWN:
            lines.append(tag("li", f"+{len(problems) - PROBLEMS_SHOWN} more problems", class_="note"))
        shown = clip(path, VALUE)
        items.append(tag("li", tag("code", shown, class_="wrap"), tag("ul", lines), data_file=shown))
    if len(file_errors) > FILES_SHOWN:
        items.append(tag("li", f"+{len(file_errors) - FILES_SHOWN} more files: see /v1/status", class_="note"))
    parts.append(tag("ul", items))
    return tag("section", parts, id="files")


def _problem(problem: Problem) -> Html:
    where = f"line {problem.line}, " if problem.line is not None else ""
    return join([text(where), tag("code", clip(problem.field, NAME)), text(": "), clip(problem.message, PROSE)])


def _rules(rules: Sequence[ConflictRule]) -> Html:
    parts: list[Html] = [tag("h2", f"Conflict rules ({len(rules)})")]
    head = _head("Services", "Type", "Reason", "Source")
    rows = [
        tag(
            "tr",
            tag("td", tag("code", clip(rule.a, NAME)), " and ", tag("code", clip(rule.b, NAME))),
            tag("td", rule.type.value),
            tag("td", clip(rule.reason, PROSE)),
            tag("td", clip(rule.source if rule.id is None else f"{rule.source} #{rule.id}", VALUE)),
        )
        for rule in rules[:RULES_SHOWN]
    ]
    parts.append(tag("table", head, tag("tbody", rows)))
    if len(rules) > RULES_SHOWN:
        parts.append(tag("p", f"+{len(rules) - RULES_SHOWN} more rules: see /v1/conflicts", class_="note"))
    return tag("section", parts, id="rules")


def _events(events: Sequence[LoggedEvent]) -> Html:
    parts: list[Html] = [tag("h2", "Last events")]
    if not events:
        parts.append(tag("p", "No events yet.", class_="note"))
        return tag("section", parts, id="events")
    head = _head("Time (UTC)", "Kind", "Subject", "Detail")
    rows = [
        tag(
            "tr",
            tag("td", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.ts)), class_="muted nowrap"),
            tag("td", clip(event.kind, NAME), class_="nowrap"),
            tag("td", tag("code", clip(event.subject, VALUE)), class_="wrap"),
            tag("td", tag("code", clip(_compact(event.detail), PROSE)), class_="wrap"),
        )
        for event in events
    ]
    parts += [tag("table", head, tag("tbody", rows)), tag("p", "Older events: /v1/events", class_="note")]
    return tag("section", parts, id="events")


def _compact(detail: Mapping[str, Any]) -> str:
    return json.dumps(detail, ensure_ascii=False, default=str)


# -- per request: the node, the page around the parts ---------------------------------


def node_part(body: Mapping[str, Any], shell: Shell) -> bytes:
    """This node as `GET /v1/node` has it (`figures` is None without a node monitor),
    with the daemon's version, uptime and listeners as `GET /v1/status` has them.

    A new fact of /v1/node (such as planned maintenance windows) is one more block here.
    """
    listeners = [tag("code", f"{name} {', '.join(addresses)}") for name, addresses in sorted(shell.bound.items())]
    facts: list[Html] = [
        tag("dt", "state"), tag("dd", _badge(body["state"], body["state"]), " ", clip(body["reason"], PROSE)),
        tag("dt", "address"), tag("dd", tag("code", clip(body["address"], VALUE))),
        tag("dt", "daemon"), tag("dd", f"pilotfish {shell.version}, up {_duration(shell.uptime)}"),
        tag("dt", "listening"), tag("dd", join(listeners, " ") or "not yet"),
    ]
    held = body.get("maintenance")
    if held:
        left = f", {_duration(held['time_left'])} left" if held.get("time_left") is not None else ""
        until = f" until {held['until']}{left}" if held.get("until") else " until it is ended"
        facts += [tag("dt", "maintenance"), tag("dd", f"window {held['window']}", until)]
    blocks = [tag("dl", facts)]
    windows = body.get("windows") or []
    if windows:
        rows = [_window_line(window) for window in windows[:WINDOWS_SHOWN]]
        more = len(windows) - WINDOWS_SHOWN
        if more > 0:
            rows.append(tag("li", f"and {more} more: see /v1/maintenance", class_="note"))
        blocks.append(tag("div", tag("p", "Maintenance windows"), tag("ul", rows, class_="plain")))
    figures, limits = body.get("figures"), body.get("thresholds") or {}
    if figures:
        rows = []
        for name, value in figures.items():
            limit = limits.get(name, 100.0)
            meter = tag("meter", min=0, max=100, value=f"{value:.1f}", high=limit, optimum=0)
            rows += [tag("dt", name), tag("dd", meter, f" {value:.1f}% (degraded above {limit:g}%)")]
        blocks.append(tag("dl", rows))
    else:
        blocks.append(tag("p", "No resource figures: the node monitor is not running.", class_="note"))
    counts = []
    for what in ("instances", "checks"):
        badges = [_badge(status, f"{n} {status}") for status, n in (body.get(what) or {}).items() if n]
        counts.append(tag("p", f"{what.capitalize()} here: ", join(badges, " ") or "none"))
    blocks.append(tag("div", counts))
    title = tag("h2", "Node ", tag("code", clip(body["name"], VALUE)))
    return tag("section", title, tag("div", blocks, class_="node"), id="node").encode()


def _window_line(window: Mapping[str, Any]) -> Html:
    """One window as `GET /v1/maintenance` has it: phase, target, times and reason."""
    target = f"instance {window['instance']}" if window.get("instance") else "the node"
    end = window.get("end") or "until ended"
    times = f"drains {window['drain_at']}, work {window['start']} to {end}"
    return tag("li", _badge(window["phase"], window["phase"]), " ", f"#{window['id']} {window['kind']} of {target}: ",
               clip(times, VALUE), " ", tag("span", clip(window["reason"], PROSE), class_="muted"))


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


def _duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"
