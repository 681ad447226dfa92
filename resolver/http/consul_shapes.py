"""Consul's JSON shapes, built from one pilotfish snapshot.

Tools that discover through Consul's HTTP API (Prometheus, Traefik, consul-template,
Fabio, py-consul) decode these bodies into Consul's Go structs, where a wrong type is a
hard error: `Port` is a number, `Meta` a map of strings, a node's `TaggedAddresses` a
map of strings and a service's a map of {Address, Port} objects. The field sets are
those Consul's server writes (agent/structs: Node, NodeService, HealthCheck,
ServiceNode; the agent endpoints' AgentService), in the same order.

How pilotfish maps onto Consul:
- Every node carries Consul's `serfHealth` node check, passing while the node is up,
  so an instance without checks of its own is passing for `?passing` and for the
  clients' AggregatedStatus(), as on a Consul agent.
- Each pilotfish check is a service check with its latest status and output.
- Instance maintenance is the critical `_service_maintenance:<id>` check and node
  maintenance the critical `_node_maintenance` node check, as Consul writes them.
- Only discoverable instances exist for Consul's clients.
- pilotfish keeps no Raft index per record, so CreateIndex and ModifyIndex are 1: a
  body changes only when its content does (watchers that compare bodies stay quiet),
  and the index to block on is the X-Consul-Index header.

Everything here is a pure function of (snapshot, datacenter): no I/O, no clock. The
routes cache what it builds in the snapshot's memo, once per catalog change.
"""

from __future__ import annotations

import uuid
from typing import Any, Iterable

from registry.snapshot import Snapshot
from registry.model import CheckKind, CheckSpec, CheckState, Entry, Instance, Status

JSON = dict[str, Any]
NodeMeta = tuple[tuple[str, str], ...]

RAFT_INDEX = 1
# What every Consul agent's node carries; `?node-meta=consul-network-segment:` matches it.
NODE_META = {"consul-network-segment": ""}
SERF_HEALTH = "serfHealth"
NODE_MAINTENANCE = "_node_maintenance"
SERVICE_MAINTENANCE = "_service_maintenance:"
NODE_MAINTENANCE_DEFAULT = (
    "Maintenance mode is enabled for this node, but no reason was provided. This is a default message."
)
SERVICE_MAINTENANCE_DEFAULT = (
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
)
# Consul's names for the check kinds: an exec check is its "script" check, and its
# "os_service" check watches a unit of the host's service manager (systemd on Linux).
CHECK_TYPES = {
    CheckKind.TCP: "tcp",
    CheckKind.HTTP: "http",
    CheckKind.TTL: "ttl",
    CheckKind.EXEC: "script",
    CheckKind.SYSTEMD: "os_service",
}
# The states /v1/health/state/<state> knows; any other answers an empty list, as Consul's does.
CHECK_STATES = ("any", "passing", "warning", "critical")
# A plain service's empty connect-proxy settings, as Consul writes them on every service.
EMPTY_PROXY: JSON = {"Mode": "", "MeshGateway": {}, "Expose": {}}
NODE_ID_NAMESPACE = uuid.UUID("5b0f3f6e-8e3a-4f57-9d5e-0c1a2b3c4d5e")


def node_id(name: str) -> str:
    """A stable UUID per node name: Consul's node IDs are UUIDs, and clients key on them."""
    return str(uuid.uuid5(NODE_ID_NAMESPACE, name))


