"""The daemon's configuration: typed, validated once at start (and on SIGHUP).

Every key of the config file is optional; the defaults below are the design's
embedded default, so `pilotfish serve` with no file runs as documented. Loading is
strict: an unknown key, a wrong type, a bad listen address or duration refuses the
whole file with `file:line: key: message`, because a daemon quietly running on a
half-understood config is worse than one that does not start. Relative paths in the
file are relative to the file's directory, so the daemon behaves the same whatever
directory it was started from. Nothing here opens sockets or the store.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from registry.endpoints import Endpoint
from registry.errors import Problem, ValidationError
from registry.model import ConflictRule, NodeIdentity
from registry.nodestate import NodeThresholds
from registry.store import Retention
from registry.textfile import DEFAULT_MAX_BYTES, MAX_MAX_BYTES, read_text
from registry.yamldoc import LocatedDoc, compose
from resolver.config_fields import ConfigReader, Section
from resolver.dns.answers import BareNames


@dataclass(frozen=True)
class DnsSettings:
    listen: tuple[Endpoint, ...] = (Endpoint("127.0.0.1", 8600),)
    ttl: float = 5.0
    recursors: tuple[Endpoint, ...] = ()
    answer_warning: bool = False
    prefer_local: bool = False  # this node's instances first in A/AAAA, and among equal SRV priority
    recursion_allow: tuple[str, ...] = ()  # networks besides loopback that may recurse
    rate_limit: float | None = None  # UDP answers a second per client /24 (/56); None = off
    tcp_connections: int = 1000  # open DNS TCP connections at most
    bare_names: BareNames = BareNames.ALL  # names outside the domain answered as under it


@dataclass(frozen=True)
class HttpSettings:
    listen: Endpoint = Endpoint("127.0.0.1", 8500)
    token: str | None = None
    # Open connections at once; past it the longest-idle or slowest-to-send one is
    # closed for the newcomer, or the newcomer is refused when every one is at work.
    max_connections: int = 512
    # A request's line and headers must arrive within this of its first byte (or of
    # the connection opening), its body within body_timeout of the headers.
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    @property
    def writes_open(self) -> bool:
        """True when anyone who can reach the listener could write: no token, beyond loopback.

        The daemon refuses to run so (at load, at start and when a reload drops the token).
        """
        return self.token is None and not self.listen.is_loopback


@dataclass(frozen=True)
class HealthSettings:
    # Exec checks run commands as the daemon; from the API only when this is true
    # and http.token is set (load refuses true without a token).
    exec_from_api: bool = False


@dataclass(frozen=True)
class LimitSettings:
    """Bounds on what registrations may ask of the daemon (see registry.textfile, registry.checkschema)."""

    file_size: int = DEFAULT_MAX_BYTES  # larger files in services_dir are refused unread
    check_interval: float = 1.0  # the shortest check interval (and TTL) a registration may set
    # The SQLite database stops growing here (writes past it answer 507); None = the disk.
    database_size: int | None = None


@dataclass(frozen=True)
class ClusterSettings:
    """Fleet mode (registry.cluster): on when `etcd` names at least one endpoint."""

    etcd: tuple[Endpoint, ...] = ()
    prefix: str = "/pilotfish/"
    lease_ttl: int = 10  # whole seconds, as etcd grants leases: a killed daemon's keys go after this
    datacenter: str = "dc1"  # named in /v1/status and Consul-shaped answers

    @property
    def enabled(self) -> bool:
        return bool(self.etcd)


@dataclass(frozen=True)
class Config:
    node: str
    address: str
    domain: str = "internal"
    services_dir: str = "./services.d"
    state_dir: str = "./state"
    dns: DnsSettings = field(default_factory=DnsSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    conflicts: tuple[ConflictRule, ...] = ()
    node_health: NodeThresholds = field(default_factory=NodeThresholds)
    events: Retention = field(default_factory=Retention)  # the event log keeps max_age and max_rows
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    source: str | None = None  # the file this was read from; None for the embedded default

    @property
    def identity(self) -> NodeIdentity:
        """This node as registrations read here see it."""
        return NodeIdentity(self.node, self.address, self.limits.check_interval)


class ConfigError(Exception):
    """The config file was refused; `problems` name the file, line and key of each fault."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


T = TypeVar("T")


