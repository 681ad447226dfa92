"""The Consul-compatible reads over real HTTP: headers, parameters, errors, shapes, health mapping."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from consulkit import (
    AGENT_SELF,
    AGENT_SERVICES,
    CATALOG_SERVICE_ROWS,
    CATALOG_SERVICES,
    HEALTH_CHECKS,
    HEALTH_SERVICE_ROWS,
    LEADER,
    SERVICE_ENTRY,
    GoTypeError,
    aggregated_status,
    decode,
)
from registry.model import CheckState, Status
from resolver.http.reads import MEMO_LIMIT
from apikit import ApiServer
from conftest import Reply, holds_for

WEB = """\
services:
  - {name: web, id: web-1, port: 8080, tags: [blue, v1], meta: {team: edge}}
  - {name: web, id: web-2, port: 8081, address: 10.0.0.7, tags: [green], weight: 3}
  - {name: web, id: web-hidden, port: 8089, discoverable: false}
"""
CHECKED = """\
name: api
id: api-1
port: 9000
address: fd00::9
checks:
  - {id: api-http, http: "http://127.0.0.1:1/health", interval: 90s, timeout: 1500ms, headers: {X-Probe: "1"},
     deregister_after: 1h}
  - {id: api-ttl, ttl: 30s}
  - {id: api-exec, exec: [/bin/true, "--quiet"], interval: 1s}
  - {id: api-unit, systemd: api.service, interval: 10s}
