"""One lookup, described: a service name and its filters, as the cache keys it and the
API reads it.

Equal lookups written differently (tags in another order, a status list or a comma
string) normalize to one `Query`, so they share one cache entry and one round-robin
cursor.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Iterable

Params = list[tuple[str, str]]


def quote(segment: str) -> str:
    """One path segment, safe to put into a URL (ids may hold ':' or '@')."""
    return urllib.parse.quote(segment, safe="")


@dataclass(frozen=True, slots=True)
class Query:
    """One lookup's name and filters, normalized so that equal lookups share a cache entry."""

    name: str
    tags: tuple[str, ...] = ()
    status: str | None = None
    version: str | None = None
    node: str | None = None
    # The cache and the round-robin cursors key on this plain tuple: hashing and
    # comparing it runs in C, where the dataclass's own __eq__ builds tuples in Python.
    key: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", ("instances", self.name, self.tags, self.status, self.version, self.node))

    @classmethod
    def build(cls, name: str, tags: str | Iterable[str] = (), status: str | Iterable[str] | None = None,
              version: str | None = None, node: str | None = None) -> Query:
        if not isinstance(name, str) or not name or not name.isprintable() or len(name) > 255:
            raise ValueError(f"service name {name!r}: printable text of 1 to 255 characters")
        if not tags and status is None and version is None and node is None:
            return cls(name)  # the common lookup, kept cheap: it runs on every cached url()
        tag_list = (tags,) if isinstance(tags, str) else tuple(tags)
        status_text = status if status is None or isinstance(status, str) else ",".join(status)
        return cls(name, tuple(sorted(set(tag_list))), status_text or None, version, node)

    def params(self) -> Params:
        params = [("tag", tag) for tag in self.tags]
        for key, value in (("status", self.status), ("version", self.version), ("node", self.node)):
            if value is not None:
                params.append((key, value))
        return params

    @property
    def dns_tag(self) -> str | None:
        return self.tags[0] if self.tags else None

    @property
    def dns_can_answer(self) -> bool:
        """DNS serves passing instances, filtered by one tag at most, and nothing else."""
        return len(self.tags) <= 1 and self.version is None and self.node is None and self.status in (None, "passing")
