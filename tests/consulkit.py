"""Consul's clients, reproduced for the tests: Go's types and Prometheus's requests.

`decode(value, TYPE)` checks a JSON answer against the Go structs of
github.com/hashicorp/consul/api (api/catalog.go, api/health.go, api/agent.go) that
Prometheus, Traefik and consul-template decode into. A value of the wrong type for its
field is an error, as it is for Go's encoding/json, which then fails the whole answer.
It is stricter than Go where Go would hide our mistakes: a field name must match in
case, null is refused except for pointer fields, and an integer field takes integers
within the Go type's range only. Unknown fields are ignored, as Go ignores them.

`PrometheusConsulSD` sends the requests of Prometheus's discovery/consul/consul.go,
byte for byte in path and query: the Go client builds the query with url.Values'
Encode, which sorts the keys (`index=5&stale=&wait=120000ms`), and reads the headers
with parseQueryMeta's rules.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any


class GoTypeError(AssertionError):
    """What Go's decoder (or a stricter one) refuses, with the JSON path of the value."""


@dataclass(frozen=True)
class Scalar:
    name: str
    low: int = 0
    high: int = 0


@dataclass(frozen=True)
class Slice:
    item: Any


@dataclass(frozen=True)
class Map:
    value: Any


@dataclass(frozen=True)
class Ptr:
    target: Any


@dataclass(frozen=True)
class Struct:
    name: str
    fields: dict[str, Any] = field(default_factory=dict)


STRING = Scalar("string")
BOOL = Scalar("bool")
INT = Scalar("int", -(2**63), 2**63 - 1)
UINT64 = Scalar("uint64", 0, 2**64 - 1)
UINT16 = Scalar("uint16", 0, 2**16 - 1)
UINT8 = Scalar("uint8", 0, 2**8 - 1)
ANY = Scalar("interface{}")
# api.ReadableDuration: a string that time.ParseDuration takes, or a number of nanoseconds.
DURATION = Scalar("ReadableDuration")
_GO_DURATION = re.compile(r"[-+]?(?:0|(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)")

LOCALITY = Struct("Locality", {"Region": STRING, "Zone": STRING})
WEIGHTS = Struct("AgentWeights", {"Passing": INT, "Warning": INT})
SERVICE_ADDRESS = Struct("ServiceAddress", {"Address": STRING, "Port": INT})
NODE = Struct("Node", {
    "ID": STRING, "Node": STRING, "Address": STRING, "Datacenter": STRING, "TaggedAddresses": Map(STRING),
    "Meta": Map(STRING), "CreateIndex": UINT64, "ModifyIndex": UINT64, "Partition": STRING, "PeerName": STRING,
    "Locality": Ptr(LOCALITY),
})
PROXY = Struct("AgentServiceConnectProxyConfig", {
    "DestinationServiceName": STRING, "DestinationServiceID": STRING, "LocalServiceAddress": STRING,
    "LocalServicePort": INT, "LocalServiceSocketPath": STRING, "Mode": STRING, "Config": Map(ANY),
    "Upstreams": Slice(Struct("Upstream")), "MeshGateway": Struct("MeshGatewayConfig", {"Mode": STRING}),
    "Expose": Struct("ExposeConfig", {"Checks": BOOL, "Paths": Slice(Struct("ExposePath"))}),
})
CONNECT = Struct("AgentServiceConnect", {"Native": BOOL, "SidecarService": Ptr(Struct("AgentServiceRegistration"))})
AGENT_SERVICE = Struct("AgentService", {
    "Kind": STRING, "ID": STRING, "Service": STRING, "Tags": Slice(STRING), "Meta": Map(STRING), "Port": INT,
    "Address": STRING, "SocketPath": STRING, "TaggedAddresses": Map(SERVICE_ADDRESS), "Weights": WEIGHTS,
    "EnableTagOverride": BOOL, "CreateIndex": UINT64, "ModifyIndex": UINT64, "ContentHash": STRING,
    "Proxy": Ptr(PROXY), "Connect": Ptr(CONNECT), "PeerName": STRING, "Namespace": STRING, "Partition": STRING,
    "Datacenter": STRING, "Locality": Ptr(LOCALITY),
})
DEFINITION = Struct("HealthCheckDefinition", {
    "HTTP": STRING, "Header": Map(Slice(STRING)), "Method": STRING, "Body": STRING, "TLSServerName": STRING,
    "TLSSkipVerify": BOOL, "TCP": STRING, "TCPUseTLS": BOOL, "UDP": STRING, "GRPC": STRING, "OSService": STRING,
    "GRPCUseTLS": BOOL, "IntervalDuration": ANY, "TimeoutDuration": ANY, "DeregisterCriticalServiceAfterDuration": ANY,
    "Interval": DURATION, "Timeout": DURATION, "DeregisterCriticalServiceAfter": DURATION,
})
HEALTH_CHECK = Struct("HealthCheck", {
    "Node": STRING, "CheckID": STRING, "Name": STRING, "Status": STRING, "Notes": STRING, "Output": STRING,
    "ServiceID": STRING, "ServiceName": STRING, "ServiceTags": Slice(STRING), "Type": STRING, "Namespace": STRING,
    "Partition": STRING, "ExposedPort": INT, "PeerName": STRING, "Definition": DEFINITION,
    "CreateIndex": UINT64, "ModifyIndex": UINT64,
})
SERVICE_ENTRY = Struct("ServiceEntry", {
    "Node": Ptr(NODE), "Service": Ptr(AGENT_SERVICE), "Checks": Slice(Ptr(HEALTH_CHECK)),
})
CATALOG_SERVICE = Struct("CatalogService", {
    "ID": STRING, "Node": STRING, "Address": STRING, "Datacenter": STRING, "TaggedAddresses": Map(STRING),
    "NodeMeta": Map(STRING), "ServiceID": STRING, "ServiceName": STRING, "ServiceAddress": STRING,
    "ServiceTaggedAddresses": Map(SERVICE_ADDRESS), "ServiceTags": Slice(STRING), "ServiceMeta": Map(STRING),
    "ServicePort": INT, "ServiceWeights": WEIGHTS, "ServiceEnableTagOverride": BOOL, "ServiceProxy": Ptr(PROXY),
    "ServiceLocality": Ptr(LOCALITY), "CreateIndex": UINT64, "Checks": Slice(Ptr(HEALTH_CHECK)),
    "ModifyIndex": UINT64, "Namespace": STRING, "Partition": STRING,
})
# What each client call decodes into.
AGENT_SELF = Map(Map(ANY))  # Agent().Self(): map[string]map[string]interface{}
CATALOG_SERVICES = Map(Slice(STRING))
CATALOG_SERVICE_ROWS = Slice(Ptr(CATALOG_SERVICE))
HEALTH_SERVICE_ROWS = Slice(Ptr(SERVICE_ENTRY))
HEALTH_CHECKS = Slice(Ptr(HEALTH_CHECK))
AGENT_SERVICES = Map(Ptr(AGENT_SERVICE))
LEADER = STRING


