"""Consul's HTTP conventions on pilotfish's port: headers, query parameters, errors.

Consul's clients read three headers on every answer: X-Consul-Index (py-consul gives
up without it: "Missing index header"), X-Consul-KnownLeader and X-Consul-LastContact
(Go's client fails to parse an answer without the last). Every answer on a Consul
path carries them, errors included: the index is the snapshot's, which starts at 1
and only grows while the daemon runs (Consul's clients busy-loop on an index of 0).

Errors are plain text, as Consul writes them ("Invalid wait time"), never pilotfish's
JSON error shape, and the wording is Consul's where Consul has one. Paths under
Consul's prefixes that pilotfish does not serve (KV, ACLs, sessions, prepared
queries, every write) answer 405 with an empty Allow and a message pointing at
pilotfish's own API: a 404 there would read as "no such key" to a KV client and fail
silently, a 405 fails loudly.

Query parameters: Consul itself ignores names it does not know. pilotfish accepts
every name Consul's own clients send on these reads (the Go api client's
QueryOptions, py-consul's), honours those it can (`index`, `wait`, `tag`, `passing`,
`node-meta`, `dc`), ignores the harmless ones (`stale`, `consistent`, `cached`,
`near`, `token`, `pretty`: answers stay compact), and refuses what it cannot honour
(`filter`, another datacenter, a namespace, a peer) and any other name, so that a
typo (`?pasing`) is an error instead of a silently unfiltered answer.
`answer_consul` is the API middleware's one call for Consul paths; it never touches
SQLite or files.
"""

from __future__ import annotations

import json
import logging
import random
import re
from dataclasses import dataclass
from typing import Callable

from aiohttp import web
from multidict import CIMultiDict, MultiMapping

from registry.catalog import Catalog
from registry.snapshot import Snapshot
from resolver.http.appkeys import STATE
from resolver.http.errors import Handler
from resolver.http.reads import DEFAULT_WAIT, JITTER_FRACTION, MAX_WAIT, memo_body
from resolver.metrics import count_request

log = logging.getLogger("pilotfish.http")

CONSUL_PREFIXES = (
    "/v1/agent/", "/v1/catalog/", "/v1/health/", "/v1/status/", "/v1/kv", "/v1/acl/", "/v1/query", "/v1/session/",
    "/v1/txn", "/v1/event/", "/v1/connect/", "/v1/coordinate/", "/v1/operator/", "/v1/snapshot", "/v1/internal/",
    "/v1/discovery-chain/", "/v1/peering", "/v1/namespace", "/v1/partition", "/v1/exported-services",
)
INDEX = "X-Consul-Index"
KNOWN_LEADER = "X-Consul-KnownLeader"
LAST_CONTACT = "X-Consul-LastContact"
_HEADERS_KEY = ("http", "consul", "headers")
# Names Consul's clients send on any read (Go api QueryOptions, py-consul), and what
# pilotfish does with each: see the module docstring.
COMMON_PARAMS = frozenset({
    "dc", "stale", "consistent", "cached", "leader", "max_stale", "index", "wait", "hash", "near", "node-meta",
    "filter", "token", "pretty", "ns", "partition", "peer", "merge-central-config",
})
NOT_A_PARAMETER = "not a parameter of this endpoint (pilotfish serves Consul's read API; see /v1/openapi.json)"
# An echoed parameter name is cut to this, so a huge one cannot make a huge answer.
ECHO_LIMIT = 100
NOT_SERVED = (
    "{method} {path} is not served: pilotfish answers Consul's service discovery reads only "
    "(GET /v1/catalog/services, /v1/catalog/service/<name>, /v1/health/service/<name>, /v1/health/state/<state>, "
    "/v1/agent/self, /v1/agent/services, /v1/status/leader). Consul's KV store, ACLs, sessions, prepared queries "
    "and writes have no counterpart here: register services with a YAML file in services_dir or with pilotfish's "
    "POST /v1/services (see /v1/openapi.json)."
)
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_GO_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_DEFAULT_NAMES = frozenset({"", "default"})


