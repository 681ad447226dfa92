"""What a reader of the status page asked to see, and which services that is.

A view is a filter (a part of a service's name or of one of its tags) and a page of
PAGE_SERVICES services. The words each service is filtered on are computed once per
snapshot and kept in its memo; the page's script narrows by the same rule on the same
words, so that the server's answer and the script's never differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlencode

from registry.snapshot import Snapshot

PAGE_SERVICES = 50
FILTER_MAX = 100
# A service's filter words (its name and its first tags, sorted): bounds its
# `data-search` attribute, and the server filters on the same words as the script.
SEARCH_WORDS = 50


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


def memo(snapshot: Snapshot, key: tuple[str, ...], build: Callable[[], Any]) -> Any:
    """`build()` once per snapshot: kept in its memo, which goes with it."""
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

    index: tuple[Searchable, ...] = memo(snapshot, ("ui", "search"), build)
    return index


def matching(snapshot: Snapshot, words: str) -> list[Searchable]:
    """The services whose name or one of whose tags contains `words` (all for none).

    The page's script narrows by the same rule, on the `data-search` words.
    """
    return [item for item in search_index(snapshot) if not words or any(words in t for t in item[1])]


def page_count(matches: int) -> int:
    return max(1, -(-matches // PAGE_SERVICES))