def decode(value: Any, spec: Any, at: str = "$") -> None:
    """Raise GoTypeError where `value` would not decode into `spec` (see the module docstring)."""
    if isinstance(spec, Ptr):
        if value is not None:
            decode(value, spec.target, at)
        return
    if value is None:
        raise GoTypeError(f"{at}: null where Go has a non-pointer {_name(spec)}")
    if isinstance(spec, Slice):
        _expect(isinstance(value, list), at, value, "an array")
        for i, item in enumerate(value):
            decode(item, spec.item, f"{at}[{i}]")
    elif isinstance(spec, Map):
        _expect(isinstance(value, dict), at, value, "an object")
        for key, item in value.items():
            decode(item, spec.value, f"{at}.{key}")
    elif isinstance(spec, Struct):
        _expect(isinstance(value, dict), at, value, f"an object for {spec.name}")
        for key, item in value.items():
            if key in spec.fields:
                decode(item, spec.fields[key], f"{at}.{key}")
            elif any(key.lower() == name.lower() for name in spec.fields):
                raise GoTypeError(f"{at}.{key}: {spec.name} spells this field otherwise")
    else:
        _scalar(value, spec, at)


def _scalar(value: Any, spec: Scalar, at: str) -> None:
    if spec is ANY:
        return
    if spec is STRING:
        _expect(isinstance(value, str), at, value, "a string")
    elif spec is BOOL:
        _expect(isinstance(value, bool), at, value, "true or false")
    elif spec is DURATION:
        ok = (isinstance(value, str) and _GO_DURATION.fullmatch(value) is not None) or (
            isinstance(value, (int, float)) and not isinstance(value, bool))
        _expect(ok, at, value, "a Go duration (10s, 1m30s) or nanoseconds")
    else:
        _expect(isinstance(value, int) and not isinstance(value, bool), at, value, f"an integer ({spec.name})")
        _expect(spec.low <= value <= spec.high, at, value, f"within {spec.name}")


def _expect(ok: bool, at: str, value: Any, what: str) -> None:
    if not ok:
        raise GoTypeError(f"{at}: {value!r} is not {what}")


def _name(spec: Any) -> str:
    return getattr(spec, "name", type(spec).__name__)


@dataclass(frozen=True)
class QueryMeta:
    """Go's parseQueryMeta over an answer's headers."""

    last_index: int
    last_contact_ms: int
    known_leader: bool


def query_meta(headers: http.client.HTTPMessage) -> QueryMeta:
    """As Go's client reads them: a bad X-Consul-Index or X-Consul-LastContact fails the call."""
    index_text = headers.get("X-Consul-Index", "")
    if not re.fullmatch(r"\d+", index_text) or int(index_text) >= 2**64:
        raise GoTypeError(f"Failed to parse X-Consul-Index: {index_text!r}")
    contact = headers.get("X-Consul-LastContact", "")
    if not re.fullmatch(r"\d+", contact):
        raise GoTypeError(f"Failed to parse X-Consul-LastContact: {contact!r}")
    return QueryMeta(int(index_text), int(contact), headers.get("X-Consul-KnownLeader") == "true")


