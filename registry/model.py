"""The registry's vocabulary: instances, checks, health states and conflict rules.

Everything here is a frozen value. The catalog hands these objects to DNS and HTTP
readers on the hot path, so nothing in this module may perform I/O or hold a
reference back into the mutable writer state.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple

from registry.states import NodeState, Window


class Status(str, enum.Enum):
    """Health of an instance or a check, best first."""

    PASSING = "passing"
    WARNING = "warning"
    CRITICAL = "critical"
    MAINTENANCE = "maintenance"

    @property
    def severity(self) -> int:
        """Rank used to pick the worst of several check results."""
        return _SEVERITY[self]


_SEVERITY = {Status.PASSING: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.MAINTENANCE: 3}


def worst(statuses: "list[Status] | tuple[Status, ...]") -> Status:
    """An instance is as healthy as its sickest check; no checks means passing."""
    result = Status.PASSING
    for status in statuses:
        if status.severity > result.severity:
            result = status
    return result


def format_duration(seconds: float) -> str:
    """Seconds as the registration syntax writes them (`10s`, `500ms`, `5m`)."""
    if seconds < 1 or seconds != int(seconds):
        millis = seconds * 1000
        return f"{int(millis)}ms" if millis == int(millis) else f"{seconds:g}s"
    whole = int(seconds)
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


def rfc3339(seconds: float | None) -> str | None:
    """Unix seconds as RFC 3339 in UTC, to the millisecond (`2025-06-01T22:00:00.000Z`); None stays None."""
    if seconds is None:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Transport(str, enum.Enum):
    TCP = "tcp"
    UDP = "udp"


class CheckKind(str, enum.Enum):
    TCP = "tcp"
    HTTP = "http"
    TTL = "ttl"
    EXEC = "exec"
    SYSTEMD = "systemd"


class ConflictType(str, enum.Enum):
    PORT = "port"
    DEPENDENCY = "dependency"
    RESOURCE = "resource"


class SourceKind(str, enum.Enum):
    """Who may change an instance: its file, the HTTP API, or (fleet mode) its own node."""

    FILE = "file"
    API = "api"
    CLUSTER = "cluster"


class Source(NamedTuple):
    """Where an instance was registered; `path` is the file's for FILE and empty otherwise.

    Users see it as text (`file:<path>`, `api`, `cluster`): in HTTP answers, events
    and messages. A tuple, so that comparing two instances stays one C-level compare.
    """

    kind: SourceKind
    path: str = ""

    @classmethod
    def file(cls, path: str) -> Source:
        return cls(SourceKind.FILE, path)

    def __str__(self) -> str:
        return f"file:{self.path}" if self.kind is SourceKind.FILE else self.kind.value


API = Source(SourceKind.API)
CLUSTER = Source(SourceKind.CLUSTER)


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One health check as registered. `target` is kind-specific.

    tcp: "host:port"; http: the URL; ttl: "" (the TTL is `ttl`); exec: "" (see
    `argv`); systemd: the unit name.
    """

    id: str
    kind: CheckKind
    target: str = ""
    argv: tuple[str, ...] = ()
    interval: float = 10.0
    timeout: float = 2.0
    rise: int = 1
    fall: int = 1
    deregister_after: float | None = None
    ttl: float | None = None
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    expected_status: tuple[int, ...] = ()
    tls_skip_verify: bool = False
    body_contains: str | None = None
    name: str = ""

    def to_dict(self) -> dict[str, object]:
        """The check as a registration writes it, so a read can be sent back unchanged."""
        out: dict[str, object] = {"id": self.id}
        if self.kind is CheckKind.EXEC:
            out["exec"] = list(self.argv)
        elif self.kind is CheckKind.TTL:
            out["ttl"] = format_duration(self.ttl or 0.0)
        else:
            out[self.kind.value] = self.target
        out.update(interval=format_duration(self.interval), timeout=format_duration(self.timeout), rise=self.rise, fall=self.fall)
        if self.deregister_after is not None:
            out["deregister_after"] = format_duration(self.deregister_after)
        if self.name:
            out["name"] = self.name
        if self.kind is CheckKind.HTTP:
            out.update(method=self.method, headers=dict(self.headers), tls_skip_verify=self.tls_skip_verify)
            if self.expected_status:
                out["status"] = list(self.expected_status)
            if self.body_contains is not None:
                out["body"] = self.body_contains
        return out


