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

import difflib
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from registry.errors import Problem, ValidationError
from registry.model import ConflictRule, ConflictType, NodeIdentity
from registry.nodestate import NodeThresholds
from registry.schema import parse_duration
from registry.textfile import DEFAULT_MAX_BYTES, MAX_MAX_BYTES, parse_size, read_text
from registry.yamldoc import compose, kind_of


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
Located = dict[tuple[str, ...], int]

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
        return _build({}, {}, "<default>", Path.cwd(), None)
    try:
        # Read as registration files are (a regular file, size-capped, never blocking):
        # SIGHUP re-reads it on the event loop.
        text = read_text(path, DEFAULT_MAX_BYTES)
    except ValidationError as exc:
        raise ConfigError(exc.problems) from None
    doc, lines = _compose(text, path)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError([Problem(path, 1, "(top)", "the config file must be a mapping of keys")])
    return _build(doc, lines, path, Path(path).resolve().parent, str(Path(path).resolve()))


def _compose(text: str, path: str) -> tuple[Any, Located]:
    """Plain Python values plus the line of every key, so errors can point at it."""
    doc = compose(text, path)
    if doc.problems:
        raise ConfigError(doc.problems)
    # The reader addresses list items by their index as text ("conflicts", "0", "a").
    return doc.value, {tuple(str(part) for part in at): line for at, line in doc.lines.items()}