@dataclass
class Answer:
    status: int
    meta: QueryMeta
    body: Any
    target: str  # the request target sent, path and query


def go_query(params: list[tuple[str, str]]) -> str:
    """url.Values.Encode: keys sorted (stably, values in the order added), QueryEscape'd."""
    ordered = sorted(params, key=lambda pair: pair[0])
    return urllib.parse.urlencode(ordered, quote_via=urllib.parse.quote_plus)


@dataclass
class PrometheusConsulSD:
    """The requests of Prometheus's Consul discovery (discovery/consul/consul.go), for one config.

    Defaults are Prometheus's: allow_stale true, a 2 minute watch ("120000ms").
    """

    server: str  # host:port
    services: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    node_meta: dict[str, str] = field(default_factory=dict)
    allow_stale: bool = True
    wait: str = "120000ms"
    timeout: float = 150.0
    sent: list[str] = field(default_factory=list)

    def _options(self, index: int) -> list[tuple[str, str]]:
        # setQueryOptions: index only when non-zero; NodeMeta as node-meta=k:v.
        params: list[tuple[str, str]] = []
        if self.allow_stale:
            params.append(("stale", ""))
        if index:
            params.append(("index", str(index)))
        params.append(("wait", self.wait))
        params.extend(("node-meta", f"{key}:{value}") for key, value in self.node_meta.items())
        return params

    def get(self, path: str, params: list[tuple[str, str]], spec: Any) -> Answer:
        target = path + (f"?{go_query(params)}" if params else "")
        self.sent.append(target)
        host, _, port = self.server.rpartition(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
        try:
            # Go's transport asks for gzip and unzips transparently; an identity answer is fine too.
            connection.request("GET", target, headers={"User-Agent": "Prometheus/3.0.0", "Accept-Encoding": "gzip"})
            response = connection.getresponse()
            raw = response.read()
            status, headers = response.status, response.headers
        finally:
            connection.close()
        if status != 200:
            raise GoTypeError(f"Unexpected response code: {status} ({raw.decode(errors='replace')})")
        body = json.loads(raw)
        decode(body, spec)
        return Answer(status, query_meta(headers), body, target)

    def datacenter(self) -> str:
        """getDatacenter: Agent().Self(), then Config.Datacenter must be a string."""
        answer = self.get("/v1/agent/self", [], AGENT_SELF)
        dc = answer.body["Config"]["Datacenter"]
        if not isinstance(dc, str):
            raise GoTypeError(f"invalid value '{dc!r}' for Config.Datacenter")
        return dc

    def catalog_services(self, index: int = 0) -> Answer:
        return self.get("/v1/catalog/services", self._options(index), CATALOG_SERVICES)

    def health_service(self, name: str, index: int = 0) -> Answer:
        # ServiceMultipleTags(name, tags, passingOnly=false, opts): a tag param per tag.
        params = self._options(index) + [("tag", tag) for tag in self.tags]
        return self.get(f"/v1/health/service/{name}", params, HEALTH_SERVICE_ROWS)

    def watched(self, catalog: dict[str, list[str]]) -> list[str]:
        """shouldWatch: the configured services (all when none), carrying every configured tag."""
        return sorted(
            name for name, tags in catalog.items()
            if (not self.services or name in self.services) and all(tag in tags for tag in self.tags)
        )

    def targets(self, answer: Answer) -> list[dict[str, str]]:
        """The labels consul.go gives each target of a health answer."""
        out = []
        for entry in answer.body:
            service, node = entry["Service"], entry["Node"]
            host = service["Address"] or node["Address"]
            address = f"[{host}]:{service['Port']}" if ":" in host else f"{host}:{service['Port']}"
            labels = {
                "__address__": address,
                "__meta_consul_address": node["Address"],
                "__meta_consul_node": node["Node"],
                "__meta_consul_tags": "," + ",".join(service["Tags"]) + ",",
                "__meta_consul_service_address": service["Address"],
                "__meta_consul_service_port": str(service["Port"]),
                "__meta_consul_service_id": service["ID"],
                "__meta_consul_health": aggregated_status(entry["Checks"]),
            }
            labels.update({f"__meta_consul_service_metadata_{k}": v for k, v in service["Meta"].items()})
            labels.update({f"__meta_consul_tagged_address_{k}": v for k, v in node["TaggedAddresses"].items()})
            out.append(labels)
        return out


def aggregated_status(checks: list[dict[str, Any]]) -> str:
    """HealthChecks.AggregatedStatus() of Consul's api: maintenance > critical > warning > passing."""
    seen = set()
    for check in checks:
        if check["CheckID"] == "_node_maintenance" or check["CheckID"].startswith("_service_maintenance:"):
            seen.add("maintenance")
            continue
        if check["Status"] not in ("passing", "warning", "critical"):
            return ""
        seen.add(check["Status"])
    for status in ("maintenance", "critical", "warning"):
        if status in seen:
            return status
    return "passing"
