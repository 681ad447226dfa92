"""Where the application runs, and so where its pilotfish daemon is by default.

- local: the daemon is the host's sidecar on loopback, `http://127.0.0.1:8500`.
- kubernetes (`KUBERNETES_SERVICE_HOST` set, or `kubepods` in /proc/1/cgroup):
  pilotfish runs as a sidecar container of the pod, and a pod's containers share one
  network namespace, so loopback reaches it: `http://127.0.0.1:8500`. (A DaemonSet
  with hostNetwork is on the node's address instead: pass it in PILOTFISH_HTTP from
  the downward API's status.hostIP.)
- docker (`/.dockerenv`, or docker/containerd/libpod in /proc/1/cgroup): the daemon
  runs on the host, and the container's loopback is its own. The host is the
  container's default gateway (the bridge address, 172.17.0.1 on a default install),
  read from /proc/net/route; without a default route, `host.docker.internal` (Docker
  Desktop, or `--add-host=host.docker.internal:host-gateway` on Linux).

`PILOTFISH_HTTP` overrides all of this (settings.py). The markers are read under
`root`, so tests and unusual layouts can point elsewhere.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

HTTP_PORT = 8500
DOCKER_HOST_NAME = "host.docker.internal"
_DOCKER_CGROUP_WORDS = ("docker", "containerd", "libpod")


class Kind(str, enum.Enum):
    LOCAL = "local"
    DOCKER = "docker"
    KUBERNETES = "kubernetes"


@dataclass(frozen=True, slots=True)
class Environment:
    kind: Kind
    evidence: str  # which marker decided, for logs and `pilotfish status`-like output
    http_url: str


def detect(root: str | Path = "/", environ: Mapping[str, str] | None = None) -> Environment:
    """The environment from its markers, with the daemon address it implies."""
    base = Path(root)
    env = environ if environ is not None else {}
    cgroup = _read(base / "proc/1/cgroup")
    if env.get("KUBERNETES_SERVICE_HOST"):
        return _loopback(Kind.KUBERNETES, "KUBERNETES_SERVICE_HOST is set")
    if "kubepods" in cgroup:
        return _loopback(Kind.KUBERNETES, "/proc/1/cgroup names kubepods")
    if (base / ".dockerenv").exists():
        return _docker(base, "/.dockerenv exists")
    if any(word in cgroup for word in _DOCKER_CGROUP_WORDS):
        return _docker(base, "/proc/1/cgroup names a container runtime")
    return _loopback(Kind.LOCAL, "no container marker")


def _loopback(kind: Kind, evidence: str) -> Environment:
    return Environment(kind, evidence, f"http://127.0.0.1:{HTTP_PORT}")


def _docker(base: Path, evidence: str) -> Environment:
    gateway = default_gateway(_read(base / "proc/net/route"))
    if gateway is None:
        return Environment(Kind.DOCKER, evidence + "; no default route", f"http://{DOCKER_HOST_NAME}:{HTTP_PORT}")
    return Environment(Kind.DOCKER, evidence + f"; gateway {gateway}", f"http://{gateway}:{HTTP_PORT}")


def default_gateway(route_table: str) -> str | None:
    """The IPv4 gateway of the default route in /proc/net/route's format."""
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 3 or fields[1] != "00000000":
            continue
        try:
            # The kernel prints the address's four bytes as one native-order integer.
            packed = struct.pack("=I", int(fields[2], 16))
        except (ValueError, struct.error):
            continue
        address = socket.inet_ntoa(packed)
        if not ipaddress.ip_address(address).is_unspecified:
            return address
    return None


def _read(path: Path) -> str:
    """A marker file's text; a missing or unreadable one says nothing."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")[:65536]
    except OSError:
        return ""
