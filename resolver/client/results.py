"""What lookups return: frozen, typed, and saying where the answer came from.

Every result carries `source` (the daemon, the last good answer kept after the
daemon stopped answering, DNS, or an environment variable) and `age` (seconds since
the daemon gave the answer; 0 for DNS and the environment). An application that
cares can refuse a stale answer; one that does not just uses it.

The daemon's JSON is read strictly here: a body that does not have the shape of
pilotfish's answers raises `BadAnswer`, which the core treats like no answer at all
(something else is listening on the daemon's port).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterator, Mapping


class Source(str, enum.Enum):
    DAEMON = "daemon"
    CACHE_STALE = "cache-stale"
    DNS = "dns"
    ENV = "env"


class BadAnswer(Exception):
    """The body does not have the shape of a pilotfish answer."""


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance as the daemon describes it (DNS and the environment know less:
    their instances have protocol `tcp`, no tags and no meta, unless the URL says)."""

    id: str
    name: str
    node: str
    address: str
    port: int
    protocol: str
    url: str
    status: str = "passing"
    transport: str = "tcp"
    endpoint_path: str = ""
    version: str = ""
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    weight: int = 1
    priority: int = 1
    registered_by: str = ""  # the daemon's `source`: file:<path>, api or cluster

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "node": self.node, "address": self.address, "port": self.port,
            "protocol": self.protocol, "url": self.url, "status": self.status, "transport": self.transport,
            "endpoint_path": self.endpoint_path, "version": self.version, "tags": list(self.tags),
            "meta": dict(self.meta), "weight": self.weight, "priority": self.priority, "source": self.registered_by,
        }


@dataclass(frozen=True, slots=True)
class Instances:
    """The instances of one service a lookup matched; iterates like a tuple."""

    name: str
    items: tuple[Instance, ...]
    source: Source = Source.DAEMON
    age: float = 0.0
    index: int | None = None  # the daemon's catalog index (None from DNS and env)

    def served(self, source: Source, age: float) -> Instances:
        """The same answer, served from `source` this much later (dataclasses.replace is slower)."""
        return Instances(self.name, self.items, source, age, self.index)

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> Instance:
        return self.items[position]


@dataclass(frozen=True, slots=True)
class Services:
    """Every discoverable instance, by service name; iterates over the names."""

    by_name: Mapping[str, tuple[Instance, ...]]
    source: Source = Source.DAEMON
    age: float = 0.0
    index: int | None = None

    def served(self, source: Source, age: float) -> Services:
        return Services(self.by_name, source, age, self.index)

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)

    def __getitem__(self, name: str) -> tuple[Instance, ...]:
        return self.by_name[name]


@dataclass(frozen=True, slots=True)
class ServiceUrl:
    """One URL of a service, chosen by `strategy`; `str()` is the URL."""

    url: str
    name: str
    instance: Instance
    strategy: str
    source: Source = Source.DAEMON
    age: float = 0.0

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to connect, for protocols that want a host and a port rather than a URL."""

    host: str
    port: int
    instance_id: str
    node: str

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Endpoints:
    name: str
    items: tuple[Endpoint, ...]
    source: Source = Source.DAEMON
    age: float = 0.0

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> Endpoint:
        return self.items[position]


def endpoints_of(found: Instances) -> Endpoints:
    items = tuple(Endpoint(i.address, i.port, i.id, i.node) for i in found.items)
    return Endpoints(found.name, items, found.source, found.age)


# -- reading the daemon's JSON --------------------------------------------------

def instance_from_json(value: Any) -> Instance:
    if not isinstance(value, dict):
        raise BadAnswer(f"an instance is a JSON object, not {type(value).__name__}")
    tags = value.get("tags", [])
    meta = value.get("meta", {})
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise BadAnswer("an instance's tags are not a list of strings")
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise BadAnswer("an instance's meta is not a map of strings")
    return Instance(
        id=_text(value, "id"), name=_text(value, "name"), node=_text(value, "node"),
        address=_text(value, "address"), port=_number(value, "port"), protocol=_text(value, "protocol"),
        url=_text(value, "url"), status=_text(value, "status"), transport=_text(value, "transport", "tcp"),
        endpoint_path=_text(value, "endpoint_path", ""), version=_text(value, "version", ""),
        tags=tuple(tags), meta=MappingProxyType(dict(meta)), weight=_number(value, "weight", 1),
        priority=_number(value, "priority", 1), registered_by=_text(value, "source", ""),
    )


def instance_list_from_json(value: Any) -> tuple[Instance, ...]:
    if not isinstance(value, list):
        raise BadAnswer(f"instances are a JSON list, not {type(value).__name__}")
    return tuple(instance_from_json(item) for item in value)


def services_from_json(value: Any, index: int) -> Services:
    if not isinstance(value, dict):
        raise BadAnswer(f"services are a JSON object, not {type(value).__name__}")
    by_name = {str(name): instance_list_from_json(items) for name, items in value.items()}
    return Services(MappingProxyType(by_name), Source.DAEMON, 0.0, index)


def service_url_from_json(value: Any, strategy: str) -> ServiceUrl:
    if not isinstance(value, dict):
        raise BadAnswer(f"a chosen URL is a JSON object, not {type(value).__name__}")
    instance = instance_from_json(value.get("instance"))
    return ServiceUrl(_text(value, "url"), instance.name, instance, _text(value, "strategy", strategy))


_MISSING = object()


def _text(value: dict[str, Any], key: str, default: Any = _MISSING) -> str:
    found = value.get(key, default)
    if found is _MISSING or not isinstance(found, str):
        raise BadAnswer(f"an instance's {key!r} is not a string")
    return found


def _number(value: dict[str, Any], key: str, default: Any = _MISSING) -> int:
    found = value.get(key, default)
    if found is _MISSING or not isinstance(found, int) or isinstance(found, bool):
        raise BadAnswer(f"an instance's {key!r} is not an integer")
    return found
