"""YAML read as plain values plus where each value sits, so errors can name a line.

Registration files and the daemon's config file are both read through here: an
operator gets the same `file:line: field: message` whichever file is wrong. Nothing
here validates meaning; it only parses, refuses what no registry value may be
(duplicate or non-string keys, unknown tags, control characters), and records lines
and the raw text of scalars that YAML typed (`1.10` read as a number).

Whoever may write a file decides what it holds, so documents are composed by
registry.yamlbounded (no recursion, a depth limit, a node budget against alias
bombs) and converted here without recursion past that depth. Every failure is a
`Problem` of that document; nothing here raises anything else.
"""

from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import yaml
from yaml.parser import ParserError
from yaml.reader import ReaderError
from yaml.scanner import ScannerError

from registry.errors import Problem
from registry.yamlbounded import BoundedComposer, MappingNode, Node, ScalarNode, SequenceNode, node_budget

FieldPath = tuple[str | int, ...]

# libyaml's parser is several times faster than the pure-Python one.
_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Files up to this size get the pure-Python parser's error messages (see compose).
PURE_PARSER_MAX = 64 * 1024

_YAML = "tag:yaml.org,2002:"
MAP_TAG, SEQ_TAG, STR_TAG, MERGE_TAG, VALUE_TAG = (_YAML + name for name in ("map", "seq", "str", "merge", "value"))
# Scalars a registry value may be; the tags SafeLoader knows besides these are
# collections (!!set, !!omap, !!pairs) the registry has no use for.
SCALAR_TAGS = frozenset(_YAML + name for name in ("null", "bool", "int", "float", "str", "timestamp", "binary"))

# C0 and C1 controls (tab and newline included) and lone surrogates: never part of
# a name, a value or a command. In a DNS answer they are bytes a client never asked
# for; a lone surrogate cannot even be encoded to UTF-8.
UNCLEAN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def unclean(text: str) -> str | None:
    """Why `text` may not be a registry value (a control character or a lone surrogate), or None."""
    found = UNCLEAN.search(text)
    if found is None:
        return None
    code = ord(found.group())
    what = "a lone surrogate (not valid Unicode)" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"{quoted(text)} holds {what}, U+{code:04X}, at position {found.start()}"


