"""What every read shares: blocking queries, the index header, JSON bodies.

A read takes one snapshot and answers from it alone. With `?index=N` the read first
waits (on the catalog's change event, so a waiting client costs no CPU) until the
snapshot index passes N or `wait` runs out; the answer then carries the index it was
built from in `X-Pilotfish-Index`, which the client sends back as its next `index`.
Reads whose body is the snapshot's alone (the service lookups) memoise it per
snapshot as a `Representation`, which also answers ETag/304 and gzip
(resolver/http/representation.py). Nothing here may touch SQLite or the filesystem.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable, TypeVar

from aiohttp import web

from registry.fields import parse_duration
from registry.snapshot import Snapshot
from resolver.http.appkeys import GUARD, STATE
from resolver.http.errors import bad_request
# INDEX_HEADER is every read's, so every route module takes it from here.
from resolver.http.representation import INDEX_HEADER as INDEX_HEADER
from resolver.http.representation import JSON, Representation

DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0
# Consul's choice: up to 1/16 of the wait, so that clients woken by one timeout
# do not all come back in the same instant. Subtracted, so MAX_WAIT stays a bound.
JITTER_FRACTION = 1 / 16
# Bodies cached per snapshot for queries with filters; a snapshot lives until the
# next change, so this bounds what arbitrary query strings can pin in memory.
MEMO_LIMIT = 1024
_MEMO_COUNT = ("http", "memo-count")
_MEMO_BASES = ("http", "memo-bases")  # key -> the basis its body was built from


def blocking_params(request: web.Request) -> tuple[int, float] | None:
    """(index, wait seconds) when the read is a blocking query, else None."""
    query = request.query
    raw_index = query.get("index")
    if raw_index is None:
        if "wait" in query:
            parse_wait(query["wait"])
        return None
    try:
        index = int(raw_index)
    except ValueError:
        raise bad_request("index", f"{raw_index!r} is not an integer") from None
    if index < 0:
        raise bad_request("index", "must be zero or more")
    wait = parse_wait(query["wait"]) if "wait" in query else DEFAULT_WAIT
    return index, wait


def parse_wait(raw: str) -> float:
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        raise bad_request("wait", str(exc)) from None
    return min(seconds, MAX_WAIT)


async def read_snapshot(request: web.Request) -> Snapshot:
    """The snapshot this read answers from, after waiting when it is a blocking query."""
    catalog = request.app[STATE].catalog
    blocking = blocking_params(request) if request.query_string else None
    if blocking is None:
        return catalog.current
    index, wait = blocking
    if catalog.current.index != index:
        return catalog.current  # nothing to wait for (see SnapshotHolder.wait_past)
    wait -= wait * JITTER_FRACTION * random.random()
    with request.app[GUARD].blocking_query():
        return await catalog.wait_past(index, wait)


def json_body(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def json_response(value: Any, snapshot: Snapshot | None, status: int = 200) -> web.Response:
    return bytes_response(json_body(value), snapshot, status)


def bytes_response(body: bytes, snapshot: Snapshot | None, status: int = 200) -> web.Response:
    headers = {INDEX_HEADER: str(snapshot.index)} if snapshot is not None else None
    return web.Response(status=status, body=body, content_type=JSON, headers=headers)


Basis = tuple[object, ...]


def memo_body(snapshot: Snapshot, key: tuple[Any, ...], build: Callable[[], Any], basis: Basis | None = None) -> bytes:
    """The JSON body for `key`, built once per snapshot (keys start with "http").

    `basis` is what the body is made of (a name's entries tuple, the node map): a
    snapshot shares those objects with the one before while a change leaves them
    alone, so the body of the snapshot before is taken over while every one of them
    is the same object. In a fleet that changes many times a second, a body is then
    built once per change of its own name, not once per snapshot.
    """
    return _memoised(snapshot, key, lambda: json_body(build()), basis, lambda body: body)


def memo_representation(
    snapshot: Snapshot, key: tuple[Any, ...], build: Callable[[], Any], basis: Basis | None = None
) -> Representation:
    """The answer for `key` (its body, ETag and gzip twin), built once per snapshot.

    Taken over as `memo_body`'s body is, under this snapshot's index.
    """
    return _memoised(snapshot, key, lambda: Representation(json_body(build()), snapshot.index), basis,
                     lambda before: Representation(before.plain.body, snapshot.index))


T = TypeVar("T")


def _memoised(
    snapshot: Snapshot, key: tuple[Any, ...], build: Callable[[], T], basis: Basis | None, carry: Callable[[T], T]
) -> T:
    """`snapshot.memo[key]`, built (or carried from the snapshot before) when missing; kept while the
    memo holds fewer than MEMO_LIMIT."""
    memo = snapshot.memo
    value: T | None = memo.get(key)
    if value is None:
        before: T | None = _carried_over(snapshot, key, basis)
        value = build() if before is None else carry(before)
        count = memo.get(_MEMO_COUNT, 0)
        if count < MEMO_LIMIT:
            memo[key] = value
            memo[_MEMO_COUNT] = count + 1
            if basis is not None:
                memo.setdefault(_MEMO_BASES, {})[key] = basis
    return value


def _carried_over(snapshot: Snapshot, key: tuple[Any, ...], basis: Basis | None) -> Any:
    """What the snapshot before memoised for `key`, when it was built from this very `basis`; else None."""
    if basis is None:
        return None
    before = snapshot.predecessor()
    if before is None:
        return None
    built_from = before.memo.get(_MEMO_BASES, {}).get(key)
    if built_from is None or len(built_from) != len(basis) or any(a is not b for a, b in zip(built_from, basis)):
        return None
    return before.memo.get(key)
