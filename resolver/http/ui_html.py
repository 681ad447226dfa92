"""HTML built so that escaping is the default: the status page's only way to write markup.

Everything the status page shows comes from the catalog, and much of it from people
or programs we do not trust: meta values, check output (any service's HTTP body or
command output), file problems, event details, maintenance and rule reasons. So no
string is ever pasted into markup here. `tag` escapes every plain `str` child and
every attribute value; only an `Html` (which only this module makes, from escaped
text or from `tag` itself) passes through as it is. A template that forgets to escape
cannot be written with these functions: it would have to build an `Html` by hand.

Element and attribute names are always constants of our code, never data.
"""

from __future__ import annotations

import html
from typing import Iterable, Union


class Html(str):
    """Markup that is already safe: made by `tag`, `text` or `join`, never from data."""

    __slots__ = ()


Child = Union[Html, str, int, float, None, Iterable["Child"]]

# Elements that have no end tag (HTML's void elements, the ones used here).
VOID = frozenset({"meta", "input", "br"})
ELLIPSIS = "…"


def text(value: object) -> Html:
    """`value` as text: every character that means something in HTML escaped."""
    return Html(html.escape(str(value), quote=True))


def clip(value: str, limit: int) -> Html:
    """`value` as text in at most `limit` characters of markup, with an ellipsis where cut.

    The limit counts the escaped form, because that is what the page carries: a
    value of quotes would otherwise grow six-fold (`&quot;`) past any bound. The cut
    falls between characters, never inside an entity.
    """
    escaped = text(value)
    if len(escaped) <= limit:
        return escaped
    pieces, size = [], 0
    for char in value:
        piece = text(char)
        if size + len(piece) > limit - 1:
            break
        pieces.append(piece)
        size += len(piece)
    return Html("".join(pieces) + ELLIPSIS)


def join(children: Iterable[Child], separator: str = "") -> Html:
    return Html(text(separator).join(_render(child) for child in children))


def _render(child: Child) -> str:
    if isinstance(child, Html):
        return child
    if child is None:
        return ""
    if isinstance(child, (str, int, float)):
        return text(child)
    return "".join(_render(item) for item in child)


def _attribute(name: str, value: object) -> str:
    # Python names cannot hold '-': `data_search` is written data-search, `class_` class.
    name = name.rstrip("_").replace("_", "-")
    if value is True:
        return f" {name}"
    return f' {name}="{value if isinstance(value, Html) else text(value)}"'


def tag(element: str, /, *children: Child, **attributes: object) -> Html:
    """`<element attributes>children</element>`; attributes that are None or False are left out."""
    # `is`, not `in (None, False)`: 0 == False, and min=0 is an attribute to keep.
    kept = [(key, value) for key, value in attributes.items() if value is not None and value is not False]
    attrs = "".join(_attribute(key, value) for key, value in kept)
    if element in VOID:
        return Html(f"<{element}{attrs}>")
    return Html(f"<{element}{attrs}>{_render(children)}</{element}>")


# -- the page's recurring pieces ---------------------------------------------------

# Clips, in characters of escaped text: names (ids, tags, keys, fields), values (meta
# values, URLs, versions, paths), prose (check output, messages, reasons, details).
# With the counts of each section (ui_catalog.py, ui_node.py) they bound a page at
# about 3 MB, however hostile the catalog.
NAME = 64
VALUE = 120
PROSE = 240


def table_head(*columns: str) -> Html:
    return tag("thead", tag("tr", [tag("th", column) for column in columns]))


def plural(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def badge(state: str, words: str) -> Html:
    return tag("span", words, class_=f"badge s-{state}")