def quoted(text: str, limit: int = 80) -> str:
    """`repr(text)`, shortened: messages end up in logs and /v1/status, whatever the value's size."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


@dataclass
class LocatedDoc:
    """A parsed document: `value`, the line of every key and item, the raw text of typed scalars."""

    value: Any = None
    lines: dict[FieldPath, int] = field(default_factory=dict)
    raw: dict[FieldPath, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def dotted(at: FieldPath) -> str:
    """`("services", 1, "port")` -> `services[1].port`; a key past 64 characters is cut short."""
    out = ""
    for part in at:
        if isinstance(part, str) and len(part) > 64:
            part = part[:61] + "..."
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def kind_of(value: Any) -> str:
    """How an error message names the type it got."""
    if value is None:
        return "null"
    names = {bool: "a bool", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector while a document is read.

    Reading allocates a few objects per byte and creates no cycles, yet every few
    hundred allocations trigger a collection that walks the young objects: on a
    2 MiB file that was 60% of the time. The pause is bounded by the file size cap.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def compose(text: str, path: str) -> LocatedDoc:
    with collector_paused():
        return _compose(text, path)


def _compose(text: str, path: str) -> LocatedDoc:
    doc = LocatedDoc()
    try:
        try:
            node = BoundedComposer(_PARSER(text), node_budget(text)).single_document()
        except (ReaderError, ScannerError, ParserError):
            # Re-read with the pure-Python parser: its messages are the same on
            # every machine, whether or not PyYAML was built with libyaml. It is
            # four times slower, so a large file keeps libyaml's message.
            if len(text) > PURE_PARSER_MAX:
                raise
            node = BoundedComposer(yaml.SafeLoader(text), node_budget(text)).single_document()
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


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_YAML) if tag.startswith(_YAML) else tag


class _Converter:
    """Nodes to plain values, recording lines; recursion is bounded by MAX_DEPTH."""

    def __init__(self, path: str, doc: LocatedDoc) -> None:
        self.path = path
        self.doc = doc
        self.constructor = yaml.SafeLoader("")

    def problem(self, node: Node, at: FieldPath, message: str) -> None:
        self.doc.problems.append(Problem(self.path, node.line, dotted(at) or "(top)", message))

    def convert(self, node: Node, at: FieldPath) -> Any:
        self.doc.lines[at] = node.line
        if isinstance(node, MappingNode):
            if node.tag != MAP_TAG:
                self.problem(node, at, f"tag {_short_tag(node.tag)!r} is not supported (plain mappings only)")
                return None
            out: dict[str, Any] = {}
            merged: list[tuple[Node, Node]] = []
            for key_node, value_node in node.value:
                if key_node.tag == MERGE_TAG and isinstance(key_node, ScalarNode):
                    merged += self.merge(value_node, at)
                    continue
                key = self.key(key_node, at)
                if key is None:
                    continue
                if key in out:
                    self.problem(key_node, at + (key,), "duplicate key")
                    continue
                out[key] = self.convert(value_node, at + (key,))
                self.doc.lines[at + (key,)] = key_node.line
            # `<<: *base` fills in what the mapping does not say itself; of several
            # merged mappings (`<<: [*a, *b]`) the first to hold a key gives it.
            for key_node, value_node in merged:
                key = self.key(key_node, at)
                if key is not None and key not in out:
                    out[key] = self.convert(value_node, at + (key,))
                    self.doc.lines[at + (key,)] = key_node.line
            return out
        if isinstance(node, SequenceNode):
            if node.tag != SEQ_TAG:
                self.problem(node, at, f"tag {_short_tag(node.tag)!r} is not supported (plain lists only)")
                return None
            return [self.convert(item, at + (i,)) for i, item in enumerate(node.value)]
        ok, value = self.scalar(node, at)
        if not ok:
            return None
        if not isinstance(value, str):  # a number or a bool the operator may have meant as text
            self.doc.raw[at] = node.value
        return value

    def merge(self, value: Node, at: FieldPath) -> list[tuple[Node, Node]]:
        """The pairs a `<<` value contributes, in order of precedence (YAML's merge key)."""
        sources: list[Node] = value.value if isinstance(value, SequenceNode) else [value]
        pairs: list[tuple[Node, Node]] = []
        for source in sources:
            if not isinstance(source, MappingNode) or source.tag != MAP_TAG:
                self.problem(source, at, "`<<` merges a mapping or a list of mappings, nothing else")
                continue
            nested: list[tuple[Node, Node]] = []
            for key_node, value_node in source.value:
                if key_node.tag == MERGE_TAG and isinstance(key_node, ScalarNode):
                    nested += self.merge(value_node, at)
                else:
                    pairs.append((key_node, value_node))
            pairs += nested
        return pairs

    def key(self, node: Node, at: FieldPath) -> str | None:
        if not isinstance(node, ScalarNode):
            self.problem(node, at, "a key must be a string, not a collection")
            return None
        ok, key = self.scalar(node, at)
        if not ok:
            return None
        if not isinstance(key, str):
            self.problem(node, at, f"key {key!r} must be a string")
            return None
        return key

    def scalar(self, node: ScalarNode, at: FieldPath) -> tuple[bool, Any]:
        """(True, value), or (False, None) after recording why the scalar cannot be read."""
        if node.tag == STR_TAG or node.tag == VALUE_TAG:  # VALUE_TAG: a plain `=`, which PyYAML cannot build
            value: Any = node.value
        elif node.tag not in SCALAR_TAGS:
            self.problem(node, at, f"tag {_short_tag(node.tag)!r} is not supported (plain strings, numbers, "
                                   "booleans and null only)")
            return False, None
        else:
            try:
                value = self.constructor.construct_object(yaml.ScalarNode(node.tag, node.value))
            except Exception:  # !!int abc, !!timestamp x, !!bool maybe: each fails its own way
                self.problem(node, at, f"{quoted(node.value)} is not a valid {_short_tag(node.tag)}")
                return False, None
        if isinstance(value, str) and (reason := unclean(value)) is not None:
            self.problem(node, at, reason)
            return False, None
        return True, value
