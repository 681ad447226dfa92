"""Names and values are clean through the HTTP API too: whole names, no control characters, finite durations."""

from __future__ import annotations

from apikit import ApiServer


def test_a_name_with_a_final_newline_is_400_and_never_served(api: ApiServer) -> None:
    reply = api.post("/v1/services", {"name": "evil\n", "port": 80})
    assert reply.status == 400 and reply.error["problems"][0]["field"] == "name"
    assert api.get("/v1/services").body == {}


def test_a_lone_surrogate_in_a_json_body_is_400(api: ApiServer) -> None:
    # json.loads turns "\ud800" into a string no UTF-8 encoder accepts: DNS TXT and
    # every JSON reader of the instance would fail on it.
    reply = api.request("POST", "/v1/services", raw=b'{"name": "web", "port": 80, "meta": {"note": "\\ud800"}}')
    assert reply.status == 400, reply.text
    assert reply.error["problems"][0]["field"] == "meta.note"
    assert "lone surrogate" in reply.error["problems"][0]["message"]


def test_a_400_nines_duration_is_400_and_reads_keep_working(api: ApiServer) -> None:
    reply = api.post("/v1/services", {"name": "web", "port": 80, "ttl": "9" * 400 + "s"})
    assert reply.status == 400 and "longer than the limit of one year" in reply.error["problems"][0]["message"]
    assert api.post("/v1/services", {"name": "web", "port": 80, "ttl": "8760h"}).status == 201
    assert api.get("/v1/services").status == 200
    wait = api.get("/v1/services?index=1&wait=" + "9" * 400 + "s")
    assert wait.status == 400 and "one year" in wait.text


def test_a_conflict_rule_on_a_name_with_a_final_newline_is_400(api: ApiServer) -> None:
    reply = api.post("/v1/conflicts", {"a": "evil\n", "b": "web", "type": "port", "reason": "x"})
    assert reply.status == 400, reply.text
    assert all(rule["a"] != "evil\n" for rule in api.get("/v1/conflicts").body["rules"])
