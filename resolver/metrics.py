"""Prometheus metrics: the objects the daemon observes and the scrape-time view of its state.

Counters that only grow on events (registrations, rejections, reloads, HTTP requests)
live in one module-level `REGISTRY` that the daemon and the HTTP app increment (HTTP
requests in a plain dict that a collector of `REGISTRY` reads, see below). Figures
that already exist elsewhere (DNS query counters, the snapshot index, instances by
status) are read when Prometheus scrapes, by `StateCollector`, rather than copied on
every change. Nothing here may block or touch SQLite: a scrape reads the current
snapshot and in-memory counters only.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from resolver.state import DaemonState

REGISTRY = CollectorRegistry(auto_describe=True)

RELOAD_SECONDS = Histogram(
    "pilotfish_reload_seconds",
    "Time to apply a services_dir change or a SIGHUP reload to the catalog.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
REGISTRATIONS = Counter(
    "pilotfish_registrations",
    "Registrations accepted, by source (file, api, cluster).",
    ["source"],
    registry=REGISTRY,
)
REJECTIONS = Counter(
    "pilotfish_rejections",
    "Registrations refused (invalid or conflicting), by source (file, api, cluster).",
    ["source"],
    registry=REGISTRY,
)
# HTTP requests by (route template, method, status), bumped by the API middleware.
# A plain dict rather than a labelled Counter: an increment costs one dict update
# instead of a lock, and the lookup API's throughput is measured per request.
HTTP_REQUESTS: collections.Counter[tuple[str, str, int]] = collections.Counter()
# A client may send any token as its method; anything else is counted as "OTHER" so
# that the label set stays bounded whatever clients send.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def count_request(route: str, method: str, status: int) -> None:
    """One answered request under its route template (never the raw path)."""
    HTTP_REQUESTS[(route, method if method in KNOWN_METHODS else "OTHER", status)] += 1


class HttpRequestsCollector(Collector):
    """Exposes HTTP_REQUESTS as pilotfish_http_requests_total{route,method,status}."""

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "pilotfish_http_requests",
            "HTTP API requests, by route template, method and status code.",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in sorted(HTTP_REQUESTS.items()):
            family.add_metric([route, method, str(status)], count)
        yield family


REGISTRY.register(HttpRequestsCollector())


class StateCollector(Collector):
    """Reads the running daemon's figures at scrape time."""

    def __init__(self, state: "DaemonState") -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        snapshot = self._state.catalog.current
        index = GaugeMetricFamily("pilotfish_snapshot_index", "Index of the catalog snapshot being served.")
        index.add_metric([], snapshot.index)
        yield index
        instances = GaugeMetricFamily(
            "pilotfish_instances", "Registered instances by health status.", labels=["status"]
        )
        for status, count in snapshot.counts_by_status().items():
            instances.add_metric([status], count)
        yield instances
        errors = GaugeMetricFamily("pilotfish_rejected_files", "Registration files currently rejected.")
        errors.add_metric([], len(snapshot.file_errors))
        yield errors
        yield from self._cluster()
        stats = self._state.dns_stats
        if stats is None:
            return
        queries = CounterMetricFamily(
            "pilotfish_dns_queries", "DNS queries answered, by query type and rcode.", labels=["qtype", "rcode"]
        )
        for (qtype, rcode), count in sorted(stats.queries.items()):
            queries.add_metric([str(qtype), str(rcode)], count)
        yield queries
        malformed = CounterMetricFamily("pilotfish_dns_malformed", "DNS packets dropped or answered FORMERR.")
        malformed.add_metric([], stats.malformed)
        yield malformed
        for name, text, value in (
            ("pilotfish_dns_rate_limited", "UDP answers dropped or sent truncated by dns.rate_limit.", stats.rate_limited),
            ("pilotfish_dns_recursion_refused", "Names outside the zone refused: client not allowed to recurse.",
             stats.recursion_refused),
            ("pilotfish_dns_forward_overflow", "Forwards answered SERVFAIL: too many in flight.", stats.forward_overflow),
            ("pilotfish_dns_tcp_evicted", "DNS TCP connections closed to make room under a cap.", stats.tcp_evicted),
        ):
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], value)
            yield counter


    def _cluster(self) -> Iterator[Metric]:
        """Fleet mode's figures; nothing on a single host."""
        cluster = self._state.cluster
        if cluster is None:
            return
        status = cluster.status()
        for name, text, value in (
            ("pilotfish_cluster_stale", "1 while the fleet view is not in sync with etcd (stale or still connecting).",
             int(status["state"] != "synced")),
            ("pilotfish_cluster_revision", "The etcd revision the fleet view reflects.", status["revision"]),
            ("pilotfish_cluster_nodes", "Other nodes in the fleet view.", status["nodes"]),
            ("pilotfish_cluster_instances", "Other nodes' instances in the fleet view.", status["instances"]),
            ("pilotfish_cluster_publish_pending", "Own keys waiting to be written to etcd.", status["pending"]),
        ):
            gauge = GaugeMetricFamily(name, text)
            gauge.add_metric([], value)
            yield gauge
        for name, text, value in (
            ("pilotfish_cluster_bad_records", "etcd keys refused as unreadable (treated as absent).",
             status["bad_records"]),
            ("pilotfish_cluster_resyncs", "Whole re-reads of the prefix (compacted revision, overflow).",
             status["resyncs"]),
            ("pilotfish_cluster_foreign_writes", "Writes to this node's keys by another writer (a same-named daemon?).",
             status["foreign_writes"]),
        ):
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], value)
            yield counter
        refused = CounterMetricFamily("pilotfish_cluster_refused", "Fleet keys refused past the bounds, by kind.",
                                      labels=["kind"])
        for kind, count in sorted(status["refused"].items()):
            refused.add_metric([kind], count)
        yield refused


def render(state: "DaemonState") -> bytes:
    """The Prometheus text exposition: the event counters plus the state read now.

    The state collector goes in a registry of its own per scrape so that several
    daemons' states (as in tests) never share one global collector.
    """
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(StateCollector(state))
    return generate_latest(REGISTRY) + generate_latest(scrape)
