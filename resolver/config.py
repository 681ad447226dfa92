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

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import psutil

from registry.errors import Problem, ValidationError
from registry.fields import FieldReader
from registry.model import ConflictRule, ConflictType, NodeIdentity
from registry.nodestate import NodeThresholds
from registry.textfile import DEFAULT_MAX_BYTES, MAX_MAX_BYTES, parse_size, read_text
from registry.yamldoc import FieldPath, LocatedDoc, compose, kind_of


@dataclass(frozen=True)
class DnsSettings:
    listen: tuple[str, ...] = ("127.0.0.1:8600",)
    ttl: float = 5.0
    recursors: tuple[str, ...] = ()
    answer_warning: bool = False
    recursion_allow: tuple[str, ...] = ()  # networks besides loopback that may recurse
    rate_limit: float | None = None  # UDP answers a second per client /24 (/56); None = off
    tcp_connections: int = 1000  # open DNS TCP connections at most


@dataclass(frozen=True)
class HttpSettings:
    listen: str = "127.0.0.1:8500"
    token: str | None = None
    # Open connections at once; past it the longest-idle or slowest-to-send one is
    # closed for the newcomer, or the newcomer is refused when every one is at work.
    max_connections: int = 512
    # A request's line and headers must arrive within this of its first byte (or of
    # the connection opening), its body within body_timeout of the headers.
    header_timeout: float = 10.0
    body_timeout: float = 30.0


@dataclass(frozen=True)
class HealthSettings:
    # Exec checks run commands as the daemon; from the API only when this is true
    # and http.token is set (load refuses true without a token).
    exec_from_api: bool = False


@dataclass(frozen=True)
class LimitSettings:
    """Bounds on what registrations may ask of the daemon (see registry.textfile, registry.schema)."""

    file_size: int = DEFAULT_MAX_BYTES  # larger files in services_dir are refused unread
    check_interval: float = 1.0  # the shortest check interval (and TTL) a registration may set
    # The SQLite database stops growing here (writes past it answer 507); None = the disk.
    database_size: int | None = None


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
    health: HealthSettings = field(default_factory=HealthSettings)
    conflicts: tuple[ConflictRule, ...] = ()
    node_health: NodeThresholds = field(default_factory=NodeThresholds)
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
ListenAddress = tuple[str, int]

