"""The client's counters: cache hits and misses, fallbacks by kind, request latency.

Plain integers behind the core's lock, read as one frozen `ClientStats` so that an
application can export them to whatever metrics system it already has (the client
depends on nothing to do that for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from resolver.client.results import Source

# Upper bounds, in seconds, of the latency histogram's buckets (the last is +Inf).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNAVAILABLE = "unavailable"
FALLBACK_KINDS = (Source.CACHE_STALE.value, Source.DNS.value, Source.ENV.value, UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class Latency:
    """HTTP requests to the daemon, answered or failed; `buckets` are cumulative
    (upper bound in seconds, count), as Prometheus histograms are."""

    count: int
    total: float
    max: float
    buckets: tuple[tuple[float, int], ...]


@dataclass(frozen=True, slots=True)
class ClientStats:
    cache_hits: int
    cache_misses: int
    cache_entries: int
    requests: int
    request_failures: int
    fallbacks: Mapping[str, int]  # cache-stale, dns, env, unavailable (no fallback had an answer)
    latency: Latency
    breaker: str
    breaker_opened: int


class Counters:
    def __init__(self) -> None:
        self.cache_hits = 0
        self.cache_misses = 0
        self.requests = 0
        self.request_failures = 0
        self.fallbacks = dict.fromkeys(FALLBACK_KINDS, 0)
        self._latency_count = 0
        self._latency_total = 0.0
        self._latency_max = 0.0
        self._bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)

    def request(self, seconds: float, failed: bool) -> None:
        self.requests += 1
        self.request_failures += failed
        self._latency_count += 1
        self._latency_total += seconds
        self._latency_max = max(self._latency_max, seconds)
        slot = next((i for i, bound in enumerate(LATENCY_BUCKETS) if seconds <= bound), len(LATENCY_BUCKETS))
        self._bucket_counts[slot] += 1

    def latency(self) -> Latency:
        cumulative, running = [], 0
        for bound, count in zip(LATENCY_BUCKETS + (float("inf"),), self._bucket_counts):
            running += count
            cumulative.append((bound, running))
        return Latency(self._latency_count, self._latency_total, self._latency_max, tuple(cumulative))

    def snapshot(self, cache_entries: int, breaker: str, breaker_opened: int) -> ClientStats:
        return ClientStats(
            self.cache_hits, self.cache_misses, cache_entries, self.requests, self.request_failures,
            MappingProxyType(dict(self.fallbacks)), self.latency(), breaker, breaker_opened,
        )