def go_duration(seconds: float) -> str:
    """Seconds as Go's time.Duration.String() writes them ("10s", "1m30s", "500ms").

    Consul's clients parse durations in check definitions with Go's ParseDuration.
    """
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _decimal(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: int, size: int) -> str:
    whole, fraction = divmod(value, size)
    if not fraction:
        return str(whole)
    digits = str(fraction).rjust(len(str(size)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def node_meta_matches(wanted: NodeMeta) -> bool:
    """`?node-meta=k:v` filters; every node carries NODE_META, so all match or none do."""
    return all(NODE_META.get(key) == value for key, value in wanted)


# -- nodes ---------------------------------------------------------------------


def _family(address: str) -> str:
    return "ipv6" if ":" in address else "ipv4"


def node_address(snapshot: Snapshot, name: str) -> str:
    node = snapshot.nodes.get(name)
    return node.address if node is not None else ""


def node_json(snapshot: Snapshot, name: str, datacenter: str) -> JSON:
    """Consul's Node: the node an instance runs on."""
    address = node_address(snapshot, name)
    family = _family(address)
    return {
        "ID": node_id(name),
        "Node": name,
        "Address": address,
        "Datacenter": datacenter,
        "TaggedAddresses": {"lan": address, f"lan_{family}": address, "wan": address, f"wan_{family}": address},
        "Meta": dict(NODE_META),
        "CreateIndex": RAFT_INDEX,
        "ModifyIndex": RAFT_INDEX,
    }


def node_checks(snapshot: Snapshot, name: str) -> list[JSON]:
    """The node-level checks: serfHealth, plus _node_maintenance while the node is drained.

    Draining, maintenance and offline all drain the node, so all three are Consul's
    node maintenance; the agent answering them is alive all along.
    """
    node = snapshot.nodes.get(name)
    serf = _check(name, SERF_HEALTH, "Serf Health Status", "passing", output="Agent alive and reachable")
    checks = [serf]
    if node is not None and node.state.drains:
        notes = node.reason or NODE_MAINTENANCE_DEFAULT
        checks.append(
            _check(name, NODE_MAINTENANCE, "Node Maintenance Mode", "critical", notes=notes, type_="maintenance")
        )
    return checks


# -- services ------------------------------------------------------------------


def service_address(instance: Instance) -> str:
    """Empty when the instance uses its node's address: Consul's clients then take the node's."""
    return "" if instance.address_is_node else instance.address


def _service_tagged(address: str, port: int) -> JSON:
    # Consul's agent adds these two to every service registered with an address.
    family = _family(address)
    return {f"lan_{family}": {"Address": address, "Port": port}, f"wan_{family}": {"Address": address, "Port": port}}


def _weights(instance: Instance) -> JSON:
    return {"Passing": instance.weight, "Warning": 1}


def service_json(instance: Instance) -> JSON:
    """Consul's NodeService: the `Service` of a /v1/health/service row."""
    address = service_address(instance)
    out: JSON = {"ID": instance.id, "Service": instance.name, "Tags": list(instance.tags), "Address": address}
    if address:
        out["TaggedAddresses"] = _service_tagged(address, instance.port)
    out.update(
        Meta=dict(instance.meta),
        Port=instance.port,
        Weights=_weights(instance),
        EnableTagOverride=False,
        Proxy=EMPTY_PROXY,
        Connect={},
        PeerName="",
        CreateIndex=RAFT_INDEX,
        ModifyIndex=RAFT_INDEX,
    )
    return out


def agent_service_json(instance: Instance, datacenter: str) -> JSON:
    """Consul's AgentService, as /v1/agent/services lists this node's services."""
    address = service_address(instance)
    out: JSON = {
        "ID": instance.id,
        "Service": instance.name,
        "Tags": list(instance.tags),
        "Meta": dict(instance.meta),
        "Port": instance.port,
        "Address": address,
    }
    if address:
        out["TaggedAddresses"] = _service_tagged(address, instance.port)
    out.update(Weights=_weights(instance), EnableTagOverride=False, Datacenter=datacenter)
    return out


def catalog_row(snapshot: Snapshot, instance: Instance, datacenter: str) -> JSON:
    """Consul's ServiceNode: one flat row of /v1/catalog/service/<name>."""
    node = node_json(snapshot, instance.node, datacenter)
    address = service_address(instance)
    out: JSON = {
        "ID": node["ID"],
        "Node": instance.node,
        "Address": node["Address"],
        "Datacenter": datacenter,
        "TaggedAddresses": node["TaggedAddresses"],
        "NodeMeta": node["Meta"],
        "ServiceKind": "",
        "ServiceID": instance.id,
        "ServiceName": instance.name,
        "ServiceTags": list(instance.tags),
        "ServiceAddress": address,
    }
    if address:
        out["ServiceTaggedAddresses"] = _service_tagged(address, instance.port)
    out.update(
        ServiceWeights=_weights(instance),
        ServiceMeta=dict(instance.meta),
        ServicePort=instance.port,
        ServiceSocketPath="",
        ServiceEnableTagOverride=False,
        ServiceProxy=EMPTY_PROXY,
        ServiceConnect={},
        ServiceLocality=None,
        CreateIndex=RAFT_INDEX,
        ModifyIndex=RAFT_INDEX,
    )
    return out


# -- checks --------------------------------------------------------------------


def _check(
    node: str,
    check_id: str,
    name: str,
    status: str,
    *,
    notes: str = "",
    output: str = "",
    service: Instance | None = None,
    type_: str = "",
    interval: str = "",
    timeout: str = "",
    definition: JSON | None = None,
) -> JSON:
    """Consul's HealthCheck; a node check has empty service fields."""
    return {
        "Node": node,
        "CheckID": check_id,
        "Name": name,
        "Status": status,
        "Notes": notes,
        "Output": output,
        "ServiceID": service.id if service is not None else "",
        "ServiceName": service.name if service is not None else "",
        "ServiceTags": list(service.tags) if service is not None else [],
        "Type": type_,
        "Interval": interval,
        "Timeout": timeout,
        "ExposedPort": 0,
        "Definition": definition if definition is not None else {},
        "CreateIndex": RAFT_INDEX,
        "ModifyIndex": RAFT_INDEX,
    }


def _definition(spec: CheckSpec) -> JSON:
    """Consul's HealthCheckDefinition: what the check runs, durations as Go writes them."""
    out: JSON = {}
    if spec.kind is not CheckKind.TTL:
        out.update(Interval=go_duration(spec.interval), Timeout=go_duration(spec.timeout))
    if spec.deregister_after is not None:
        out["DeregisterCriticalServiceAfter"] = go_duration(spec.deregister_after)
    if spec.kind is CheckKind.HTTP:
        out["HTTP"] = spec.target
        if spec.tls_skip_verify:
            out["TLSSkipVerify"] = True
        if spec.headers:
            out["Header"] = {key: [value] for key, value in spec.headers.items()}
        out["Method"] = spec.method
    elif spec.kind is CheckKind.TCP:
        out["TCP"] = spec.target
    elif spec.kind is CheckKind.SYSTEMD:
        out["OSService"] = spec.target
    elif spec.kind is CheckKind.EXEC:
        out["ScriptArgs"] = list(spec.argv)
    elif spec.kind is CheckKind.TTL:
        # Consul writes this one as Go's integer nanoseconds.
        out["TTL"] = round((spec.ttl or 0.0) * 1e9)
    return out


def service_check(instance: Instance, spec: CheckSpec, state: CheckState | None) -> JSON:
    status = state.status.value if state is not None else Status.CRITICAL.value
    kind = CHECK_TYPES[spec.kind]
    timed = spec.kind is not CheckKind.TTL
    return _check(
        instance.node,
        spec.id,
        spec.name or f"Service '{instance.name}' check",
        status,
        output=state.output if state is not None else "",
        service=instance,
        type_=kind,
        interval=go_duration(spec.interval) if timed else "",
        timeout=go_duration(spec.timeout) if timed else "",
        definition=_definition(spec),
    )


def service_checks(snapshot: Snapshot, entry: Entry) -> list[JSON]:
    """An instance's own checks, its maintenance first (the node's are separate)."""
    instance = entry.instance
    checks = []
    node = snapshot.nodes.get(instance.node)
    node_drained = node is not None and node.state.drains
    if entry.status is Status.MAINTENANCE and not node_drained:
        notes = entry.maintenance_reason or SERVICE_MAINTENANCE_DEFAULT
        checks.append(_check(
            instance.node, SERVICE_MAINTENANCE + instance.id, "Service Maintenance Mode", "critical",
            notes=notes, service=instance, type_="maintenance",
        ))
    states = {state.check_id: state for state in entry.checks}
    checks.extend(service_check(instance, spec, states.get(spec.id)) for spec in instance.checks)
    return checks


# -- whole bodies ----------------------------------------------------------------


def discoverable(snapshot: Snapshot, name: str, tags: Iterable[str] = ()) -> list[Entry]:
    """Instances of `name` (any case) carrying every tag (any case), as Consul matches them."""
    wanted = [tag.lower() for tag in tags]
    out = []
    for entry in snapshot.entries_by_name.get(name.lower(), ()):
        instance = entry.instance
        if not instance.discoverable:
            continue
        if wanted and not all(tag in (t.lower() for t in instance.tags) for tag in wanted):
            continue
        out.append(entry)
    return out


def health_service(
    snapshot: Snapshot, datacenter: str, name: str, tags: Iterable[str], passing: bool, node_meta: NodeMeta
) -> list[JSON]:
    """/v1/health/service/<name>: [{Node, Service, Checks}], every instance unless `passing`."""
    if not node_meta_matches(node_meta):
        return []
    nodes: dict[str, tuple[JSON, list[JSON]]] = {}
    rows = []
    for entry in discoverable(snapshot, name, tags):
        node_name = entry.instance.node
        if node_name not in nodes:
            nodes[node_name] = (node_json(snapshot, node_name, datacenter), node_checks(snapshot, node_name))
        node, checks = nodes[node_name]
        all_checks = checks + service_checks(snapshot, entry)
        if passing and any(check["Status"] != "passing" for check in all_checks):
            continue
        rows.append({"Node": node, "Service": service_json(entry.instance), "Checks": all_checks})
    return rows


def catalog_service(
    snapshot: Snapshot, datacenter: str, name: str, tags: Iterable[str], node_meta: NodeMeta
) -> list[JSON]:
    """/v1/catalog/service/<name>: every instance, whatever its health (the catalog's view)."""
    if not node_meta_matches(node_meta):
        return []
    return [catalog_row(snapshot, entry.instance, datacenter) for entry in discoverable(snapshot, name, tags)]


def catalog_services(snapshot: Snapshot, node_meta: NodeMeta) -> dict[str, list[str]]:
    """/v1/catalog/services: every service name with the tags its instances carry."""
    if not node_meta_matches(node_meta):
        return {}
    out = {}
    for name in snapshot.service_names():
        tags = {tag for entry in discoverable(snapshot, name) for tag in entry.instance.tags}
        out[name] = sorted(tags)
    return out


def checks_in_state(snapshot: Snapshot, state: str, node_meta: NodeMeta) -> list[JSON]:
    """/v1/health/state/<state>: node and service checks in that state (`any`: all of them)."""
    if state not in CHECK_STATES or not node_meta_matches(node_meta):
        return []
    checks = [check for name in snapshot.nodes for check in node_checks(snapshot, name)]
    for entries in snapshot.entries_by_name.values():
        for entry in entries:
            if entry.instance.discoverable:
                checks.extend(service_checks(snapshot, entry))
    if state != "any":
        checks = [check for check in checks if check["Status"] == state]
    # Consul's state store orders checks by node, then check ID.
    return sorted(checks, key=lambda check: (check["Node"], check["CheckID"]))


def agent_services(snapshot: Snapshot, datacenter: str) -> dict[str, JSON]:
    """/v1/agent/services: this node's services keyed by ID (IDs are unique per node)."""
    local = snapshot.local_node
    return {
        entry.instance.id: agent_service_json(entry.instance, datacenter)
        for entries in snapshot.entries_by_name.values()
        for entry in entries
        if entry.instance.node == local and entry.instance.discoverable
    }


def agent_self(snapshot: Snapshot, datacenter: str, version: str) -> JSON:
    """/v1/agent/self: the fields clients read (Config.Datacenter, Config.NodeName, Member.Addr).

    Every top-level value is an object: Go clients decode this as map[string]map[string]any.
    """
    name = snapshot.local_node
    address = node_address(snapshot, name)
    return {
        "Config": {
            "Datacenter": datacenter,
            "PrimaryDatacenter": datacenter,
            "NodeName": name,
            "NodeID": node_id(name),
            "Revision": "pilotfish",
            "Server": False,
            "Version": version,
        },
        "Member": {
            "Name": name,
            "Addr": address,
            # pilotfish has no gossip port; 0 rather than a port nothing listens on.
            "Port": 0,
            "Tags": {"dc": datacenter, "id": node_id(name), "role": "node", "build": f"{version}:pilotfish"},
            "Status": 1,
            "ProtocolMin": 1,
            "ProtocolMax": 5,
            "ProtocolCur": 2,
            "DelegateMin": 2,
            "DelegateMax": 5,
            "DelegateCur": 4,
        },
        "Meta": dict(NODE_META),
    }


def leader(snapshot: Snapshot, port: str) -> str:
    """/v1/status/leader: "address:port" of this daemon, the one writer of its catalog."""
    address = node_address(snapshot, snapshot.local_node)
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