TOP_KEYS = (
    "node", "address", "domain", "services_dir", "state_dir", "dns", "http", "health", "conflicts", "node_health",
    "cluster", "limits",
)
SECTION_KEYS = {
    "dns": ("listen", "ttl", "recursors", "answer_warning", "recursion_allow", "rate_limit", "tcp_connections"),
    "http": ("listen", "token", "max_connections", "header_timeout", "body_timeout"),
    "health": ("exec_from_api",),
    "node_health": ("cpu", "memory", "disk"),
    "cluster": ("etcd", "prefix"),
    "limits": ("file_size", "check_interval", "database_size"),
}
# Checks never run more often than once a second (the health runner holds to it too):
# limits.check_interval can only raise the floor.
MIN_CHECK_INTERVAL_FLOOR = 1.0
RULE_KEYS = ("a", "b", "type", "reason")
CONFLICT_TYPES = tuple(kind.value for kind in ConflictType)
# Applied with `fullmatch` (`$` would let a final newline through).
DNS_NAME = re.compile(r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")
SERVICE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Timeouts an operator may set: long enough for any real client, short enough to matter.
HTTP_TIMEOUT_RANGE = (0.1, 3600.0)
MAX_CONNECTIONS_RANGE = (1, 1_000_000)
# A database needs a few pages for its schema before it holds anything.
MIN_DATABASE_SIZE = 64 * 1024


def parse_listen(text: str, default_port: int | None = None) -> ListenAddress:
    """`127.0.0.1:8600`, `[::1]:8600` -> (host, port); ValueError with a readable reason.

    Only IP literals: a name would be resolved once at start and silently go stale.
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
    return host, int(port_text)


def is_loopback(listen: str) -> bool:
    return ipaddress.ip_address(parse_listen(listen)[0]).is_loopback


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


class _Section:
    """One mapping of the config file, read key by key; a key absent or null reads as None (its default)."""

    def __init__(self, read: _ConfigReader, value: Any, at: FieldPath, allowed: tuple[str, ...]) -> None:
        self.at = at
        self.data: dict[str, Any] = {}
        if value is not None:
            self.data = read.mapping(value, at, allowed) or {}

    def where(self, key: str) -> FieldPath:
        return self.at + (key,)

    def get(self, key: str, how: Callable[..., T | None], *args: Any) -> T | None:
        """`how(value, path, *args)` for the value of `key`, or None when it is absent or null."""
        value = self.data.get(key)
        return None if value is None else how(value, self.where(key), *args)


class _ConfigReader(FieldReader):
    """The shared field reader, plus the config's own kinds of value."""

    def name(self, value: Any, at: FieldPath) -> str | None:
        return self.string(value, at, SERVICE_NAME, "is not a valid DNS name (lower-case letters, digits, '-')", True)

    def address(self, value: Any, at: FieldPath) -> str | None:
        text = self.string(value, at, non_empty=True)
        if text is None:
            return None
        try:
            ipaddress.ip_address(text)
        except ValueError:
            self.problem(at, f"{text!r} is not an IP address")
            return None
        return text

    def domain(self, value: Any, at: FieldPath) -> str | None:
        text = self.string(value, at, non_empty=True)
        if text is None:
            return None
        text = text.strip(".").lower()
        if not DNS_NAME.fullmatch(text):
            self.problem(at, f"{text!r} is not a valid DNS name")
            return None
        return text

    def string_list(self, value: Any, at: FieldPath) -> list[str] | None:
        """A list of strings; one string alone is a list of one (`listen: 127.0.0.1:8600`)."""
        return self.strings([value] if isinstance(value, str) else value, at)

    def listen(self, value: Any, at: FieldPath, default_port: int | None = None) -> list[str] | None:
        values = self.string_list(value, at)
        if values is None:
            return None
        good = []
        for i, text in enumerate(values):
            try:
                host, port = parse_listen(text, default_port)
            except ValueError as exc:
                self.problem(at + (i,) if len(values) > 1 else at, str(exc))
                continue
            good.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return good

    def one_listen(self, value: Any, at: FieldPath) -> str | None:
        if not isinstance(value, str):
            self.problem(at, f"must be one host:port string, not {kind_of(value)}")
            return None
        listen = self.listen(value, at)
        return listen[0] if listen else None

    def networks(self, value: Any, at: FieldPath) -> list[str] | None:
        """CIDR networks (`10.0.0.0/8`, `fd00::/8`; a bare address is its /32 or /128)."""
        values = self.string_list(value, at)
        if values is None:
            return None
        good = []
        for i, text in enumerate(values):
            try:
                good.append(str(ipaddress.ip_network(text)))
                continue
            except ValueError:
                pass
            try:
                hint = f"has host bits set (did you mean {str(ipaddress.ip_network(text, strict=False))!r}?)"
            except ValueError:
                hint = "is not a network such as 10.0.0.0/8 or fd00::/8"
            self.problem(at + (i,) if len(values) > 1 else at, f"{text!r} {hint}")
        return good

    def token(self, value: Any, at: FieldPath) -> str | None:
        if not isinstance(value, str) or not value:
            self.problem(at, f"must be a non-empty string or null, not {kind_of(value)}")
            return None
        return value

    def percent(self, value: Any, at: FieldPath) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100:
            self.problem(at, f"must be a percentage between 0 and 100, not {value!r}")
            return None
        return float(value)

    def size(self, value: Any, at: FieldPath, minimum: int = 1, maximum: int | None = None) -> int | None:
        try:
            return parse_size(value, minimum, maximum)
        except ValueError as exc:
            self.problem(at, str(exc))
            return None

    def check_interval(self, value: Any, at: FieldPath) -> float | None:
        seconds = self.duration(value, at)
        if seconds is not None and seconds < MIN_CHECK_INTERVAL_FLOOR:
            self.problem(at, f"must be at least {MIN_CHECK_INTERVAL_FLOOR:g}s")
            return None
        return seconds

    def rules(self, value: Any, at: FieldPath) -> list[ConflictRule]:
        if not isinstance(value, list):
            self.problem(at, f"must be a list of {{a, b, type, reason}}, not {kind_of(value)}")
            return []
        rules = []
        for i, item in enumerate(value):
            rule = _Section(self, item, at + (i,), RULE_KEYS)
            if not isinstance(item, dict):
                continue
            a, b = rule.get("a", self.name), rule.get("b", self.name)
            kind = rule.get("type", self.choice, CONFLICT_TYPES)
            for key in ("a", "b", "type"):
                if key not in rule.data:
                    self.problem(rule.at, f"missing key {key!r}")
            reason = rule.data.get("reason", "")
            if not isinstance(reason, str):
                self.problem(rule.where("reason"), f"must be a string, not {kind_of(reason)}")
                continue
            if a and b and kind:
                if a == b:
                    self.problem(rule.at, "a and b must be different services")
                    continue
                rules.append(ConflictRule(a, b, ConflictType(kind), reason, source="config"))
        return rules


def _build(located: LocatedDoc, path: str, base: Path, source: str | None) -> Config:
    read = _ConfigReader(path, located)
    top = _Section(read, located.value, (), TOP_KEYS)
    dns = _Section(read, top.data.get("dns"), ("dns",), SECTION_KEYS["dns"])
    http = _Section(read, top.data.get("http"), ("http",), SECTION_KEYS["http"])
    checks = _Section(read, top.data.get("health"), ("health",), SECTION_KEYS["health"])
    health = _Section(read, top.data.get("node_health"), ("node_health",), SECTION_KEYS["node_health"])
    cluster = _Section(read, top.data.get("cluster"), ("cluster",), SECTION_KEYS["cluster"])
    limits = _Section(read, top.data.get("limits"), ("limits",), SECTION_KEYS["limits"])
    settings_dns = DnsSettings(
        listen=tuple(_pick(dns.get("listen", read.listen), DnsSettings.listen)),
        ttl=_pick(dns.get("ttl", read.duration), DnsSettings.ttl),
        recursors=tuple(_pick(dns.get("recursors", read.listen, 53), [])),
        answer_warning=_pick(dns.get("answer_warning", read.boolean), False),
        recursion_allow=tuple(_pick(dns.get("recursion_allow", read.networks), [])),
        rate_limit=_float_or_none(dns.get("rate_limit", read.number, 0.001)),
        tcp_connections=int(_pick(dns.get("tcp_connections", read.number, 1, True), DnsSettings.tcp_connections)),
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
        etcd=tuple(_pick(cluster.get("etcd", read.string_list), [])),
        prefix=_pick(cluster.get("prefix", read.string, None, "", True), ClusterSettings.prefix),
    )
    settings_limits = LimitSettings(
        file_size=_pick(limits.get("file_size", read.size, 1, MAX_MAX_BYTES), LimitSettings.file_size),
        check_interval=_pick(limits.get("check_interval", read.check_interval), LimitSettings.check_interval),
        database_size=limits.get("database_size", read.size, MIN_DATABASE_SIZE),
    )
    node = top.get("node", read.name)
    address = top.get("address", read.address)
    domain = top.get("domain", read.domain)
    services_dir = top.get("services_dir", read.string, None, "", True)
    state_dir = top.get("state_dir", read.string, None, "", True)
    rules = top.get("conflicts", read.rules) or []
    if read.problems:
        raise ConfigError(sorted(read.problems, key=lambda p: p.line or 0))
    if settings_http.token is None and not is_loopback(settings_http.listen):
        # Checked here as well as at start so that `validate`-style reloads say it early.
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
        cluster=settings_cluster,
        limits=settings_limits,
        source=source,
    )


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)