@dataclass(frozen=True, slots=True)
class Instance:
    """A registered instance of a service, as validated; health lives in `Entry`.

    `id` is unique on its node only, so the catalog keys instances by `key`.
    `address_is_node` records that the address was defaulted to the node's, which
    decides whether an SRV target is `<node>.node.<domain>` or `<hex>.addr.<domain>`.
    """

    id: str
    name: str
    node: str
    address: str
    port: int
    protocol: str = "tcp"
    transport: Transport = Transport.TCP
    endpoint_path: str = ""
    version: str = ""
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    weight: int = 1
    priority: int = 1
    discoverable: bool = True
    checks: tuple[CheckSpec, ...] = ()
    ttl: float | None = None
    source: Source = API
    address_is_node: bool = False
    # Computed once: the catalog looks instances up by key many times per change.
    key: tuple[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.node, self.id))

    @property
    def url(self) -> str:
        host = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"{self.protocol}://{host}:{self.port}{self.endpoint_path}"

    def registration_dict(self) -> dict[str, object]:
        """The fields a client sent (or could send) to register this instance."""
        return {
            "id": self.id,
            "name": self.name,
            "node": self.node,
            "address": self.address,
            "port": self.port,
            "protocol": self.protocol,
            "transport": self.transport.value,
            "endpoint_path": self.endpoint_path,
            "version": self.version,
            "tags": list(self.tags),
            "meta": dict(self.meta),
            "weight": self.weight,
            "priority": self.priority,
            "discoverable": self.discoverable,
            "checks": [check.to_dict() for check in self.checks],
            **({"ttl": format_duration(self.ttl)} if self.ttl is not None else {}),
        }


# The fields a registration sets, in Instance's order: the one list the validator
# accepts, registration_dict writes, and the OpenAPI `Registration` and the README's
# schema describe (tests/test_registration_fields.py ties those to it).
REGISTRATION_FIELDS = tuple(
    f.name for f in dataclasses.fields(Instance) if f.name not in ("source", "address_is_node", "key")
)


@dataclass(frozen=True, slots=True)
class CheckState:
    """Latest result of one check, kept so a transition can be explained."""

    check_id: str
    status: Status
    output: str = ""
    updated: float = 0.0


@dataclass(frozen=True, slots=True)
class Entry:
    """An instance as readers see it: registration plus its current health."""

    instance: Instance
    status: Status
    checks: tuple[CheckState, ...] = ()
    maintenance_reason: str | None = None
    # Set while the status is `maintenance`: which part of it (draining, maintenance,
    # offline, recovering; the node's when the node is held) and, for the first
    # three, until when (Unix seconds; None: until an operator ends it).
    maintenance_state: NodeState | None = None
    maintenance_until: float | None = None

    def to_dict(self) -> dict[str, object]:
        out = self.instance.registration_dict()
        out["status"] = self.status.value
        out["url"] = self.instance.url
        out["source"] = str(self.instance.source)
        out["check_states"] = [
            {"id": c.check_id, "status": c.status.value, "output": c.output, "updated": c.updated}
            for c in self.checks
        ]
        if self.maintenance_reason is not None:
            out["maintenance_reason"] = self.maintenance_reason
        if self.maintenance_state is not None:
            out["maintenance_state"] = self.maintenance_state.value
            out["maintenance_until"] = rfc3339(self.maintenance_until)
        return out


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """This node as registrations read on it see it.

    An instance without `node` or `address` takes these; `min_check_interval` (the
    config's `limits.check_interval`) is the shortest check interval, and TTL, that a
    registration read here may ask for. Fleet mode reads a remote node's instances
    with that node's identity.
    """

    node: str
    address: str
    min_check_interval: float = 1.0


@dataclass(frozen=True, slots=True)
class Node:
    """A node as readers see it: its state, why, and its maintenance windows.

    `windows` are every window of the node and of its instances, planned ones
    included, by start: what `GET /v1/maintenance` lists and what fleet mode
    publishes in the node record.
    """

    name: str
    address: str
    state: NodeState = NodeState.ONLINE
    reason: str = ""
    windows: tuple[Window, ...] = ()


@dataclass(frozen=True, slots=True)
class ConflictRule:
    """Services `a` and `b` must not both be registered on one node.

    Pairs are unordered: `a` and `b` are stored sorted so that (x, y) and (y, x)
    are the same rule and compare equal. `id` is SQLite's for a stored rule, the
    pair `<a>+<b>` for a fleet rule (etcd's key), None for a shipped or config one.
    """

    a: str
    b: str
    type: ConflictType
    reason: str
    id: int | str | None = None
    source: str = "builtin"
    pair: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        low, high = sorted((self.a, self.b))
        object.__setattr__(self, "a", low)
        object.__setattr__(self, "b", high)
        object.__setattr__(self, "pair", frozenset((low, high)))

    def other(self, name: str) -> str:
        return self.b if name == self.a else self.a

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "a": self.a,
            "b": self.b,
            "type": self.type.value,
            "reason": self.reason,
            "source": self.source,
        }