def _keys(settings: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(settings))


# The file's keys are the fields of the settings they fill, declared once above.
TOP_KEYS = tuple(key for key in _keys(Config) if key != "source")
SECTION_KEYS = {
    "dns": _keys(DnsSettings),
    "http": _keys(HttpSettings),
    "health": _keys(HealthSettings),
    "node_health": _keys(NodeThresholds),
    "events": _keys(Retention),
    "cluster": _keys(ClusterSettings),
    "limits": _keys(LimitSettings),
}
# Keys whose new value only takes effect after a restart (identity, storage and
# listeners): a SIGHUP keeps their running values and names those that changed.
# `cluster` is not one: a SIGHUP that changes it leaves the fleet and joins again.
RESTART_ONLY = ("node", "address", "domain", "state_dir", "dns", "http.listen")
# Timeouts an operator may set: long enough for any real client, short enough to matter.
HTTP_TIMEOUT_RANGE = (0.1, 3600.0)
MAX_CONNECTIONS_RANGE = (1, 1_000_000)
# A database needs a few pages for its schema before it holds anything.
MIN_DATABASE_SIZE = 64 * 1024
# The event log's bounds: a floor that keeps a useful history, a ceiling a disk holds.
MAX_ROWS_RANGE = (100, 100_000_000)
MAX_AGE_RANGE = (60.0, 3650 * 24 * 3600.0)


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """The RESTART_ONLY keys whose value differs between `old` and `new`."""
    return [key for key in RESTART_ONLY if _value_at(old, key) != _value_at(new, key)]


def with_running_values(old: Config, new: Config) -> Config:
    """`new`, with every RESTART_ONLY key at its value in `old` (the running one)."""
    for key in RESTART_ONLY:
        section, _, name = key.rpartition(".")
        if section:
            inner = dataclasses.replace(getattr(new, section), **{name: _value_at(old, key)})
            new = dataclasses.replace(new, **{section: inner})
        else:
            new = dataclasses.replace(new, **{name: _value_at(old, key)})
    return new


