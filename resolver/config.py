"""The daemon's configuration: typed, validated once at start (and on SIGHUP).

Every key of the config file is optional; the defaults below are the design's
embedded default, so `pilotfish serve` with no file runs as documented.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.model import ConflictRule


@dataclass(frozen=True)
class DnsSettings:
    listen: tuple[str, ...] = ("127.0.0.1:8600",)
    ttl: float = 5.0
    recursors: tuple[str, ...] = ()
    answer_warning: bool = False


@dataclass(frozen=True)
class HttpSettings:
    listen: str = "127.0.0.1:8500"
    token: str | None = None


@dataclass(frozen=True)
class NodeThresholds:
    """Percentages above which the node is degraded."""

    cpu: float = 90.0
    memory: float = 90.0
    disk: float = 90.0


@dataclass(frozen=True)
class ClusterSettings:
    etcd: tuple[str, ...] = ()
    prefix: str = "/pilotfish/"


@dataclass(frozen=True)
class Config:
    node: str
    address: str
    domain: str = "internal"
    services_dir: str = "./services.d"
    state_dir: str = "./state"
    dns: DnsSettings = field(default_factory=DnsSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    conflicts: tuple[ConflictRule, ...] = ()
    node_health: NodeThresholds = field(default_factory=NodeThresholds)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    source: str | None = None  # the file this was read from; None for the embedded default
