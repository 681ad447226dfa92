"""What `Discovery` and `AsyncDiscovery` share: their settings, their core, their counters.

The two flavours differ only in how they carry a step of a plan out (sync.py,
aio.py); construction, defaults and everything readable without I/O live here once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from resolver.client.core import Core
from resolver.client.query import Query
from resolver.client.environment import Environment
from resolver.client.selection import Strategy
from resolver.client.settings import (
    DEFAULT_BREAKER_COOLDOWN,
    DEFAULT_BREAKER_FAILURES,
    DEFAULT_CACHE_TTL,
    DEFAULT_DNS_TIMEOUT,
    DEFAULT_MAX_RESPONSE,
    DEFAULT_TIMEOUT,
    Settings,
    build_settings,
)
from resolver.client.stats import ClientStats
from resolver.client.cache import DEFAULT_ENTRIES

Tags = str | Iterable[str]
Statuses = str | Iterable[str] | None


class ClientBase:
    """A pilotfish client: see sync.Discovery and aio.AsyncDiscovery.

    `url`: the daemon's API (default: PILOTFISH_HTTP, else what the environment
    implies; environment.py). `cache_ttl`: seconds an answer is served without asking
    again. `dns`: the daemon's DNS address for the fallback (default: PILOTFISH_DNS,
    else the API's host, port 8600). `timeout`: bound on each HTTP exchange, connect
    to last byte. `breaker_failures` failures in a row open the circuit breaker for
    `breaker_cooldown` seconds. `environ` and `root` are where the environment
    variables and the container markers are read (os.environ and / by default).
    """

    def __init__(
        self,
        url: str | None = None,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        *,
        dns: str | tuple[str, int] | None = None,
        domain: str | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        dns_timeout: float = DEFAULT_DNS_TIMEOUT,
        cache_size: int = DEFAULT_ENTRIES,
        breaker_failures: int = DEFAULT_BREAKER_FAILURES,
        breaker_cooldown: float = DEFAULT_BREAKER_COOLDOWN,
        max_response: int = DEFAULT_MAX_RESPONSE,
        environ: Mapping[str, str] | None = None,
        root: str | Path = "/",
    ) -> None:
        settings = build_settings(
            url, cache_ttl, dns=dns, domain=domain, token=token, timeout=timeout, dns_timeout=dns_timeout,
            cache_size=cache_size, breaker_failures=breaker_failures, breaker_cooldown=breaker_cooldown,
            max_response=max_response, environ=environ, root=root,
        )
        self._core = Core(settings)

    @property
    def settings(self) -> Settings:
        return self._core.settings

    @property
    def base_url(self) -> str:
        return str(self._core.settings.base)

    @property
    def environment(self) -> Environment:
        return self._core.settings.environment

    def stats(self) -> ClientStats:
        return self._core.stats()

    def clear_cache(self) -> None:
        """Forget every answer, the last good ones too (the fallback starts at DNS)."""
        self._core.clear_cache()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


def strategy_of(strategy: str | Strategy) -> Strategy:
    try:
        return Strategy(strategy)
    except ValueError:
        raise ValueError(f"strategy {strategy!r}: one of {', '.join(s.value for s in Strategy)}") from None


def query_of(name: str, tags: Tags, status: Statuses, version: str | None, node: str | None) -> Query:
    return Query.build(name, tags, status, version, node)


def json_bytes(body: Any) -> bytes | None:
    return json.dumps(body).encode() if body is not None else None


def params_of(query: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """A query mapping as pairs: None values left out, lists repeated (`tag=a&tag=b`)."""
    pairs: list[tuple[str, str]] = []
    for key, value in (query or {}).items():
        if value is None:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            pairs.append((key, str(item)))
    return pairs
