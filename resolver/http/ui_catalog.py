"""The status page's catalog sections: services, rejected files, conflict rules, last events.

Rendered from one snapshot (and the event log's last lines) per view; resolver/http/
ui_page.py keeps the result in the snapshot's memo. Of a check only its id, kind,
status and output are shown, never an exec check's argv, an HTTP check's URL or its
headers (which may carry credentials); instances that are not discoverable are left
out, as in `GET /v1/services`. Every list stops at its *_SHOWN count with a note that
points to the JSON, and every string is clipped (ui_html.py), so that a big or
hostile catalog cannot make a section without bound.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping, Sequence

from registry.errors import Problem
from registry.events import LoggedEvent
from registry.model import ConflictRule, Entry, Status
from registry.snapshot import Snapshot
from resolver.http.ui_html import NAME, PROSE, VALUE, Html, badge, clip, join, plural, table_head, tag, text
from resolver.http.ui_view import PAGE_SERVICES, Searchable, View, page_count, search_index

INSTANCES_SHOWN = 10
TAGS_SHOWN = 12
META_SHOWN = 6
CHECKS_SHOWN = 3
FILES_SHOWN = 50
PROBLEMS_SHOWN = 10
RULES_SHOWN = 200
EVENTS_SHOWN = 30
LINKED_SCHEMES = frozenset({"http", "https"})


def summary(snapshot: Snapshot) -> Html:
    counts = snapshot.counts_by_status()
    services, instances = len(search_index(snapshot)), len(snapshot.entries_by_key)
    parts: list[Html] = [text(f"{plural(services, 'service')}, {plural(instances, 'instance')}")]
    parts += [badge(status, f"{counts[status]} {status}") for status in counts if counts[status]]
    if snapshot.file_errors:
        rejected = plural(len(snapshot.file_errors), "rejected file")
        parts.append(tag("a", rejected, href="#files", class_="badge s-critical"))
    return tag("p", join(parts, " "), id="summary")


def services_section(snapshot: Snapshot, view: View, names: list[Searchable]) -> Html:
    first = (view.page - 1) * PAGE_SERVICES
    shown = names[first:first + PAGE_SERVICES]
    title = tag("h2", "Services", [" matching ", tag("q", clip(view.filter, VALUE))] if view.filter else None)
    parts: list[Html] = [title]
    if not shown:
        parts.append(tag("p", "No service matches." if view.filter else "No services registered.", class_="note"))
        return tag("section", parts, id="services")
    head = table_head("Instance", "Status", "URL", "Tags", "Version", "Checks", "Meta")
    parts.append(tag("table", head, [_service(snapshot, name, words) for name, words in shown]))
    pages = page_count(len(names))
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
    heading: list[Html] = [tag("code", name), text(plural(len(entries), "instance"))]
    heading += [badge(status.value, f"{counts[status]} {status.value}") for status in Status if status in counts]
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
    status: list[Html] = [badge(entry.status.value, entry.status.value)]
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
        mark = badge(state.status.value, state.status.value)
        items.append(tag("li", mark, " ", tag("code", clip(label, VALUE)), output))
    if len(entry.checks) > CHECKS_SHOWN:
        items.append(tag("li", f"+{len(entry.checks) - CHECKS_SHOWN} more checks", class_="note"))
    return tag("ul", items, class_="plain") if items else text("")


def _meta(meta: Mapping[str, str]) -> Html:
    pairs = sorted(meta.items())
    items = [tag("li", tag("code", clip(k, NAME), "=", clip(v, VALUE))) for k, v in pairs[:META_SHOWN]]
    if len(pairs) > META_SHOWN:
        items.append(tag("li", f"+{len(pairs) - META_SHOWN} more", class_="note"))
    return tag("ul", items, class_="plain") if items else text("")


def files_section(file_errors: Mapping[str, tuple[Problem, ...]]) -> Html:
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


def rules_section(rules: Sequence[ConflictRule]) -> Html:
    parts: list[Html] = [tag("h2", f"Conflict rules ({len(rules)})")]
    head = table_head("Services", "Type", "Reason", "Source")
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


def events_section(events: Sequence[LoggedEvent]) -> Html:
    parts: list[Html] = [tag("h2", "Last events")]
    if not events:
        parts.append(tag("p", "No events yet.", class_="note"))
        return tag("section", parts, id="events")
    head = table_head("Time (UTC)", "Kind", "Subject", "Detail")
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
