"""Lookups over real HTTP: listing, instance filters, /url strategies, feedback."""

from __future__ import annotations

import pytest

from apikit import ApiServer
from registry.model import CheckState, Status

WEB = """
services:
  - {name: web, id: web-1, port: 8001, protocol: http, version: "2", tags: [blue, canary], meta: {team: edge}}
  - {name: web, id: web-2, port: 8002, protocol: http, version: "1", tags: [blue], meta: {team: core}}
  - {name: web, id: web-3, port: 8003, protocol: http, version: "2", node: far, address: 10.0.0.9, weight: 5}
  - {name: redis, port: 6379, protocol: redis}
  - {name: hidden, port: 7000, discoverable: false}
"""


def _ids(reply_body: list[dict[str, str]]) -> list[str]:
    return sorted(item["id"] for item in reply_body)


def _with_critical(api: ApiServer, instance_id: str) -> None:
    """Give an instance a check and make it critical through the catalog's own path."""
    api.apply_yaml(
        "/etc/pilotfish/services.d/db.yaml",
        f"name: db\nid: {instance_id}\nport: 5432\nchecks:\n  - {{tcp: '127.0.0.1:1', interval: 10s}}\n",
    )


def test_listing_groups_discoverable_instances_by_name(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    reply = api.get("/v1/services")
    assert reply.status == 200
    assert sorted(reply.body) == ["redis", "web"]
    assert _ids(reply.body["web"]) == ["web-1", "web-2", "web-3"]
    assert reply.index == api.catalog.current.index


def test_instances_carry_the_api_shape(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    reply = api.get("/v1/services/redis")
    assert reply.status == 200
    [instance] = reply.body
    assert instance["url"] == "redis://10.0.0.1:6379"
    assert instance["status"] == "passing"
    assert instance["source"] == "file:/srv/web.yaml"
    assert instance["node"] == "node1"


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", ["web-1", "web-2", "web-3"]),
        ("?tag=blue", ["web-1", "web-2"]),
        ("?tag=blue&tag=canary", ["web-1"]),
        ("?tag=blue&tag=nope", []),
        ("?version=2", ["web-1", "web-3"]),
        ("?node=far", ["web-3"]),
        ("?meta.team=core", ["web-2"]),
        ("?meta.team=edge&version=2", ["web-1"]),
        # As OpenAPI clients send the deepObject `meta` (issue 15).
        ("?meta[team]=core", ["web-2"]),
        ("?meta%5Bteam%5D=edge&meta.team=edge", ["web-1"]),
        ("?status=any", ["web-1", "web-2", "web-3"]),
        ("?status=critical", []),
    ],
)
def test_instance_filters(api: ApiServer, query: str, expected: list[str]) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    reply = api.get(f"/v1/services/web{query}")
    assert reply.status == 200, reply.text
    assert _ids(reply.body) == expected


def test_status_defaults_to_passing_and_any_shows_all(api: ApiServer) -> None:
    _with_critical(api, "db-1")
    assert api.get("/v1/services/db").body == []
    assert _ids(api.get("/v1/services/db?status=any").body) == ["db-1"]
    assert _ids(api.get("/v1/services/db?status=passing,critical").body) == ["db-1"]
    assert [e["status"] for e in api.get("/v1/services").body["db"]] == ["critical"]


def test_bad_status_is_400_naming_the_field(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    for query in ("status=sleepy", "status=", "status=passing,sleepy"):
        reply = api.get(f"/v1/services/web?{query}")
        assert reply.status == 400, query
        assert reply.error["problems"][0]["field"] == "status"


def test_unknown_service_is_404(api: ApiServer) -> None:
    for path in ("/v1/services/nope", "/v1/services/nope?tag=x", "/v1/services/nope/url"):
        reply = api.get(path)
        assert reply.status == 404, path
        assert reply.error["code"] == "not_found"


def test_repeated_lookup_is_served_from_the_snapshot_memo_until_a_change(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    first = api.get("/v1/services/redis")
    assert ("http", "instances", "redis") in api.catalog.current.memo
    assert api.get("/v1/services/redis").text == first.text
    api.apply_yaml("/srv/web.yaml", WEB.replace("port: 6379", "port: 6380"))
    changed = api.get("/v1/services/redis")
    assert changed.body[0]["port"] == 6380
    assert changed.index > first.index


def test_url_round_robin_visits_every_passing_instance(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    urls = [api.get("/v1/services/web/url").body["url"] for _ in range(6)]
    assert sorted(set(urls)) == ["http://10.0.0.1:8001", "http://10.0.0.1:8002", "http://10.0.0.9:8003"]
    assert urls[:3] == urls[3:]


@pytest.mark.parametrize("strategy", ["random", "weighted", "least_conn", "ip_hash", "local_first", "round_robin"])
def test_url_every_strategy_answers_a_matching_instance(api: ApiServer, strategy: str) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    reply = api.get(f"/v1/services/web/url?strategy={strategy}&tag=blue")
    assert reply.status == 200
    assert reply.body["strategy"] == strategy
    assert reply.body["instance"]["id"] in {"web-1", "web-2"}
    assert reply.body["url"] == reply.body["instance"]["url"]


def test_url_local_first_prefers_this_node(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    nodes = {api.get("/v1/services/web/url?strategy=local_first").body["instance"]["node"] for _ in range(4)}
    assert nodes == {"node1"}
    assert api.get("/v1/services/web/url?strategy=local_first&node=far").body["instance"]["id"] == "web-3"


def test_url_ip_hash_is_stable_for_one_client(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    ids = {api.get("/v1/services/web/url?strategy=ip_hash").body["instance"]["id"] for _ in range(5)}
    assert len(ids) == 1


def test_url_least_conn_counts_selections_and_takes_feedback(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    picks = [api.get("/v1/services/web/url?strategy=least_conn").body["instance"]["id"] for _ in range(3)]
    assert sorted(picks) == ["web-1", "web-2", "web-3"]
    for instance_id, node, active in (("web-1", None, 0), ("web-2", None, 9), ("web-3", "far", 9)):
        body = {"id": instance_id, "active": active} | ({"node": node} if node else {})
        assert api.post("/v1/services/web/feedback", body).status == 200
    assert api.get("/v1/services/web/url?strategy=least_conn").body["instance"]["id"] == "web-1"


def test_feedback_errors(api: ApiServer) -> None:
    api.apply_yaml("/srv/web.yaml", WEB)
    assert api.post("/v1/services/web/feedback", {"id": "web-1", "active": -1}).status == 400
    assert api.post("/v1/services/web/feedback", {"active": 1}).error["problems"][0]["field"] == "id"
    assert api.post("/v1/services/web/feedback", {"id": "redis-6379", "active": 1}).status == 404


def test_url_errors(api: ApiServer) -> None:
    _with_critical(api, "db-1")
    assert api.get("/v1/services/db/url?strategy=fastest").error["problems"][0]["field"] == "strategy"
    reply = api.get("/v1/services/db/url")
    assert reply.status == 503
    assert reply.error["code"] == "no_instance"
    assert api.get("/v1/services/db/url?status=any").status == 200


def test_health_change_moves_an_instance_into_lookups(api: ApiServer) -> None:
    _with_critical(api, "db-1")
    instance = api.catalog.instance("db-1")
    assert instance is not None
    check_id = instance.checks[0].id
    api.call(lambda: api.catalog.set_check_state(instance, CheckState(check_id, Status.PASSING, "ok")))
    assert _ids(api.get("/v1/services/db").body) == ["db-1"]