"""
CONSUL_HEADERS = ("X-Consul-Index", "X-Consul-KnownLeader", "X-Consul-LastContact")
# Consul's server writes these fields, in this order (agent/structs: Node, NodeService,
# HealthCheck, ServiceNode; the agent endpoint's AgentService).
NODE_FIELDS = ["ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta", "CreateIndex", "ModifyIndex"]
SERVICE_FIELDS = [
    "ID", "Service", "Tags", "Address", "TaggedAddresses", "Meta", "Port", "Weights", "EnableTagOverride", "Proxy",
    "Connect", "PeerName", "CreateIndex", "ModifyIndex",
]
CHECK_FIELDS = [
    "Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName", "ServiceTags", "Type",
    "Interval", "Timeout", "ExposedPort", "Definition", "CreateIndex", "ModifyIndex",
]
CATALOG_FIELDS = [
    "ID", "Node", "Address", "Datacenter", "TaggedAddresses", "NodeMeta", "ServiceKind", "ServiceID", "ServiceName",
    "ServiceTags", "ServiceAddress", "ServiceTaggedAddresses", "ServiceWeights", "ServiceMeta", "ServicePort",
    "ServiceSocketPath", "ServiceEnableTagOverride", "ServiceProxy", "ServiceConnect", "ServiceLocality",
    "CreateIndex", "ModifyIndex",
]
AGENT_SERVICE_FIELDS = [
    "ID", "Service", "Tags", "Meta", "Port", "Address", "TaggedAddresses", "Weights", "EnableTagOverride", "Datacenter",
]


@pytest.fixture
def served(api: ApiServer) -> ApiServer:
    api.apply_yaml("/srv/web.yaml", WEB)
    return api


def assert_consul_headers(reply: Reply, index: int) -> None:
    for header in CONSUL_HEADERS:
        assert header in reply.headers, (header, reply.status, reply.text)
    assert reply.headers["X-Consul-Index"] == str(index)
    assert reply.headers["X-Consul-KnownLeader"] == "true"
    assert reply.headers["X-Consul-LastContact"] == "0"


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(row["Service"]["ID"] for row in rows)


# -- every answer carries Consul's headers -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/agent/self", 200),
        ("GET", "/v1/agent/services", 200),
        ("GET", "/v1/status/leader", 200),
        ("GET", "/v1/catalog/services", 200),
        ("GET", "/v1/catalog/service/web", 200),
        ("GET", "/v1/catalog/service/nosuch", 200),
        ("GET", "/v1/health/service/web?passing", 200),
        ("GET", "/v1/health/service/nosuch", 200),
        ("GET", "/v1/health/state/any", 200),
        ("GET", "/v1/health/service/web?wait=soon&index=1", 400),
        ("GET", "/v1/health/service/web?dc=elsewhere", 400),
        ("GET", "/v1/kv/config/app", 405),
        ("GET", "/v1/agent/service/web-1", 405),
        ("GET", "/v1/catalog/nodes", 405),
        ("PUT", "/v1/agent/service/register", 405),
        ("PUT", "/v1/catalog/services", 405),
        ("DELETE", "/v1/kv/config/app", 405),
        ("POST", "/v1/query", 405),
    ],
)
def test_every_answer_carries_consul_headers(served: ApiServer, method: str, path: str, status: int) -> None:
    reply = served.request(method, path)
    assert reply.status == status, reply.text
    assert_consul_headers(reply, served.catalog.current.index)
    if status == 200:
        assert reply.headers["Content-Type"] == "application/json"
    else:
        # Consul's clients show an error body as it is: plain text, as Consul writes it.
        assert reply.headers["Content-Type"].startswith("text/plain")
        assert reply.text and not reply.text.startswith("{")


def test_an_unknown_service_is_an_empty_list(served: ApiServer) -> None:
    for path in ("/v1/health/service/nosuch", "/v1/catalog/service/nosuch"):
        reply = served.get(path)
        assert (reply.status, reply.body) == (200, [])


def test_pilotfish_own_routes_keep_their_shape(served: ApiServer) -> None:
    missing = served.get("/v1/config/nosuch")
    assert missing.status == 404 and missing.error["code"] == "not_found"
    assert "X-Consul-Index" not in missing.headers
    assert served.get("/v1/status").status == 200


# -- query parameters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "status", "text"),
    [
        ("stale", 200, None),
        ("stale=&wait=120000ms", 200, None),
        ("stale=1&cached", 200, None),
        ("consistent=", 200, None),
        ("cached=&wait=10s", 200, None),
        ("index=0&wait=1m30s", 200, None),
        ("dc=dc1", 200, None),
        ("near=_agent&token=x&pretty", 200, None),
        ("ns=default&partition=default", 200, None),
        ("passing=true", 200, None),
        ("passing=0", 200, None),
        ("wait=10", 400, "Invalid wait time"),
        ("wait=ten%20seconds", 400, "Invalid wait time"),
        ("index=-1", 400, "Invalid index"),
        ("index=1.5", 400, "Invalid index"),
        ("index=18446744073709551616", 400, "Invalid index"),
        ("index=%EF%BC%91", 400, "Invalid index"),
        ("index=" + "9" * 5000, 400, "Invalid index"),
        # Repeated: which one would count is a guess (found by schemathesis on /v1/health/state).
        ("index=&index=2", 400, "Invalid index"),
        ("wait=1s&wait=2s", 400, "Invalid wait time"),
        ("passing=yes", 400, "Invalid value for ?passing"),
        ("stale&consistent", 400, "Cannot specify ?stale with ?consistent, conflicting semantics."),
        ("cached&consistent", 400, "Cannot specify ?cached with ?consistent, conflicting semantics."),
        ("max_stale=x", 400, 'Invalid max_stale value "x"'),
        ("dc=dc2", 400, "No path to datacenter"),
        ("ns=team-a", 400, 'Bad request: Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature'),
        ("partition=p", 400, 'Bad request: Invalid query parameter: "partition" - Partitions are a Consul Enterprise'),
        ("peer=other", 400, 'Bad request: Invalid query parameter: "peer" - cluster peering is not served'),
        ("filter=Service.Port%20%3D%3D%208080", 400, 'Bad request: Invalid query parameter: "filter" - filter expressions'),
        ("pasing=1", 400, 'Bad request: Invalid query parameter: "pasing" - not a parameter of this endpoint'),
        ("status=any", 400, 'Bad request: Invalid query parameter: "status"'),
    ],
)
def test_query_parameters(served: ApiServer, query: str, status: int, text: str | None) -> None:
    reply = served.get(f"/v1/health/service/web?{query}")
    assert reply.status == status, reply.text
    if text is not None:
        assert reply.text.startswith(text)


def test_each_route_takes_its_own_parameters(served: ApiServer) -> None:
    assert served.get("/v1/catalog/service/web?tag=blue").status == 200
    refused = served.get("/v1/catalog/service/web?passing")
    assert refused.status == 400 and '"passing"' in refused.text
    assert served.get("/v1/catalog/services?tag=blue").status == 400


def test_an_echoed_parameter_name_is_cut(served: ApiServer) -> None:
    reply = served.get("/v1/catalog/services?" + "x" * 5000 + "=1")
    assert reply.status == 400 and len(reply.text) < 400


def test_tags_and_names_match_in_any_case(served: ApiServer) -> None:
    assert ids(served.get("/v1/health/service/WEB?tag=BLUE").body) == ["web-1"]
    assert ids(served.get("/v1/health/service/web?tag=blue&tag=v1").body) == ["web-1"]
    assert served.get("/v1/health/service/web?tag=blue&tag=green").body == []


def test_node_meta_filters_nodes(served: ApiServer) -> None:
    assert ids(served.get("/v1/health/service/web?node-meta=consul-network-segment:").body) == ["web-1", "web-2"]
    assert served.get("/v1/health/service/web?node-meta=rack:r1").body == []
    assert served.get("/v1/catalog/services?node-meta=rack:r1").body == {}


# -- blocking ------------------------------------------------------------------------------


def test_blocking_query_waits_for_a_change(served: ApiServer) -> None:
    first = served.get("/v1/health/service/web")
    index = int(first.headers["X-Consul-Index"])
    replies: list[Reply] = []
    waiter = threading.Thread(
        target=lambda: replies.append(served.get(f"/v1/health/service/web?index={index}&wait=30s&stale=", timeout=40))
    )
    waiter.start()
    holds_for(lambda: not replies, 0.3, "parked until something changes")
    served.apply_yaml("/srv/web3.yaml", "name: web\nid: web-3\nport: 8083\n")
    waiter.join(10)
    assert replies and replies[0].status == 200
    assert int(replies[0].headers["X-Consul-Index"]) > index
    assert ids(replies[0].body) == ["web-1", "web-2", "web-3"]


@pytest.mark.parametrize("wait", ["300ms", "0.3s"])
def test_blocking_query_times_out_with_the_same_index(served: ApiServer, wait: str) -> None:
    index = served.catalog.current.index
    started = time.monotonic()
    reply = served.get(f"/v1/catalog/services?index={index}&wait={wait}")
    elapsed = time.monotonic() - started
    assert reply.status == 200 and reply.headers["X-Consul-Index"] == str(index)
    assert 0.25 < elapsed < 5  # jitter only shortens the wait, by at most a sixteenth


def test_agent_endpoints_do_not_block(served: ApiServer) -> None:
    """Consul's agent endpoints ignore `index`; a watcher polling them must not hang."""
    index = served.catalog.current.index
    started = time.monotonic()
    assert served.get(f"/v1/agent/services?index={index}&wait=30s").status == 200
    assert time.monotonic() - started < 5


