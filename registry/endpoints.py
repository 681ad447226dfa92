"""Network endpoints: `host:port` text parsed once into a typed (host, port), written back one way.

The config parses every address it holds here (listeners, upstream resolvers, etcd),
so that the servers, the forwarder, the status page and the logs deal in `Endpoint`
values and never split or join text again. Listen addresses and recursors must be IP
literals: a host name would be resolved once at start and silently go stale. etcd
endpoints may be host names (gRPC resolves them on every connect).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        """`127.0.0.1:8600`, `[::1]:8600`: as the config writes it and status reports it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Whether only this host can reach it (a host name never counts as loopback)."""
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_address(text: str, default_port: int | None = None) -> Endpoint:
    """`127.0.0.1:8600`, `[::1]:8600` (or a bare IP with `default_port`); ValueError with a readable reason.

    Port 0 is allowed: a listener then takes any free port and reports the one it got.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or (host.count(":") > 0 and not host.startswith("[")):
        if default_port is None:
            raise ValueError(f"{text!r} is not host:port (for example 127.0.0.1:8600 or [::1]:8600)")
        host, port_text = text, str(default_port)
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} in {text!r} is not an IP address") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} in {text!r} must be 0-65535 (0 picks a free port)")
    return Endpoint(host, int(port_text))


def parse_etcd(text: str) -> Endpoint:
    """`host:port`, `http://host:port` or `[v6]:port`; ValueError saying why not (TLS is not supported)."""
    rest = text.strip()
    if rest.startswith("https://"):
        raise ValueError("https is not supported; use http:// or host:port")
    rest = rest.removeprefix("http://").rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("must be host:port with a port 1..65535")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError("an IPv6 address is written [addr]:port")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    elif ":" in host or "/" in host or any(c.isspace() for c in host):
        raise ValueError(f"{host!r} is not a host name or address")
    return Endpoint(host, int(port))
