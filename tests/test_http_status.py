"""Operator endpoints over HTTP: events, status, healthz, metrics, and the error shape."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from apikit import ApiServer
from registry.errors import Problem
from resolver.dns.stats import DnsStats

# The one place the version is written; the daemon reads it from the installed package.
PROJECT_VERSION = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]["version"]


def test_events_newest_first_filtered_and_paged(api: ApiServer) -> None:
    for port in range(9001, 9006):
        api.post("/v1/services", {"name": "svc", "port": port, "id": f"svc-{port}"})
    api.post("/v1/services", {"name": "svc", "port": 0})
    everything = api.get("/v1/events").body["events"]
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs, reverse=True)
    registrations = api.get("/v1/events?kind=registration&limit=3")
    page = registrations.body
    assert [e["subject"] for e in page["events"]] == ["api:svc-9005", "api:svc-9004", "api:svc-9003"]
    assert page["next_before"] == page["events"][-1]["seq"]
    rest = api.get(f"/v1/events?kind=registration&limit=3&before={page['next_before']}").body
    assert [e["subject"] for e in rest["events"]] == ["api:svc-9002", "api:svc-9001"]
    assert rest["next_before"] is None
    assert "X-Pilotfish-Index" in registrations.headers


def test_events_bad_paging_is_400(api: ApiServer) -> None:
    assert api.get("/v1/events?limit=0").error["problems"][0]["field"] == "limit"
    assert api.get("/v1/events?limit=5000").status == 400
    assert api.get("/v1/events?before=x").error["problems"][0]["field"] == "before"


def test_status_reports_node_ports_index_counts_and_rejected_files(api: ApiServer) -> None:
    api.apply_yaml("/srv/ok.yaml", "name: ok\nport: 8080\n")
    problem = Problem("/srv/bad.yaml", 3, "services[0].port", "must be an integer")
    api.call(lambda: api.catalog.reject_file("/srv/bad.yaml", [problem]))
    api.state.extra["config"] = "/etc/pilotfish.yaml"
    reply = api.get("/v1/status")
    assert reply.status == 200
    body = reply.body
    assert body["version"] == PROJECT_VERSION
    assert body["node"]["name"] == "node1"
    assert body["bound"]["http"] == [f"127.0.0.1:{api.port}"]
    assert body["index"] == reply.index == api.catalog.current.index
    assert body["counts"]["passing"] == 1
    assert body["instances"] == 1
    assert body["file_errors"] == [{"path": "/srv/bad.yaml", "problems": [problem.to_dict()]}]
    assert body["config"] == "/etc/pilotfish.yaml"


def test_healthz(api: ApiServer) -> None:
    reply = api.get("/healthz")
    assert reply.status == 200
    assert reply.body["status"] == "ok"


def test_metrics_are_prometheus_text(api: ApiServer) -> None:
    api.post("/v1/services", {"name": "m", "port": 7001})
    api.get("/v1/services/m")

    stats = DnsStats()
    for key, times in ((("SRV", "NOERROR"), 4), (("A", "NXDOMAIN"), 2)):
        for _ in range(times):
            stats.count(key)
    stats.malformed = 3
    api.state.dns_stats = stats
    reply = api.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    text = reply.text
    assert f"pilotfish_snapshot_index {float(api.catalog.current.index)}" in text
    assert 'pilotfish_instances{status="passing"} 1.0' in text
    assert 'pilotfish_dns_queries_total{qtype="SRV",rcode="NOERROR"} 4.0' in text
    assert "pilotfish_dns_malformed_total 3.0" in text
    assert 'pilotfish_http_requests_total{method="GET",route="/v1/services/{name}",status="200"}' in text
    assert "pilotfish_reload_seconds_bucket" in text


def test_unknown_route_and_method_use_the_error_shape(api: ApiServer) -> None:
    missing = api.get("/v2/nothing")
    assert missing.status == 404
    assert missing.error["code"] == "not_found"
    wrong = api.request("PATCH", "/v1/services")
    assert wrong.status == 405
    assert wrong.error["code"] == "method_not_allowed"


def test_an_unexpected_failure_is_500_and_logged(api: ApiServer, caplog: pytest.LogCaptureFixture) -> None:
    api.store.close()  # the database going away under the daemon: not an error we map
    with caplog.at_level(logging.ERROR, logger="pilotfish.http"):
        reply = api.get("/v1/events")
    assert reply.status == 500
    assert reply.error["code"] == "internal"
    assert "closed database" not in reply.text  # details stay in the log
    assert any("GET /v1/events" in record.getMessage() for record in caplog.records)