class _Reader:
    """Typed reads of one config document, collecting problems instead of stopping."""

    def __init__(self, path: str, lines: Located) -> None:
        self.path = path
        self.lines = lines
        self.problems: list[Problem] = []

    def problem(self, at: tuple[str, ...], message: str) -> None:
        line = self.lines.get(at) or self.lines.get(at[:-1])
        dotted = ".".join(part if not part.isdigit() else f"[{part}]" for part in at).replace(".[", "[")
        self.problems.append(Problem(self.path, line, dotted or "(top)", message))

    def section(self, doc: dict[str, Any], at: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, Any]:
        value = _get(doc, at)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(at, f"must be a mapping, not {kind_of(value)}")
            return {}
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                self.problem(at + (key,), "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return value

    def string(self, data: dict[str, Any], at: tuple[str, ...], pattern: re.Pattern[str] | None = None) -> str | None:
        value = data.get(at[-1])
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.problem(at, f"must be a non-empty string, not {kind_of(value)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(at, f"{value!r} is not a valid DNS name (lower-case letters, digits, '-')")
            return None
        return value

    def strings(self, data: dict[str, Any], at: tuple[str, ...]) -> list[str] | None:
        value = data.get(at[-1])
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(at, f"must be a list of strings, not {kind_of(value)}")
            return None
        return value

    def listen(self, data: dict[str, Any], at: tuple[str, ...], default_port: int | None = None) -> list[str] | None:
        values = self.strings(data, at)
        if values is None:
            return None
        good = []
        for i, text in enumerate(values):
            try:
                host, port = parse_listen(text, default_port)
            except ValueError as exc:
                self.problem(at + (str(i),) if len(values) > 1 else at, str(exc))
                continue
            good.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return good

    def duration(self, data: dict[str, Any], at: tuple[str, ...]) -> float | None:
        value = data.get(at[-1])
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(at, f"must be a duration string such as 5s or 500ms, not {kind_of(value)}")
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.problem(at, str(exc))
            return None

    def networks(self, data: dict[str, Any], at: tuple[str, ...]) -> list[str] | None:
        """CIDR networks (`10.0.0.0/8`, `fd00::/8`; a bare address is its /32 or /128)."""
        values = self.strings(data, at)
        if values is None:
            return None
        good = []
        for i, text in enumerate(values):
            where = at + (str(i),) if len(values) > 1 else at
            try:
                good.append(str(ipaddress.ip_network(text)))
                continue
            except ValueError:
                pass
            try:
                hint = f"has host bits set (did you mean {str(ipaddress.ip_network(text, strict=False))!r}?)"
            except ValueError:
                hint = "is not a network such as 10.0.0.0/8 or fd00::/8"
            self.problem(where, f"{text!r} {hint}")
        return good

    def number(self, data: dict[str, Any], at: tuple[str, ...], minimum: float, integer: bool = False) -> float | None:
        """A number >= `minimum` (an integer when `integer`), or None when absent or null."""
        value = data.get(at[-1])
        if value is None:
            return None
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(at, f"must be {kind} >= {minimum:g}, not {kind_of(value)}")
            return None
        if (integer and not isinstance(value, int)) or not minimum <= value < float("inf"):
            self.problem(at, f"must be {kind} >= {minimum:g}, not {value!r}")
            return None
        return value

    def boolean(self, data: dict[str, Any], at: tuple[str, ...]) -> bool | None:
        value = data.get(at[-1])
        if value is not None and not isinstance(value, bool):
            self.problem(at, f"must be true or false, not {kind_of(value)}")
            return None
        return value

    def percent(self, data: dict[str, Any], at: tuple[str, ...]) -> float | None:
        value = data.get(at[-1])
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100:
            self.problem(at, f"must be a percentage between 0 and 100, not {value!r}")
            return None
        return float(value)

    def size(self, data: dict[str, Any], at: tuple[str, ...], minimum: int = 1, maximum: int | None = None) -> int | None:
        value = data.get(at[-1])
        if value is None:
            return None
        try:
            return parse_size(value, minimum, maximum)
        except ValueError as exc:
            self.problem(at, str(exc))
            return None

    def integer(self, data: dict[str, Any], at: tuple[str, ...], low: int, high: int) -> int | None:
        value = data.get(at[-1])
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(at, f"must be an integer from {low} to {high}, not {value!r}")
            return None
        return value

    def bounded_duration(self, data: dict[str, Any], at: tuple[str, ...], low: float, high: float) -> float | None:
        seconds = self.duration(data, at)
        if seconds is not None and not low <= seconds <= high:
            self.problem(at, f"must be between {low:g}s and {high:g}s")
            return None
        return seconds

    def rules(self, doc: dict[str, Any]) -> list[ConflictRule]:
        value = doc.get("conflicts")
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(("conflicts",), f"must be a list of {{a, b, type, reason}}, not {kind_of(value)}")
            return []
        rules = []
        kinds = [t.value for t in ConflictType]
        for i, item in enumerate(value):
            at = ("conflicts", str(i))
            data = self.section(doc, at, RULE_KEYS)
            if not isinstance(item, dict):
                continue
            a = self.string(data, at + ("a",), SERVICE_NAME)
            b = self.string(data, at + ("b",), SERVICE_NAME)
            kind = self.string(data, at + ("type",))
            reason = data.get("reason", "")
            for key in ("a", "b", "type"):
                if key not in data:
                    self.problem(at, f"missing key {key!r}")
            if kind is not None and kind not in kinds:
                self.problem(at + ("type",), f"{kind!r} is not one of {', '.join(kinds)}")
                kind = None
            if not isinstance(reason, str):
                self.problem(at + ("reason",), f"must be a string, not {kind_of(reason)}")
                continue
            if a and b and kind:
                if a == b:
                    self.problem(at, "a and b must be different services")
                    continue
                rules.append(ConflictRule(a, b, ConflictType(kind), reason, source="config"))
        return rules


def _get(doc: dict[str, Any], at: tuple[str, ...]) -> Any:
    value: Any = doc
    for part in at:
        if isinstance(value, list):
            value = value[int(part)] if int(part) < len(value) else None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _build(doc: dict[str, Any], lines: Located, path: str, base: Path, source: str | None) -> Config:
    read = _Reader(path, lines)
    top = read.section(doc, (), TOP_KEYS)
    node = read.string(top, ("node",), SERVICE_NAME)
    address = read.string(top, ("address",))
    if address is not None:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            read.problem(("address",), f"{address!r} is not an IP address")
    domain = read.string(top, ("domain",))
    if domain is not None:
        domain = domain.strip(".").lower()
        if not DNS_NAME.fullmatch(domain):
            read.problem(("domain",), f"{domain!r} is not a valid DNS name")
    services_dir = read.string(top, ("services_dir",))
    state_dir = read.string(top, ("state_dir",))
    dns = read.section(top, ("dns",), SECTION_KEYS["dns"])
    http = read.section(top, ("http",), SECTION_KEYS["http"])
    checks = read.section(top, ("health",), SECTION_KEYS["health"])
    health = read.section(top, ("node_health",), SECTION_KEYS["node_health"])
    cluster = read.section(top, ("cluster",), SECTION_KEYS["cluster"])
    limits = read.section(top, ("limits",), SECTION_KEYS["limits"])
    dns_listen = read.listen(dns, ("dns", "listen"))
    http_listen = None
    if http.get("listen") is not None and not isinstance(http["listen"], str):
        read.problem(("http", "listen"), f"must be one host:port string, not {kind_of(http['listen'])}")
    else:
        http_listen = read.listen(http, ("http", "listen"))
    token = http.get("token")
    if token is not None and (not isinstance(token, str) or not token):
        read.problem(("http", "token"), f"must be a non-empty string or null, not {kind_of(token)}")
        token = None
    settings_dns = DnsSettings(
        listen=tuple(dns_listen) if dns_listen is not None else DnsSettings.listen,
        ttl=_pick(read.duration(dns, ("dns", "ttl")), DnsSettings.ttl),
        recursors=tuple(_pick(read.listen(dns, ("dns", "recursors"), default_port=53), [])),
        answer_warning=_pick(read.boolean(dns, ("dns", "answer_warning")), False),
        recursion_allow=tuple(_pick(read.networks(dns, ("dns", "recursion_allow")), [])),
        rate_limit=_float_or_none(read.number(dns, ("dns", "rate_limit"), minimum=0.001)),
        tcp_connections=int(_pick(read.number(dns, ("dns", "tcp_connections"), minimum=1, integer=True),
                                  DnsSettings.tcp_connections)),
    )
    settings_http = HttpSettings(
        listen=(http_listen or [HttpSettings.listen])[0],
        token=token,
        max_connections=_pick(
            read.integer(http, ("http", "max_connections"), *MAX_CONNECTIONS_RANGE), HttpSettings.max_connections
        ),
        header_timeout=_pick(
            read.bounded_duration(http, ("http", "header_timeout"), *HTTP_TIMEOUT_RANGE), HttpSettings.header_timeout
        ),
        body_timeout=_pick(
            read.bounded_duration(http, ("http", "body_timeout"), *HTTP_TIMEOUT_RANGE), HttpSettings.body_timeout
        ),
    )
    settings_health = HealthSettings(exec_from_api=_pick(read.boolean(checks, ("health", "exec_from_api")), False))
    if settings_health.exec_from_api and token is None:
        read.problem(("health", "exec_from_api"),
                     "true needs http.token: without a token any local user could run commands as the daemon")
    thresholds = NodeThresholds(
        cpu=_pick(read.percent(health, ("node_health", "cpu")), NodeThresholds.cpu),
        memory=_pick(read.percent(health, ("node_health", "memory")), NodeThresholds.memory),
        disk=_pick(read.percent(health, ("node_health", "disk")), NodeThresholds.disk),
    )
    settings_cluster = ClusterSettings(
        etcd=tuple(_pick(read.strings(cluster, ("cluster", "etcd")), [])),
        prefix=_pick(read.string(cluster, ("cluster", "prefix")), ClusterSettings.prefix),
    )
    check_interval = read.duration(limits, ("limits", "check_interval"))
    if check_interval is not None and check_interval < MIN_CHECK_INTERVAL_FLOOR:
        read.problem(("limits", "check_interval"), f"must be at least {MIN_CHECK_INTERVAL_FLOOR:g}s")
    settings_limits = LimitSettings(
        file_size=_pick(read.size(limits, ("limits", "file_size"), maximum=MAX_MAX_BYTES), LimitSettings.file_size),
        check_interval=_pick(check_interval, LimitSettings.check_interval),
        database_size=read.size(limits, ("limits", "database_size"), minimum=MIN_DATABASE_SIZE),
    )
    rules = read.rules(top)
    if read.problems:
        raise ConfigError(sorted(read.problems, key=lambda p: p.line or 0))
    if settings_http.token is None and not is_loopback(settings_http.listen):
        # Checked here as well as at start so that `validate`-style reloads say it early.
        raise ConfigError([Problem(path, lines.get(("http", "listen")), "http.listen",
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
