"""YAML read as plain values plus where each value sits, so errors can name a line.

Registration files and the daemon's config file are both read through here: an
operator gets the same `file:line: field: message` whichever file is wrong. Nothing
here validates meaning; it only parses, refuses duplicate and non-string keys, and
records lines and the raw text of scalars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from registry.errors import Problem

FieldPath = tuple[str | int, ...]

# libyaml's composer keeps line marks and is several times faster than the pure-Python one.
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class LocatedDoc:
    """A parsed document: `value`, the line of every key and item, the raw text of scalars."""

    value: Any = None
    lines: dict[FieldPath, int] = field(default_factory=dict)
    raw: dict[FieldPath, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def dotted(at: FieldPath) -> str:
    """`("services", 1, "port")` -> `services[1].port`."""
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def kind_of(value: Any) -> str:
    """How an error message names the type it got."""
    if value is None:
        return "null"
    names = {bool: "a bool", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)


def compose(text: str, path: str) -> LocatedDoc:
    doc = LocatedDoc()
    try:
        try:
            node = yaml.compose(text, Loader=_COMPOSER)
        except yaml.YAMLError:
            # Re-read with the pure-Python parser: its messages are the same on
            # every machine, whether or not PyYAML was built with libyaml.
            node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # A construct left open is reported at the end of the stream; name the
        # last line that exists rather than one past it.
        line = min(mark.line + 1, max(text.count("\n"), 1)) if mark else None
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark and exc.problem:
            message += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        doc.problems.append(Problem(path, line, "yaml", message))
        return doc
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(path, None, "yaml", str(exc)))
        return doc
    if node is not None:
        doc.value = _Converter(path, doc).convert(node, ())
    return doc


class _Converter:
    def __init__(self, path: str, doc: LocatedDoc) -> None:
        self.path = path
        self.doc = doc
        self.constructor = yaml.SafeLoader("")

    def problem(self, node: yaml.Node, at: FieldPath, message: str) -> None:
        self.doc.problems.append(Problem(self.path, node.start_mark.line + 1, dotted(at) or "(top)", message))

    def convert(self, node: yaml.Node, at: FieldPath) -> Any:
        self.doc.lines[at] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    self.problem(key_node, at, f"key {key!r} must be a string")
                elif key in out:
                    self.problem(key_node, at + (key,), "duplicate key")
                else:
                    out[key] = self.convert(value_node, at + (key,))
                    self.doc.lines[at + (key,)] = key_node.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, at + (i,)) for i, item in enumerate(node.value)]
        self.doc.raw[at] = node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.problem(node, at, str(exc))
            return None
