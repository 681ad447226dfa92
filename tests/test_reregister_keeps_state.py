"""Re-registering an instance (a heartbeat, a `ttl` refresh) keeps its check results and maintenance."""

from __future__ import annotations

import time

from apikit import ApiServer
from registry.model import CheckState, Status


def test_reregistering_keeps_check_results_and_maintenance(api: ApiServer) -> None:
    body = {"name": "svc", "port": 3001, "ttl": "60s", "checks": [{"ttl": "30s"}]}
    assert api.post("/v1/services", body).status == 201

    def passing() -> None:
        instance = api.catalog.instance("svc-3001")
        assert instance is not None
        api.catalog.set_check_state(instance, CheckState("svc-3001:ttl", Status.PASSING, "ok", time.time()))

    api.call(passing)
    assert [i["id"] for i in api.get("/v1/services/svc").body] == ["svc-3001"]
    assert api.post("/v1/services", body).status == 200
    assert [i["id"] for i in api.get("/v1/services/svc").body] == ["svc-3001"], "still passing after the refresh"
    assert api.put("/v1/services/svc-3001/maintenance", {"enable": True, "reason": "resharding"}).status == 200
    assert api.post("/v1/services", body).status == 200
    assert api.get("/v1/services/svc?status=any").body[0]["status"] == "maintenance", "still drained"


def test_a_changed_file_keeps_check_results_of_the_instances_it_keeps(api: ApiServer) -> None:
    api.apply_yaml("/srv/svc.yaml", "name: svc\nport: 3001\nchecks:\n  - ttl: 30s\n")

    def passing() -> None:
        instance = api.catalog.instance("svc-3001")
        assert instance is not None
        api.catalog.set_check_state(instance, CheckState("svc-3001:ttl", Status.PASSING, "ok", time.time()))

    api.call(passing)
    api.apply_yaml("/srv/svc.yaml", "name: svc\nport: 3001\ntags: [blue]\nchecks:\n  - ttl: 30s\n")
    assert api.get("/v1/services/svc").body[0]["tags"] == ["blue"]
