"""Consul's own clients against the real daemon: py-consul, and Prometheus's requests replayed.

The daemon is `pilotfish serve` (conftest's start_daemon), its services come from YAML
drop-ins, and every answer is decoded into Consul's Go types (tests/consulkit.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import consul
import pytest

from conftest import holds_for, wait_for
from daemonkit import Daemon, DaemonFactory
from consulkit import (
    AGENT_SERVICES,
    CATALOG_SERVICE_ROWS,
    HEALTH_CHECKS,
    HEALTH_SERVICE_ROWS,
    PrometheusConsulSD,
    decode,
)

WEB = """\
services:
  - {name: web, id: web-1, port: 8080, tags: [blue, v1], meta: {team: edge}}
  - {name: web, id: web-2, port: 8081, address: 10.0.0.7, tags: [green]}
  - name: web
    id: web-down
    port: 8082
    tags: [blue]
    checks: [{tcp: "127.0.0.1:1", interval: 1s, timeout: 1s}]
"""
DB = "name: db\nport: 5432\nprotocol: postgres\n"


@pytest.fixture
def daemon(start_daemon: DaemonFactory) -> Daemon:
    served = start_daemon(files={"web.yaml": WEB, "db.yaml": DB})
    # web-down's check never connects: wait until it has run and said so.
    wait_for(lambda: any(e["id"] == "web-down" for e in served.get("/v1/services/web?status=critical")),
             what="web-down critical")
    return served


@pytest.fixture
def client(daemon: Daemon) -> Iterator[consul.Consul]:
    host, _, port = daemon.bound["http"][0].rpartition(":")
    c = consul.Consul(host=host, port=int(port))
    yield c
    # py-consul's close() leaves the requests session open; close its sockets here.
    c.http.session.close()


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(row["Service"]["ID"] for row in rows)


def test_py_consul_agent_and_catalog(client: consul.Consul) -> None:
    me = client.agent.self()
    assert me["Config"]["Datacenter"] == "dc1"
    assert me["Config"]["NodeName"] == "testnode"
    assert me["Member"]["Addr"] == "127.0.0.1"
    index, services = client.catalog.services()
    assert int(index) >= 1
    assert services == {"db": [], "web": ["blue", "green", "v1"]}
    index, rows = client.catalog.service("web")
    decode(rows, CATALOG_SERVICE_ROWS)
    assert sorted((r["ServiceID"], r["ServicePort"], r["ServiceAddress"]) for r in rows) == [
        ("web-1", 8080, ""), ("web-2", 8081, "10.0.0.7"), ("web-down", 8082, ""),
    ]
    assert {r["Address"] for r in rows} == {"127.0.0.1"}
    decode(client.agent.services(), AGENT_SERVICES)
    assert sorted(client.agent.services()) == ["db-5432", "web-1", "web-2", "web-down"]


def test_py_consul_health_service_passing_and_tags(client: consul.Consul) -> None:
    _, every = client.health.service("web")
    decode(every, HEALTH_SERVICE_ROWS)
    assert _ids(every) == ["web-1", "web-2", "web-down"]
    _, passing = client.health.service("web", passing=True)
    assert _ids(passing) == ["web-1", "web-2"]
    _, blue = client.health.service("web", passing=True, tag="blue")
    assert _ids(blue) == ["web-1"]
    _, both = client.health.service("web", tag=["blue", "v1"])
    assert _ids(both) == ["web-1"]
    index, unknown = client.health.service("nosuch")
    assert unknown == [] and int(index) >= 1
    _, critical = client.health.state("critical")
    decode(critical, HEALTH_CHECKS)
    assert [(c["ServiceID"], c["Type"]) for c in critical] == [("web-down", "tcp")]


def test_py_consul_blocking_query_is_woken_by_a_yaml_drop(daemon: Daemon, client: consul.Consul) -> None:
    index, rows = client.health.service("web", passing=True)
    assert _ids(rows) == ["web-1", "web-2"]
    answers: list[tuple[str, list[dict[str, Any]], float]] = []

    def watch() -> None:
        new_index, new_rows = client.health.service("web", passing=True, index=index, wait="20s")
        answers.append((new_index, new_rows, time.monotonic()))

    waiter = threading.Thread(target=watch)
    waiter.start()
    holds_for(lambda: not answers, 0.5, "the query must stay parked until something changes")
    (daemon.services_dir / "web3.yaml").write_text("name: web\nid: web-3\nport: 8083\n")
    dropped = time.monotonic()
    waiter.join(25)
    assert answers, "the blocking query was not released"
    new_index, new_rows, answered = answers[0]
    assert int(new_index) > int(index)
    assert _ids(new_rows) == ["web-1", "web-2", "web-3"]
    # The design: a drop-in applies within a second (typically ~40 ms here).
    assert answered - dropped < 1.0


def test_a_watch_from_index_zero_answers_at_once(daemon: Daemon) -> None:
    """consul-template's first read: index 0 never blocks, and the index it gets is at least 1."""
    sd = PrometheusConsulSD(daemon.bound["http"][0], wait="60000ms")
    started = time.monotonic()
    answer = sd.health_service("web", index=0)
    assert time.monotonic() - started < 5
    assert answer.meta.last_index >= 1 and answer.meta.known_leader


