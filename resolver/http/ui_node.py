"""The status page's node section: this node as `GET /v1/node` has it, with the daemon's facts.

Rendered per request, not kept: the node monitor's figures change between snapshots.
Maintenance windows stop at WINDOWS_SHOWN with a note that points to the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from resolver.http.ui_html import PROSE, VALUE, Html, badge, clip, join, tag

WINDOWS_SHOWN = 10


@dataclass(frozen=True)
class Shell:
    """The daemon's facts shown beside the node's, as `GET /v1/status` has them."""

    version: str
    uptime: float
    bound: Mapping[str, Sequence[str]]


def node_part(body: Mapping[str, Any], shell: Shell) -> bytes:
    """This node as `GET /v1/node` has it (`figures` is None without a node monitor),
    with the daemon's version, uptime and listeners as `GET /v1/status` has them.

    A new fact of /v1/node (such as planned maintenance windows) is one more block here.
    """
    listeners = [tag("code", f"{name} {', '.join(addresses)}") for name, addresses in sorted(shell.bound.items())]
    facts: list[Html] = [
        tag("dt", "state"), tag("dd", badge(body["state"], body["state"]), " ", clip(body["reason"], PROSE)),
        tag("dt", "address"), tag("dd", tag("code", clip(body["address"], VALUE))),
        tag("dt", "daemon"), tag("dd", f"pilotfish {shell.version}, up {duration(shell.uptime)}"),
        tag("dt", "listening"), tag("dd", join(listeners, " ") or "not yet"),
    ]
    held = body.get("maintenance")
    if held:
        left = f", {duration(held['time_left'])} left" if held.get("time_left") is not None else ""
        until = f" until {held['until']}{left}" if held.get("until") else " until it is ended"
        facts += [tag("dt", "maintenance"), tag("dd", f"window {held['window']}", until)]
    blocks = [tag("dl", facts)]
    windows = body.get("windows") or []
    if windows:
        rows = [window_line(window) for window in windows[:WINDOWS_SHOWN]]
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
        badges = [badge(status, f"{n} {status}") for status, n in (body.get(what) or {}).items() if n]
        counts.append(tag("p", f"{what.capitalize()} here: ", join(badges, " ") or "none"))
    blocks.append(tag("div", counts))
    title = tag("h2", "Node ", tag("code", clip(body["name"], VALUE)))
    return tag("section", title, tag("div", blocks, class_="node"), id="node").encode()


def window_line(window: Mapping[str, Any]) -> Html:
    """One window as `GET /v1/maintenance` has it: phase, target, times and reason."""
    target = f"instance {window['instance']}" if window.get("instance") else "the node"
    end = window.get("end") or "until ended"
    times = f"drains {window['drain_at']}, work {window['start']} to {end}"
    return tag("li", badge(window["phase"], window["phase"]), " ", f"#{window['id']} {window['kind']} of {target}: ",
               clip(times, VALUE), " ", tag("span", clip(window["reason"], PROSE), class_="muted"))


def duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"