class ConsulError(Exception):
    """A refusal in Consul's words: plain text with a status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


Filters = tuple[tuple[str, ...], bool, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class ConsulQuery:
    """A Consul read's query string, validated. `filters` is hashable, for memo keys."""

    index: int = 0
    wait: float = DEFAULT_WAIT
    tags: tuple[str, ...] = ()
    passing: bool = False
    node_meta: tuple[tuple[str, str], ...] = ()

    @property
    def filters(self) -> Filters:
        return self.tags, self.passing, self.node_meta


NO_QUERY = ConsulQuery()
# What a read's body is built from: (snapshot, datacenter, query) -> a JSON value.
Build = Callable[[Snapshot, str, ConsulQuery], object]


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration ("120000ms", "10s", "1m30s", "0"), or None when it is not one."""
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _GO_DURATION.fullmatch(text):
        return None
    seconds = sum(float(number) * _GO_UNITS[unit] for number, unit in _GO_DURATION_PART.findall(text))
    return -seconds if text.startswith("-") else seconds


def _bad_parameter(name: str, why: str) -> ConsulError:
    return ConsulError(400, f'Bad request: Invalid query parameter: "{name[:ECHO_LIMIT]}" - {why}')


def parse_query(request: web.Request, extra: frozenset[str], datacenter: str) -> ConsulQuery:
    """Validate a Consul read's query string; ConsulError for what Consul would refuse, or we must."""
    if not request.query_string:
        return NO_QUERY
    query = request.query
    _refuse_what_is_not_served(query, extra)
    if "stale" in query and "consistent" in query:
        raise ConsulError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
    if "cached" in query and "consistent" in query:
        raise ConsulError(400, "Cannot specify ?cached with ?consistent, conflicting semantics.")
    max_stale = query.get("max_stale", "")
    if max_stale and parse_go_duration(max_stale) is None:
        raise ConsulError(400, f"Invalid max_stale value {json.dumps(max_stale[:ECHO_LIMIT])}")
    # Go would read the first of repeated values; no client repeats these, and a
    # blocking query built from the first of several is a guess, so they are refused.
    if len(query.getall("index", ())) > 1:
        raise ConsulError(400, "Invalid index")
    if len(query.getall("wait", ())) > 1:
        raise ConsulError(400, "Invalid wait time")
    wait, index = _wait(query.get("wait", "")), _index(query.get("index", ""))
    dc = query.get("dc", "")
    if dc and dc != datacenter:
        # Consul's words for a datacenter it cannot reach; its 500 says "try again",
        # while here no retry can ever succeed, so the status is a client error.
        raise ConsulError(400, "No path to datacenter")
    tags = tuple(sorted({tag.lower() for tag in query.getall("tag", [])}))
    pairs = set()
    for raw in query.getall("node-meta", []):
        key, _, value = raw.partition(":")
        pairs.add((key, value))
    return ConsulQuery(index, wait, tags, _passing(query), tuple(sorted(pairs)))


def _refuse_what_is_not_served(query: MultiMapping[str], extra: frozenset[str]) -> None:
    for name in query:
        if name not in COMMON_PARAMS and name not in extra:
            raise _bad_parameter(name, NOT_A_PARAMETER)
    if query.get("ns", "") not in _DEFAULT_NAMES:
        raise _bad_parameter("ns", "Namespaces are a Consul Enterprise feature")
    if query.get("partition", "") not in _DEFAULT_NAMES:
        raise _bad_parameter("partition", "Partitions are a Consul Enterprise feature")
    if query.get("peer"):
        raise _bad_parameter("peer", "cluster peering is not served by pilotfish")
    if query.get("filter"):
        raise _bad_parameter("filter", "filter expressions are not served by pilotfish; use tag, passing and node-meta")


def _wait(raw: str) -> float:
    if not raw:
        return DEFAULT_WAIT
    seconds = parse_go_duration(raw)
    if seconds is None:
        raise ConsulError(400, "Invalid wait time")
    # As Consul: a wait of zero or less is the default one, a longer one than the longest is cut.
    return DEFAULT_WAIT if seconds <= 0 else min(seconds, MAX_WAIT)