# -- shapes and types ----------------------------------------------------------------------


def test_health_rows_have_consul_fields_and_go_types(served: ApiServer) -> None:
    served.apply_yaml("/srv/api.yaml", CHECKED)
    rows = served.get("/v1/health/service/web").body
    decode(rows, HEALTH_SERVICE_ROWS)
    assert ids(rows) == ["web-1", "web-2"]
    by_id = {row["Service"]["ID"]: row for row in rows}
    one, two = by_id["web-1"], by_id["web-2"]
    assert list(one["Node"]) == NODE_FIELDS
    assert one["Node"]["TaggedAddresses"] == {"lan": "10.0.0.1", "lan_ipv4": "10.0.0.1", "wan": "10.0.0.1", "wan_ipv4": "10.0.0.1"}
    assert one["Node"]["Meta"] == {"consul-network-segment": ""}
    # An instance on its node's address leaves Service.Address empty, as Consul does; clients take the node's.
    assert [f for f in SERVICE_FIELDS if f != "TaggedAddresses"] == list(one["Service"])
    assert (one["Service"]["Address"], one["Service"]["Port"], one["Service"]["Meta"]) == ("", 8080, {"team": "edge"})
    assert list(two["Service"]) == SERVICE_FIELDS
    assert two["Service"]["TaggedAddresses"] == {
        "lan_ipv4": {"Address": "10.0.0.7", "Port": 8081}, "wan_ipv4": {"Address": "10.0.0.7", "Port": 8081},
    }
    assert two["Service"]["Weights"] == {"Passing": 3, "Warning": 1}
    [serf] = one["Checks"]
    assert list(serf) == CHECK_FIELDS
    assert (serf["CheckID"], serf["Status"], serf["ServiceID"], serf["Definition"]) == ("serfHealth", "passing", "", {})

    [api_row] = served.get("/v1/health/service/api").body
    assert api_row["Service"]["TaggedAddresses"]["lan_ipv6"] == {"Address": "fd00::9", "Port": 9000}
    checks = {check["CheckID"]: check for check in api_row["Checks"]}
    assert checks["api-http"]["Type"] == "http"
    assert checks["api-http"]["Definition"] == {
        "Interval": "1m30s", "Timeout": "1.5s", "DeregisterCriticalServiceAfter": "1h0m0s",
        "HTTP": "http://127.0.0.1:1/health", "Header": {"X-Probe": ["1"]}, "Method": "GET",
    }
    assert (checks["api-http"]["Interval"], checks["api-http"]["Timeout"]) == ("1m30s", "1.5s")
    assert checks["api-ttl"]["Type"] == "ttl" and checks["api-ttl"]["Interval"] == ""
    assert checks["api-ttl"]["Definition"] == {"TTL": 30_000_000_000}
    assert checks["api-exec"]["Type"] == "script"
    assert checks["api-exec"]["Definition"]["ScriptArgs"] == ["/bin/true", "--quiet"]
    assert checks["api-unit"]["Type"] == "os_service"
    assert checks["api-unit"]["Definition"]["OSService"] == "api.service"
    assert {c["Status"] for cid, c in checks.items() if cid != "serfHealth"} == {"critical"}  # never run yet
    assert all(c["ServiceTags"] == [] for c in checks.values())


