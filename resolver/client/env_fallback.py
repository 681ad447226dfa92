"""The last link of the fallback chain: an operator's `PILOTFISH_<NAME>_URL`.

It names one URL for a service, whatever the filters of the lookup: it is how an
operator says "if discovery is down, this is where billing is". The name maps to the
variable upper-cased with '-' as '_', so `billing-api` reads PILOTFISH_BILLING_API_URL.
"""

from __future__ import annotations

import re
import urllib.parse

from resolver.client.http_wire import DEFAULT_PORTS
from resolver.client.results import Instance

_ENV_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
# Well-known ports for a URL that names none (`PILOTFISH_DB_URL=postgres://db/app`).
_SCHEME_PORTS = {**DEFAULT_PORTS, "ws": 80, "wss": 443, "redis": 6379, "postgres": 5432, "postgresql": 5432,
                 "mysql": 3306, "amqp": 5672, "grpc": 443}


def env_variable(name: str) -> str | None:
    """`PILOTFISH_<NAME>_URL`: upper-cased, '-' as '_' (None for a name no variable can hold)."""
    return f"PILOTFISH_{name.upper().replace('-', '_')}_URL" if _ENV_NAME.match(name) else None


def instance_from_url(name: str, value: str) -> Instance | None:
    parts = urllib.parse.urlsplit(value.strip())
    try:
        port = parts.port or _SCHEME_PORTS.get(parts.scheme, 0)
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return Instance(
        id=f"env:{name}", name=name, node="", address=parts.hostname, port=port, protocol=parts.scheme,
        url=value.strip(), endpoint_path=parts.path, registered_by="env",
    )
