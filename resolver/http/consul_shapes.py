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
from typing import Iterable

from registry.model import Entry, Instance
from registry.snapshot import Snapshot
from resolver.http.consul_checks import CHECK_STATES, JSON, RAFT_INDEX, node_checks, service_checks

NodeMeta = tuple[tuple[str, str], ...]

# What every Consul agent's node carries; `?node-meta=consul-network-segment:` matches it.
NODE_META = {"consul-network-segment": ""}
# A plain service's empty connect-proxy settings, as Consul writes them on every service.
EMPTY_PROXY: JSON = {"Mode": "", "MeshGateway": {}, "Expose": {}}
NODE_ID_NAMESPACE = uuid.UUID("5b0f3f6e-8e3a-4f57-9d5e-0c1a2b3c4d5e")


def node_id(name: str) -> str:
    """A stable UUID per node name: Consul's node IDs are UUIDs, and clients key on them."""
    return str(uuid.uuid5(NODE_ID_NAMESPACE, name))


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