def _value_at(config: Config, key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def default_node() -> str:
    return socket.gethostname().split(".")[0].lower() or "localhost"


def default_address() -> str:
    """The first non-loopback IPv4 of the host, by interface name order; else 127.0.0.1."""
    interfaces = psutil.net_if_addrs()
    for name in sorted(interfaces):
        for addr in interfaces[name]:
            if addr.family == socket.AF_INET and not ipaddress.ip_address(addr.address).is_loopback:
                return str(addr.address)
    return "127.0.0.1"


def load_config(path: str | None) -> Config:
    """Read and validate `path`; None gives the embedded default (paths relative to the cwd).

    Every problem in the file is reported at once, each as `file:line: key: message`.
    """
    if path is None:
        return _build(LocatedDoc(value={}), "<default>", Path.cwd(), None)
    try:
        # Read as registration files are (a regular file, size-capped, never blocking):
        # SIGHUP re-reads it on the event loop.
        text = read_text(path, DEFAULT_MAX_BYTES)
    except ValidationError as exc:
        raise ConfigError(exc.problems) from None
    located = compose(text, path)
    if located.problems:
        raise ConfigError(located.problems)
    if located.value is None:
        located.value = {}
    if not isinstance(located.value, dict):
        raise ConfigError([Problem(path, 1, "(top)", "the config file must be a mapping of keys")])
    return _build(located, path, Path(path).resolve().parent, str(Path(path).resolve()))


def _build(located: LocatedDoc, path: str, base: Path, source: str | None) -> Config:
    read = ConfigReader(path, located)
    top = Section(read, located.value, (), TOP_KEYS)
    dns = Section(read, top.data.get("dns"), ("dns",), SECTION_KEYS["dns"])
    http = Section(read, top.data.get("http"), ("http",), SECTION_KEYS["http"])
    checks = Section(read, top.data.get("health"), ("health",), SECTION_KEYS["health"])
    health = Section(read, top.data.get("node_health"), ("node_health",), SECTION_KEYS["node_health"])
    cluster = Section(read, top.data.get("cluster"), ("cluster",), SECTION_KEYS["cluster"])
    limits = Section(read, top.data.get("limits"), ("limits",), SECTION_KEYS["limits"])
    history = Section(read, top.data.get("events"), ("events",), SECTION_KEYS["events"])
    settings_dns = DnsSettings(
        listen=tuple(_pick(dns.get("listen", read.listen), DnsSettings.listen)),
        ttl=_pick(dns.get("ttl", read.duration), DnsSettings.ttl),
        recursors=tuple(_pick(dns.get("recursors", read.recursors), [])),
        answer_warning=_pick(dns.get("answer_warning", read.boolean), False),
        prefer_local=_pick(dns.get("prefer_local", read.boolean), False),
        recursion_allow=tuple(_pick(dns.get("recursion_allow", read.networks), [])),
        rate_limit=_float_or_none(dns.get("rate_limit", read.number, 0.001)),
        tcp_connections=int(_pick(dns.get("tcp_connections", read.number, 1, True), DnsSettings.tcp_connections)),
        bare_names=_pick(dns.get("bare_names", read.bare_names), DnsSettings.bare_names),
    )
    settings_http = HttpSettings(
        listen=_pick(http.get("listen", read.one_listen), HttpSettings.listen),
        token=http.get("token", read.token),
        max_connections=_pick(http.get("max_connections", read.integer, *MAX_CONNECTIONS_RANGE), HttpSettings.max_connections),
        header_timeout=_pick(http.get("header_timeout", read.duration, HTTP_TIMEOUT_RANGE), HttpSettings.header_timeout),
        body_timeout=_pick(http.get("body_timeout", read.duration, HTTP_TIMEOUT_RANGE), HttpSettings.body_timeout),
    )
    settings_health = HealthSettings(exec_from_api=_pick(checks.get("exec_from_api", read.boolean), False))
    if settings_health.exec_from_api and settings_http.token is None:
        read.problem(("health", "exec_from_api"),
                     "true needs http.token: without a token any local user could run commands as the daemon")
    thresholds = NodeThresholds(
        cpu=_pick(health.get("cpu", read.percent), NodeThresholds.cpu),
        memory=_pick(health.get("memory", read.percent), NodeThresholds.memory),
        disk=_pick(health.get("disk", read.percent), NodeThresholds.disk),
    )
    settings_cluster = ClusterSettings(
        etcd=tuple(_pick(cluster.get("etcd", read.etcd), [])),
        prefix=_pick(cluster.get("prefix", read.etcd_prefix), ClusterSettings.prefix),
        lease_ttl=_pick(cluster.get("lease_ttl", read.lease_ttl), ClusterSettings.lease_ttl),
        datacenter=_pick(cluster.get("datacenter", read.name), ClusterSettings.datacenter),
    )
    settings_limits = LimitSettings(
        file_size=_pick(limits.get("file_size", read.size, 1, MAX_MAX_BYTES), LimitSettings.file_size),
        check_interval=_pick(limits.get("check_interval", read.check_interval), LimitSettings.check_interval),
        database_size=limits.get("database_size", read.size, MIN_DATABASE_SIZE),
    )
    retention = Retention(
        max_age=_pick(history.get("max_age", read.age, MAX_AGE_RANGE), Retention.max_age),
        max_rows=_pick(history.get("max_rows", read.integer, *MAX_ROWS_RANGE), Retention.max_rows),
    )
    node = top.get("node", read.name)
    address = top.get("address", read.address)
    domain = top.get("domain", read.domain)
    services_dir = top.get("services_dir", read.string, None, "", True)
    state_dir = top.get("state_dir", read.string, None, "", True)
    rules = top.get("conflicts", read.rules) or []
    if read.problems:
        raise ConfigError(sorted(read.problems, key=lambda p: p.line or 0))
    if settings_http.writes_open:
        raise ConfigError([Problem(path, located.lines.get(("http", "listen")), "http.listen",
                                   "a non-loopback HTTP listen address needs http.token (writes would be open)")])
    return Config(
        node=node or default_node(),
        address=address or default_address(),
        domain=domain or "internal",
        services_dir=str((base / (services_dir or "./services.d")).resolve()),
        state_dir=str((base / (state_dir or "./state")).resolve()),
        dns=settings_dns,
        http=settings_http,
        health=settings_health,
        conflicts=tuple(rules),
        node_health=thresholds,
        events=retention,
        cluster=settings_cluster,
        limits=settings_limits,
        source=source,
    )


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)