def test_prometheus_requests_byte_for_byte(daemon: Daemon) -> None:
    """consul.go's sequence: agent/self, then catalog/services and health/service with index."""
    sd = PrometheusConsulSD(daemon.bound["http"][0])
    assert sd.datacenter() == "dc1"
    first = sd.catalog_services()
    assert first.meta.last_index >= 1 and first.meta.known_leader and first.meta.last_contact_ms == 0
    assert sd.watched(first.body) == ["db", "web"]
    web = sd.health_service("web")
    targets = {t["__meta_consul_service_id"]: t for t in sd.targets(web)}
    assert targets["web-1"]["__address__"] == "127.0.0.1:8080"
    assert targets["web-1"]["__meta_consul_tags"] == ",blue,v1,"
    assert targets["web-1"]["__meta_consul_service_metadata_team"] == "edge"
    assert targets["web-1"]["__meta_consul_tagged_address_lan"] == "127.0.0.1"
    assert targets["web-1"]["__meta_consul_health"] == "passing"
    assert targets["web-2"]["__address__"] == "10.0.0.7:8081"
    assert targets["web-down"]["__meta_consul_health"] == "critical"

    # The next round blocks on the index it got, woken by a change.
    results: dict[str, Any] = {}
    threads = [
        threading.Thread(target=lambda: results.update(services=sd.catalog_services(first.meta.last_index))),
        threading.Thread(target=lambda: results.update(web=sd.health_service("web", web.meta.last_index))),
    ]
    for thread in threads:
        thread.start()
    holds_for(lambda: not results, 0.3, "both stay parked until something changes")
    (daemon.services_dir / "cache.yaml").write_text("name: cache\nport: 6379\ntags: [hot]\n")
    for thread in threads:
        thread.join(30)
    assert results["services"].meta.last_index > first.meta.last_index
    assert results["services"].body["cache"] == ["hot"]
    assert results["web"].meta.last_index > web.meta.last_index
    assert sd.sent[:3] == [
        "/v1/agent/self",
        "/v1/catalog/services?stale=&wait=120000ms",
        "/v1/health/service/web?stale=&wait=120000ms",
    ]
    assert sorted(sd.sent[3:]) == [
        f"/v1/catalog/services?index={first.meta.last_index}&stale=&wait=120000ms",
        f"/v1/health/service/web?index={web.meta.last_index}&stale=&wait=120000ms",
    ]


def test_prometheus_with_tags_and_node_meta(daemon: Daemon) -> None:
    sd = PrometheusConsulSD(
        daemon.bound["http"][0], services=("web",), tags=("blue",), node_meta={"consul-network-segment": ""}
    )
    catalog = sd.catalog_services()
    assert sd.watched(catalog.body) == ["web"]
    answer = sd.health_service("web")
    assert answer.target == "/v1/health/service/web?node-meta=consul-network-segment%3A&stale=&tag=blue&wait=120000ms"
    assert sorted(t["__meta_consul_service_id"] for t in sd.targets(answer)) == ["web-1", "web-down"]
    other = PrometheusConsulSD(daemon.bound["http"][0], node_meta={"rack": "r1"})
    assert other.catalog_services().body == {}

