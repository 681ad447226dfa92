"""One `Settings`, built once per client from its arguments, the environment variables
and the detected environment; everything after that reads typed fields.

Precedence, for each address: the argument, then the variable (`PILOTFISH_HTTP`,
`PILOTFISH_DNS`, `PILOTFISH_DOMAIN`), then what the environment implies. The DNS
fallback asks the daemon's DNS port on the same host as its HTTP API unless told
otherwise; dnspython needs an IP address there, so a daemon URL with a host name
(other than localhost) leaves the DNS fallback off until `dns=` or PILOTFISH_DNS names one.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from resolver.client.environment import Environment, detect
from resolver.client.http_wire import BaseUrl

DNS_PORT = 8600
DEFAULT_DOMAIN = "internal"
DEFAULT_CACHE_TTL = 5.0
DEFAULT_TIMEOUT = 2.0
DEFAULT_DNS_TIMEOUT = 1.0
DEFAULT_BREAKER_FAILURES = 3
DEFAULT_BREAKER_COOLDOWN = 5.0
# A full /v1/services of a large fleet is tens of MiB; anything past this is not an answer.
DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    base: BaseUrl
    dns: tuple[str, int] | None  # None: no address to ask, the DNS fallback is skipped
    domain: str
    token: str | None
    cache_ttl: float
    cache_size: int
    timeout: float
    dns_timeout: float
    breaker_failures: int
    breaker_cooldown: float
    max_response: int
    environ: Mapping[str, str]  # read at each env fallback, so a live os.environ works
    environment: Environment


def build_settings(
    url: str | None,
    cache_ttl: float,
    *,
    dns: str | tuple[str, int] | None,
    domain: str | None,
    token: str | None,
    timeout: float,
    dns_timeout: float,
    cache_size: int,
    breaker_failures: int,
    breaker_cooldown: float,
    max_response: int,
    environ: Mapping[str, str] | None,
    root: str | Path,
) -> Settings:
    env = os.environ if environ is None else environ
    environment = detect(root, env)
    base = BaseUrl.parse(url or env.get("PILOTFISH_HTTP") or environment.http_url)
    if cache_ttl < 0 or timeout <= 0 or dns_timeout <= 0 or max_response < 1:
        raise ValueError("cache_ttl must be zero or more; timeouts and max_response more than zero")
    if token is not None and not (token and all(33 <= ord(c) <= 126 for c in token)):
        raise ValueError("the token must be printable ASCII without spaces")
    chosen_dns = dns if dns is not None else env.get("PILOTFISH_DNS")
    return Settings(
        base=base,
        dns=parse_dns_address(chosen_dns) if chosen_dns else _dns_beside(base),
        domain=(domain or env.get("PILOTFISH_DOMAIN") or DEFAULT_DOMAIN).strip(".").lower(),
        token=token,
        cache_ttl=cache_ttl,
        cache_size=cache_size,
        timeout=timeout,
        dns_timeout=dns_timeout,
        breaker_failures=breaker_failures,
        breaker_cooldown=breaker_cooldown,
        max_response=max_response,
        environ=env,
        environment=environment,
    )


def parse_dns_address(value: str | tuple[str, int]) -> tuple[str, int]:
    """`127.0.0.1`, `127.0.0.1:8600`, `[::1]:8600` or a (host, port) pair; the host an IP."""
    if isinstance(value, tuple):
        host, port = value
    else:
        text = value.strip()
        raw_port = str(DNS_PORT)
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            raw_port = rest[1:] if rest.startswith(":") else raw_port
        elif text.count(":") == 1:
            host, _, raw_port = text.partition(":")
        else:
            host = text
        if not raw_port.isdigit():
            raise ValueError(f"DNS address {value!r}: the port {raw_port!r} is not a number")
        port = int(raw_port)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"DNS address {value!r}: the host must be an IP address") from None
    if not 0 < port < 65536:
        raise ValueError(f"DNS address {value!r}: the port must be from 1 to 65535")
    return host, port


def _dns_beside(base: BaseUrl) -> tuple[str, int] | None:
    if base.host == "localhost":
        return "127.0.0.1", DNS_PORT
    return (base.host, DNS_PORT) if base.host_is_ip else None
