"""Maintenance windows as operators write them: times, drains, and the rules a window must keep.

A time is RFC 3339 with its offset (`2025-06-01T22:00:00Z`, `...+02:00`) or a
duration from now (`+30m`, `+1h30m`); a drain is a duration (`5m`, `0s` for none).
Every refusal is a ValidationError naming the field, as a request body's would be.
`admit` holds the two rules between windows: at most `MAX_WINDOWS` per node, and no
two windows of one target that hold it at the same moment (drains included), which
is refused as WindowOverlap (HTTP 409).

Pure: the caller passes `now`.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from typing import Any, Iterable

from registry.errors import Problem, ValidationError, WindowLimit, WindowOverlap
from registry.fields import parse_duration
from registry.model import rfc3339
from registry.states import MaintenanceKind, Window, WindowPhase
from registry.yamldoc import unclean

DEFAULT_DRAIN = 300.0  # drain_timeout and drain_ahead when not given: 5m
MAX_DRAIN = 24 * 3600.0
# How far ahead a window may be planned, and how long one may last.
MAX_AHEAD = 366 * 24 * 3600.0
# Windows kept per node, planned ones included: each is a row, a timer and a line of `GET /v1/node`.
MAX_WINDOWS = 1000
MAX_REASON = 1024
_ZERO = re.compile(r"0|0+(?:\.0+)?(?:ms|s|m|h)")
# A drain: a duration, or a bare 0 (here and in the OpenAPI document).
DRAIN_PATTERN = r"^(?:0|(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+)$"
_DRAIN = re.compile(DRAIN_PATTERN)
# RFC 3339's date-time (section 5.6), and `+` a duration from now: what a time may be
# written as, here and in the OpenAPI document.
TIME_PATTERN = (
    r"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
    r"|\+(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+)$"
)
_TIME = re.compile(TIME_PATTERN)


def refused(field: str, message: str) -> ValidationError:
    return ValidationError([Problem("<request>", None, field, message)])


def parse_time(text: Any, now: float, field: str) -> float:
    """Unix seconds of an RFC 3339 time with an offset, or of `+<duration>` from `now`.

    A time before 1970 is refused here (check_times bounds the future): a start in
    0001 would put its drain before year 1, which no RFC 3339 time can show.
    """
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        shown = f"{text[:64]!r} is not" if isinstance(text, str) else "must be"
        raise refused(field, f"{shown} a time: RFC 3339 with its offset (2025-06-01T22:00:00Z) or +<duration> (+30m)")
    if text.startswith("+"):
        try:
            return now + parse_duration(text[1:])
        except ValueError as exc:
            raise refused(field, str(exc)) from None
    date, clock = text[:10], text[11:].upper()
    zone = "+00:00" if clock.endswith("Z") else clock[-6:]
    clock = clock[:-1] if clock.endswith("Z") else clock[:-6]
    whole, _, fraction = clock.partition(".")
    try:
        seconds = datetime.datetime.fromisoformat(f"{date}T{whole}{zone}").timestamp()
    except (ValueError, OverflowError) as exc:  # month 13; a year 0001 before UTC's first
        raise refused(field, f"{text!r}: {exc}") from None
    if seconds < 0:
        raise refused(field, f"{text!r} is before 1970")
    return seconds + (float(f"0.{fraction}") if fraction else 0.0)


def parse_drain(value: Any, field: str) -> float:
    """A drain's length: a duration up to MAX_DRAIN; `0s` is no drain at all."""
    if value is None:
        return DEFAULT_DRAIN
    if not isinstance(value, str) or not _DRAIN.fullmatch(value):
        raise refused(field, "must be a duration string (5m, 30s; 0s for none)")
    if _ZERO.fullmatch(value):
        return 0.0
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise refused(field, str(exc)) from None
    if seconds > MAX_DRAIN:
        raise refused(field, "must be at most 24h")
    return seconds


