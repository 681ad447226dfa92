"""Consul's health checks, built from pilotfish's: node, service and maintenance checks.

Consul's clients filter on these (`?passing`, AggregatedStatus()) and decode their
definitions with Go's types, so durations are written as Go writes them. How our
states map onto them is told in resolver/http/consul_shapes.py, which builds the
bodies that carry them.
"""

from __future__ import annotations

from typing import Any

from registry.model import CheckKind, CheckSpec, CheckState, Entry, Instance, Status
from registry.snapshot import Snapshot

JSON = dict[str, Any]
# pilotfish keeps no Raft index per record (see consul_shapes).
RAFT_INDEX = 1
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