def test_catalog_agent_and_state_shapes(served: ApiServer) -> None:
    served.apply_yaml("/srv/api.yaml", CHECKED)
    rows = served.get("/v1/catalog/service/web").body
    decode(rows, CATALOG_SERVICE_ROWS)
    by_id = {row["ServiceID"]: row for row in rows}
    assert list(by_id["web-2"]) == CATALOG_FIELDS
    assert [f for f in CATALOG_FIELDS if f != "ServiceTaggedAddresses"] == list(by_id["web-1"])
    assert by_id["web-1"]["ServicePort"] == 8080 and by_id["web-1"]["Address"] == "10.0.0.1"
    services = served.get("/v1/catalog/services").body
    decode(services, CATALOG_SERVICES)
    assert services == {"api": [], "web": ["blue", "green", "v1"]}
    agent = served.get("/v1/agent/services").body
    decode(agent, AGENT_SERVICES)
    assert sorted(agent) == ["api-1", "web-1", "web-2"]
    assert list(agent["web-2"]) == AGENT_SERVICE_FIELDS and agent["web-2"]["Datacenter"] == "dc1"
    me = served.get("/v1/agent/self").body
    decode(me, AGENT_SELF)
    assert (me["Config"]["Datacenter"], me["Config"]["NodeName"], me["Member"]["Addr"]) == ("dc1", "node1", "10.0.0.1")
    leader = served.get("/v1/status/leader").body
    decode(leader, LEADER)
    assert leader == f"10.0.0.1:{served.port}"
    for state in ("any", "passing", "warning", "critical", "nosuch"):
        decode(served.get(f"/v1/health/state/{state}").body, HEALTH_CHECKS)
    critical = served.get("/v1/health/state/critical").body
    assert sorted(c["CheckID"] for c in critical) == ["api-exec", "api-http", "api-ttl", "api-unit"]
    passing = served.get("/v1/health/state/passing").body
    assert [(c["Node"], c["CheckID"]) for c in passing] == [("node1", "serfHealth")]
    assert served.get("/v1/health/state/nosuch").body == []


def test_the_decoder_refuses_what_go_refuses() -> None:
    """The checker the client tests lean on: each of these fails Go's decoder (or would hide a bug)."""
    good = {"Node": {"Node": "n", "TaggedAddresses": {"lan": "10.0.0.1"}}, "Service": {"Port": 80, "Meta": {"a": "b"}},
            "Checks": []}
    decode(good, SERVICE_ENTRY)
    for bad in (
        {"Service": {"Port": "80"}},
        {"Service": {"Port": 80.5}},
        {"Service": {"Meta": {"a": 1}}},
        {"Service": {"Tags": None}},
        {"Service": {"TaggedAddresses": {"lan": "10.0.0.1"}}},
        {"Node": {"TaggedAddresses": {"lan": {"Address": "10.0.0.1", "Port": 1}}}},
        {"Checks": [{"Definition": {"Interval": ""}}]},
        {"Checks": [{"CreateIndex": -1}]},
        {"Service": {"port": 80}},
    ):
        with pytest.raises(GoTypeError):
            decode(bad, SERVICE_ENTRY)


# -- health mapping ------------------------------------------------------------------------


def test_instance_maintenance_is_consuls_service_maintenance_check(served: ApiServer) -> None:
    reply = served.put("/v1/services/web-1/maintenance", {"enable": True, "reason": "disk swap"})
    assert reply.status == 200, reply.text
    rows = {row["Service"]["ID"]: row for row in served.get("/v1/health/service/web").body}
    maintenance = [c for c in rows["web-1"]["Checks"] if c["CheckID"] == "_service_maintenance:web-1"]
    assert [(c["Status"], c["Notes"], c["ServiceID"], c["Type"]) for c in maintenance] == [
        ("critical", "disk swap", "web-1", "maintenance"),
    ]
    assert aggregated_status(rows["web-1"]["Checks"]) == "maintenance"
    assert ids(served.get("/v1/health/service/web?passing").body) == ["web-2"]
    # The catalog lists it still, whatever its health.
    assert len(served.get("/v1/catalog/service/web").body) == 2