def parse_reason(value: Any, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise refused("reason", "must be a string")
    if len(value) > MAX_REASON:
        raise refused("reason", f"must be at most {MAX_REASON} characters")
    # A lone surrogate (JSON's "\ud800") cannot be stored in SQLite nor sent as UTF-8;
    # a control character has no place in a log line or the status page either.
    why = unclean(value)
    if why is not None:
        raise refused("reason", why)
    return value


def check_times(window: Window, now: float) -> None:
    """A window must end after it starts and after now, start within MAX_AHEAD of now and last at most that."""
    if window.starts > now + MAX_AHEAD:
        raise refused("start", "must be within a year from now")
    if window.ends is None:
        return
    if window.ends <= window.starts:
        raise refused("end", f"must be after the start ({rfc3339(window.starts)})")
    if window.ends <= now:
        raise refused("end", "is in the past: a window must end after now")
    if window.ends > max(window.starts, now) + MAX_AHEAD:
        raise refused("end", "a window lasts at most a year")


def admit(window: Window, others: Iterable[Window]) -> None:
    """Refuse a window that overlaps another of its target, or one more than MAX_WINDOWS on its node."""
    count = 0
    for other in others:
        if other.id == window.id:
            continue
        if other.node == window.node:
            count += 1
        if other.target == window.target and other.overlaps(window):
            raise WindowOverlap(other.id, _target_text(other), rfc3339(other.drain_at) or "", rfc3339(other.ends))
    if count >= MAX_WINDOWS:
        raise WindowLimit(window.node, MAX_WINDOWS)


def planned(node: str, instance: str, reason: str, starts: float, ends: float, drain_ahead: float, now: float) -> Window:
    window = Window(0, node, instance, MaintenanceKind.PLANNED, reason, starts - drain_ahead, starts, ends, now)
    check_times(window, now)
    return window


def changed(window: Window, body: dict[str, Any], now: float) -> Window:
    """`window` with what `body` changes (reason, start, end, drain_ahead), checked.

    Only a planned window that has not begun may move its start or its drain; every
    window may change its reason and its end (an open one may be given an end). A
    change never takes a window back to an earlier phase.
    """
    unknown = sorted(set(body) - {"reason", "start", "end", "drain_ahead"})
    if unknown:
        raise refused(unknown[0], "unknown field (a window change takes reason, start, end, drain_ahead)")
    updates: dict[str, Any] = {}
    if "reason" in body:
        updates["reason"] = parse_reason(body["reason"], window.reason)
    if "end" in body:
        updates["ends"] = None if body["end"] is None else parse_time(body["end"], now, "end")
    if "start" in body or "drain_ahead" in body:
        phase = window.phase_at(now)
        if window.kind is not MaintenanceKind.PLANNED or phase is not WindowPhase.PLANNED:
            raise refused("start" if "start" in body else "drain_ahead",
                          f"window {window.id} has begun ({phase.value}): only its end and reason may change")
        starts = parse_time(body["start"], now, "start") if "start" in body else window.starts
        ahead = parse_drain(body["drain_ahead"], "drain_ahead") if "drain_ahead" in body else window.starts - window.drain_at
        updates.update(starts=starts, drain_at=starts - ahead)
    new = dataclasses.replace(window, **updates)
    if new.kind is MaintenanceKind.PLANNED and new.ends is None:
        raise refused("end", "a planned window needs an end")
    check_times(new, now)
    return new


def _target_text(window: Window) -> str:
    return f"instance {window.instance} on {window.node}" if window.instance else f"node {window.node}"


def window_dict(window: Window, now: float) -> dict[str, Any]:
    """A window as the API shows it; `phase` is at `now`."""
    return {
        "id": window.id,
        "node": window.node,
        "instance": window.instance or None,
        "kind": window.kind.value,
        "reason": window.reason,
        "phase": window.phase_at(now).value,
        "drain_at": rfc3339(window.drain_at),
        "start": rfc3339(window.starts),
        "end": rfc3339(window.ends),
        "created": rfc3339(window.created),
    }
