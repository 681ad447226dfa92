"""PyYAML's composer as a loop over parser events, with a depth limit and a node budget.

Whoever may write a file decides what it holds, so reading is bounded: PyYAML's own
composer recurses once per nesting level and expands aliases without limit (ten
lines of "billion laughs" grow past gigabytes). Here a document nested deeper than
MAX_DEPTH, or one whose aliases would expand it past its node budget, is refused
(ComposerError) at the line where it crossed the limit, before anything is built
from it. The nodes are slim: only what registry.yamldoc converts them with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import ComposerError

# Registrations nest five levels (services[0].checks[0].headers.X) and the config
# three: 64 leaves room for any hand-written file, and keeps conversion far from
# Python's recursion limit.
MAX_DEPTH = 64
# Without aliases a document holds at most about one node per byte (`{a,b,c}`), so a
# budget of one node per byte never refuses a plain file; aliases may add up to
# MIN_NODE_BUDGET more in a small file (templates of checks repeated with `*std`).
# The 10-line "billion laughs" (9 levels x 9) would be 387 million.
MIN_NODE_BUDGET = 50_000


def node_budget(text: str) -> int:
    """How many nodes `text` may expand to, aliases counted as often as they are used."""
    return max(MIN_NODE_BUDGET, len(text))


class ScalarNode:
    """A composed scalar: only what conversion needs, so a large file's marks are not kept."""

    __slots__ = ("tag", "value", "line")

    def __init__(self, tag: str, value: str, line: int) -> None:
        self.tag, self.value, self.line = tag, value, line


class SequenceNode:
    __slots__ = ("tag", "value", "line")

    def __init__(self, tag: str, line: int) -> None:
        self.tag, self.line = tag, line
        self.value: list[Node] = []


class MappingNode:
    __slots__ = ("tag", "value", "line")

    def __init__(self, tag: str, line: int) -> None:
        self.tag, self.line = tag, line
        self.value: list[tuple[Node, Node]] = []


Node = ScalarNode | SequenceNode | MappingNode


@dataclass
class _Open:
    """A collection being composed: its node, its anchor, and what it expands to so far."""

    node: SequenceNode | MappingNode
    anchor: str | None
    size: int = 1
    height: int = 1
    key: Node | None = None


class BoundedComposer:
    """PyYAML's Composer as a loop over parser events, with a depth limit and a node budget.

    Every node records its expanded size (itself plus everything below it, an alias
    counting all it points to) and height, so an alias costs one lookup to account
    for, however much it repeats. An anchor is known from its end on: an alias
    inside the collection it names (a cycle) is refused instead of followed.
    """

    def __init__(self, parser: Any, budget: int) -> None:
        self.parser = parser
        self.budget = budget
        self.spent = 0
        self.anchors: dict[str, tuple[Node, int, int]] = {}
        self.open_anchors: set[str] = set()

    def single_document(self) -> Node | None:
        try:
            self.parser.get_event()  # stream start
            if self.parser.check_event(yaml.StreamEndEvent):
                return None
            start = self.parser.get_event().start_mark  # document start
            root = self.root()
            self.parser.get_event()  # document end
            if not self.parser.check_event(yaml.StreamEndEvent):
                event = self.parser.get_event()
                raise ComposerError(
                    "expected a single document in the stream", start, "but found another document", event.start_mark
                )
            return root
        finally:
            self.parser.dispose()

    def spend(self, nodes: int, event: yaml.Event) -> None:
        self.spent += nodes
        if self.spent > self.budget:
            raise ComposerError(
                None, None,
                f"the document expands past {self.budget:,} nodes (every alias repeats all its anchor holds); refused",
                event.start_mark,
            )

    def too_deep(self, depth: int, event: yaml.Event) -> None:
        if depth > MAX_DEPTH:
            raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels; refused", event.start_mark)

    def new_anchor(self, event: yaml.NodeEvent) -> None:
        anchor = event.anchor
        if anchor is not None and (anchor in self.anchors or anchor in self.open_anchors):
            raise ComposerError(None, None, f"anchor &{anchor} is defined twice", event.start_mark)

    def root(self) -> Node:
        stack: list[_Open] = []
        while True:
            event = self.parser.get_event()
            node: Node
            if isinstance(event, yaml.AliasEvent):
                anchor = event.anchor
                if anchor in self.open_anchors:
                    raise ComposerError(None, None, f"alias *{anchor} is inside its own anchor (a cycle)", event.start_mark)
                if anchor not in self.anchors:
                    raise ComposerError(None, None, f"found undefined alias {anchor!r}", event.start_mark)
                node, size, height = self.anchors[anchor]
                self.spend(size, event)
                self.too_deep(len(stack) + height, event)
            elif isinstance(event, yaml.ScalarEvent):
                self.new_anchor(event)
                self.spend(1, event)
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.parser.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = ScalarNode(tag, event.value, event.start_mark.line + 1)
                size, height = 1, 0
                if event.anchor is not None:
                    self.anchors[event.anchor] = (node, size, height)
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                self.new_anchor(event)
                self.spend(1, event)
                self.too_deep(len(stack) + 1, event)
                sequence = isinstance(event, yaml.SequenceStartEvent)
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.parser.resolve(yaml.SequenceNode if sequence else yaml.MappingNode, None, event.implicit)
                line = event.start_mark.line + 1
                stack.append(_Open(SequenceNode(tag, line) if sequence else MappingNode(tag, line), event.anchor))
                if event.anchor is not None:
                    self.open_anchors.add(event.anchor)
                continue
            else:  # the end of the innermost open collection
                done = stack.pop()
                node, size, height = done.node, done.size, done.height
                if done.anchor is not None:
                    self.open_anchors.discard(done.anchor)
                    self.anchors[done.anchor] = (node, size, height)
            if not stack:
                return node
            parent = stack[-1]
            parent.size += size
            parent.height = max(parent.height, height + 1)
            if isinstance(parent.node, SequenceNode):
                parent.node.value.append(node)
            elif parent.key is None:
                parent.key = node
            else:
                parent.node.value.append((parent.key, node))
                parent.key = None
