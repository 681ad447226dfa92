"""One typed reader for the fields of a document: registrations (YAML or JSON) and the config file.

Both are read through `FieldReader`, so a field of a given type is refused with the
same words wherever it is wrong, at a path written the same way (`services[1].port`,
`dns.listen[0]`), on the nearest line the document knows, with the same "did you
mean" for a mistyped key. The reader never stops at the first problem: it records
each one and returns None for that field, so that an operator sees every fault of a
file at once. What a field means (a port's range, a name's pattern, which keys a
section takes) is the caller's rule; this module holds only how a value of each type
is read and refused.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Sequence

from registry.errors import Problem
from registry.model import format_duration
from registry.yamldoc import FieldPath, LocatedDoc, dotted, kind_of, quoted

DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+")
DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Longer than any interval, TTL or wait means anything; 400 nines would otherwise
# parse to infinity and break every reader that formats it.
MAX_DURATION = 365 * 24 * 3600.0
# How close a mistyped key must be to a known one for "did you mean": close enough
# that `prot` suggests `port`, far enough that `extra` suggests nothing.
SUGGESTION_CUTOFF = 0.7


def parse_duration(text: str) -> float:
    """Seconds in `10s`, `500ms`, `5m`, `1h30m`; ValueError with a readable reason otherwise."""
    if not DURATION.fullmatch(text):
        raise ValueError(f"{quoted(text)} is not a duration (use a unit: 500ms, 10s, 5m, 1h)")
    seconds = sum(float(n) * UNIT_SECONDS[unit] for n, unit in DURATION_PART.findall(text))
    if not seconds <= MAX_DURATION:  # also catches inf and nan
        raise ValueError(f"{quoted(text)} is longer than the limit of one year ({format_duration(MAX_DURATION)})")
    if seconds <= 0:
        raise ValueError(f"{quoted(text)} must be longer than zero")
    return seconds


def suggestion(key: str, allowed: Sequence[str]) -> str:
    """` (did you mean 'x'?)` for the known key closest to `key`, or nothing."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=SUGGESTION_CUTOFF)
    return f" (did you mean {close[0]!r}?)" if close else ""


def alternatives(choices: Sequence[str]) -> str:
    """`tcp or udp`, `one of GET, HEAD, POST`: the choices as a refusal names them."""
    if len(choices) == 2:
        return f"{choices[0]} or {choices[1]}"
    return f"one of {', '.join(choices)}"


class FieldReader:
    """Typed reads of one document; each read returns None after recording what is wrong.

    `located` is the document as yamldoc composed it (lines, and the raw text of
    scalars YAML typed); a JSON body has an empty one, and its problems no line.
    """

    def __init__(self, path: str, located: LocatedDoc) -> None:
        self.path = path
        self.located = located

    @property
    def problems(self) -> list[Problem]:
        return self.located.problems

    def problem(self, at: FieldPath, message: str) -> None:
        """Record a problem at `at`, on the line of the nearest part of the path that has one."""
        line = None
        for depth in range(len(at), -1, -1):
            line = self.located.lines.get(at[:depth])
            if line is not None:
                break
        self.problems.append(Problem(self.path, line, dotted(at) or "(top)", message))

    def string(
        self, value: Any, at: FieldPath, pattern: re.Pattern[str] | None = None, rule: str = "", non_empty: bool = False
    ) -> str | None:
        """A string; with `pattern`, one it matches whole, else refused as `'value' <rule>`."""
        if not isinstance(value, str):
            self.problem(at, f"must be {'a non-empty' if non_empty else 'a'} string, not {kind_of(value)}")
            return None
        if non_empty and not value:
            self.problem(at, "must be a non-empty string")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(at, f"{quoted(value)} {rule}")
            return None
        return value

    def text(self, value: Any, at: FieldPath) -> str | None:
        """A free-form string that YAML may have typed as a number (`version: 1.10`)."""
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raw = self.located.raw.get(at)
            if raw is not None:
                return raw
            if isinstance(value, int):
                return str(value)
        self.problem(at, f"must be a string, not {kind_of(value)}")
        return None

    def choice(self, value: Any, at: FieldPath, choices: Sequence[str]) -> str | None:
        """One of `choices`, as written (callers that ignore case fold it first)."""
        text = self.string(value, at)
        if text is not None and text not in choices:
            self.problem(at, f"{quoted(text)} must be {alternatives(choices)}")
            return None
        return text

    def integer(self, value: Any, at: FieldPath, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(at, f"must be an integer, not {kind_of(value)}")
            return None
        if not low <= value <= high:
            self.problem(at, f"{value} is outside {low}..{high}")
            return None
        return value

    def number(self, value: Any, at: FieldPath, minimum: float, integer: bool = False) -> float | None:
        """A finite number of at least `minimum` (an integer when `integer`)."""
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(at, f"must be {kind} >= {minimum:g}, not {kind_of(value)}")
            return None
        if (integer and not isinstance(value, int)) or not minimum <= value < float("inf"):
            self.problem(at, f"must be {kind} >= {minimum:g}, not {value!r}")
            return None
        return value

    def boolean(self, value: Any, at: FieldPath) -> bool | None:
        if not isinstance(value, bool):
            self.problem(at, f"must be true or false, not {kind_of(value)}")
            return None
        return value

    def duration(self, value: Any, at: FieldPath, within: tuple[float, float] | None = None) -> float | None:
        """A duration string (`10s`, `500ms`) in seconds; `within` bounds it further."""
        if isinstance(value, bool) or not isinstance(value, str):
            hint = " (add a unit: 10s, 500ms, 5m)" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            self.problem(at, f"must be a duration string, not {kind_of(value)}{hint}")
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.problem(at, str(exc))
            return None
        if within is not None and not within[0] <= seconds <= within[1]:
            self.problem(at, f"must be between {within[0]:g}s and {within[1]:g}s")
            return None
        return seconds

    def mapping(self, value: Any, at: FieldPath, allowed: Sequence[str]) -> dict[str, Any] | None:
        """A mapping whose keys are all in `allowed`; an unknown key is a problem, the rest is read."""
        if not isinstance(value, dict):
            self.problem(at, f"must be a mapping, not {kind_of(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.problem(at + (key,), f"unknown key{suggestion(key, allowed)}")
        return value

    def strings(self, value: Any, at: FieldPath) -> list[str] | None:
        """A list of strings (each item checked by the caller)."""
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(at, f"must be a list of strings, not {kind_of(value)}")
            return None
        return value

    def string_map(self, value: Any, at: FieldPath, key_pattern: re.Pattern[str]) -> dict[str, str] | None:
        """A mapping of strings (numbers YAML typed are taken as written) with keys matching `key_pattern`."""
        if not isinstance(value, dict):
            self.problem(at, f"must be a mapping of strings, not {kind_of(value)}")
            return None
        out = {}
        for key, item in value.items():
            if not key_pattern.fullmatch(key):
                self.problem(at + (key,), f"key {quoted(key)} must match {key_pattern.pattern}")
                continue
            text = self.text(item, at + (key,)) if not isinstance(item, bool) else self.located.raw.get(at + (key,))
            if text is None:
                if isinstance(item, bool):
                    self.problem(at + (key,), f"must be a string, not {kind_of(item)}")
                continue
            out[key] = text
        return out