@pytest.mark.parametrize("kind", ["immediate", "draining"])
def test_node_maintenance_is_consuls_node_maintenance_check(served: ApiServer, kind: str) -> None:
    # A draining node is drained already: Consul's clients see its maintenance at once.
    reply = served.put("/v1/node/maintenance", {"enable": True, "kind": kind, "reason": "kernel upgrade"})
    assert reply.status == 200 and reply.body["state"] == {"immediate": "maintenance", "draining": "draining"}[kind]
    rows = served.get("/v1/health/service/web").body
    for row in rows:
        node_checks = [(c["CheckID"], c["Status"], c["Notes"]) for c in row["Checks"] if not c["ServiceID"]]
        assert node_checks == [("serfHealth", "passing", ""), ("_node_maintenance", "critical", "kernel upgrade")]
        assert aggregated_status(row["Checks"]) == "maintenance"
    assert served.get("/v1/health/service/web?passing").body == []
    states = served.get("/v1/health/state/critical").body
    assert [(c["Node"], c["CheckID"]) for c in states] == [("node1", "_node_maintenance")]


def test_an_instance_without_checks_is_passing_through_serf_health(served: ApiServer) -> None:
    [row] = served.get("/v1/health/service/web?tag=green&passing=1").body
    assert [c["CheckID"] for c in row["Checks"]] == ["serfHealth"]
    assert aggregated_status(row["Checks"]) == "passing"


def test_warning_is_not_passing(served: ApiServer) -> None:
    served.apply_yaml("/srv/job.yaml", "name: job\nid: job-1\nport: 7000\nchecks: [{id: job-ttl, ttl: 30s}]\n")
    instance = served.catalog.instance("job-1")
    assert instance is not None
    served.call(lambda: served.catalog.set_check_state(instance, CheckState("job-ttl", Status.WARNING, "slow")))
    [row] = served.get("/v1/health/service/job").body
    assert aggregated_status(row["Checks"]) == "warning"
    assert [(c["Status"], c["Output"]) for c in row["Checks"] if c["CheckID"] == "job-ttl"] == [("warning", "slow")]
    assert served.get("/v1/health/service/job?passing").body == []


# -- what is not served --------------------------------------------------------------------


def test_writes_and_unserved_areas_answer_405_pointing_at_pilotfish(api_with_token: ApiServer) -> None:
    """Even with a token configured: a Consul client gets Consul's refusal, not pilotfish's 401."""
    register = api_with_token.put("/v1/agent/service/register", {"Name": "web", "Port": 80})
    assert register.status == 405
    assert register.headers["Allow"] == ""
    assert "POST /v1/services" in register.text and "services_dir" in register.text
    kv = api_with_token.get("/v1/kv/app/config")
    assert kv.status == 405 and "KV store" in kv.text
    write = api_with_token.request("PUT", "/v1/catalog/services")
    assert write.status == 405 and set(write.headers["Allow"].split(",")) == {"GET", "HEAD"}


# -- memo ------------------------------------------------------------------------------------


def test_bodies_are_built_once_per_snapshot_within_the_memo_bound(served: ApiServer) -> None:
    served.get("/v1/health/service/web")
    memo = served.catalog.current.memo
    [key] = [k for k in memo if k[:4] == ("http", "consul", "health", "web")]
    body = memo[key]
    served.get("/v1/health/service/web")
    assert served.catalog.current.memo[key] is body
    for n in range(MEMO_LIMIT + 200):
        served.get(f"/v1/health/service/nosuch-{n}")
    assert len(served.catalog.current.memo) <= MEMO_LIMIT + 10
    assert served.get("/v1/health/service/web").status == 200


def test_a_change_elsewhere_keeps_a_body_and_a_change_of_its_own_rebuilds_it(served: ApiServer) -> None:
    """In a fleet the catalog changes many times a second: a service's body is built once per change of its own."""
    first = served.get("/v1/health/service/web").body
    key = next(k for k in served.catalog.current.memo if k[:4] == ("http", "consul", "health", "web"))
    body = served.catalog.current.memo[key]
    served.apply_yaml("/srv/other.yaml", "name: other\nport: 9000\n")
    assert served.get("/v1/health/service/web").body == first
    assert served.catalog.current.memo[key] is body
    served.apply_yaml("/srv/web.yaml", WEB.replace("port: 8081", "port: 8091"))
    ports = sorted(row["Service"]["Port"] for row in served.get("/v1/health/service/web").body)
    assert ports == [8080, 8091]
