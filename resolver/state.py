"""The running daemon's parts, handed to the HTTP app and the CLI-facing status.

One object so that route handlers reach the catalog, the store and the other
servers' figures without globals; the daemon builds it once at start and fills
`bound` as listeners come up.
"""

from __future__ import annotations

import importlib.metadata
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from registry.catalog import Catalog
from registry.model import NodeIdentity
from registry.store import Store

if TYPE_CHECKING:
    from registry.cluster.sync import ClusterSync
    from registry.health.runner import HealthRunner
    from registry.maintenance import MaintenanceScheduler
    from registry.nodestate import NodeMonitor
    from resolver.config import Config
    from resolver.dns.stats import DnsStats


def _version() -> str:
    """pyproject.toml's version, as installed; a tree run without installing says so."""
    try:
        return importlib.metadata.version("pilotfish")
    except importlib.metadata.PackageNotFoundError:
        return "0+not-installed"


VERSION = _version()


@dataclass
class DaemonState:
    config: "Config"
    catalog: Catalog
    store: Store
    identity: NodeIdentity
    started: float = field(default_factory=time.time)
    # Actual addresses bound, "host:port", by listener: "dns_udp", "dns_tcp", "http".
    bound: dict[str, list[str]] = field(default_factory=dict)
    dns_stats: "DnsStats | None" = None
    health: "HealthRunner | None" = None
    node_monitor: "NodeMonitor | None" = None
    maintenance: "MaintenanceScheduler | None" = None
    # Fleet mode's owner (None on a single host): its status, and the way fleet-wide writes go.
    cluster: "ClusterSync | None" = None
    # Free-form facts the daemon wants in /v1/status (config path, last reload, ...).
    extra: dict[str, Any] = field(default_factory=dict)