def _index(raw: str) -> int:
    """Go's ParseUint: ASCII digits within uint64 (20 digits at most, checked before int())."""
    if not raw:
        return 0
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20 or int(raw) >= 2**64:
        raise ConsulError(400, "Invalid index")
    return int(raw)


def _passing(query: MultiMapping[str]) -> bool:
    """Present without a value, or a Go bool (1, t, true, ...), as Consul reads it."""
    if "passing" not in query:
        return False
    raw = query["passing"]
    if raw not in _TRUE and raw not in _FALSE and raw != "":
        raise ConsulError(400, "Invalid value for ?passing")
    return raw not in _FALSE


async def query_snapshot(catalog: Catalog, query: ConsulQuery) -> Snapshot:
    """The snapshot to answer from: at once, or once the index moves past `?index=`.

    As Consul: index 0 never blocks, and the wait loses up to 1/16 to jitter so that
    clients woken together do not all come back together.
    """
    if not query.index:
        return catalog.current
    wait = query.wait - query.wait * JITTER_FRACTION * random.random()
    return await catalog.wait_past(query.index, wait)


async def answer_read(
    request: web.Request, params: frozenset[str], what: tuple[str, ...], build: Build, blocking: bool = True,
    basis: Callable[[Snapshot], tuple[object, ...]] | None = None,
) -> web.Response:
    """Parse the query, wait when it blocks, and answer the body for (what, filters).

    The body is built once per snapshot, in the memo pilotfish's own lookups use and
    under the same bound; `basis` says what it is made of, so that a snapshot whose
    change left that alone takes the body over (see `memo_body`).
    """
    state = request.app[STATE]
    datacenter = state.config.cluster.datacenter
    query = parse_query(request, params, datacenter)
    # Consul's agent and status endpoints do not block on an index.
    snapshot = await query_snapshot(state.catalog, query) if blocking else state.catalog.current
    key = ("http", "consul", *what, query.filters)
    body = memo_body(snapshot, key, lambda: build(snapshot, datacenter, query), basis(snapshot) if basis else None)
    return consul_response(body, snapshot)


def _headers(index: int) -> CIMultiDict[str]:
    return CIMultiDict({"Content-Type": "application/json", INDEX: str(index), KNOWN_LEADER: "true", LAST_CONTACT: "0"})


def consul_response(body: bytes, snapshot: Snapshot) -> web.Response:
    """A JSON answer with Consul's headers, kept per snapshot so the hot path only copies them."""
    headers = snapshot.memo.get(_HEADERS_KEY)
    if headers is None:
        headers = snapshot.memo[_HEADERS_KEY] = _headers(snapshot.index)
    return web.Response(body=body, headers=headers)


def plain_response(status: int, text: str, index: int) -> web.Response:
    headers = {INDEX: str(index), KNOWN_LEADER: "true", LAST_CONTACT: "0"}
    return web.Response(status=status, text=text, headers=headers)


def _not_served(request: web.Request, exc: web.HTTPException, index: int) -> web.Response:
    """405 for every method on a path not served, and for writes on the paths that are."""
    text = NOT_SERVED.format(method=request.method, path=request.path[:ECHO_LIMIT * 2])
    response = plain_response(405, text, index)
    # Empty when nothing is served here: the resource allows no method (RFC 9110 10.2.1).
    response.headers["Allow"] = exc.headers.get("Allow", "") if exc.status == 405 else ""
    return response


async def answer_consul(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run a Consul path's handler; every outcome leaves with Consul's headers and error style."""
    response: web.StreamResponse
    try:
        response = await handler(request)
    except ConsulError as exc:
        response = plain_response(exc.status, exc.text, request.app[STATE].catalog.current.index)
    except web.HTTPException as exc:
        index = request.app[STATE].catalog.current.index
        if exc.status in (404, 405):
            # aiohttp's own refusals: no route here, or a method this route does not take.
            response = _not_served(request, exc, index)
        else:
            response = plain_response(exc.status, exc.reason, index)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        index = request.app[STATE].catalog.current.index
        response = plain_response(500, "internal error; see the pilotfish log", index)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    count_request(route, request.method, response.status)
    return response

