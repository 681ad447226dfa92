"""How the config file reads its own kinds of value, on top of the shared field reader.

Names, IP addresses, endpoints, networks, percentages, sizes, the check floor and
conflict rules: each is refused with `file:line: key: message` like any other field
(registry.fields), and each comes out typed, so that nothing past loading parses
config text again.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable, TypeVar

from registry.cluster.keys import check_prefix
from registry.endpoints import Endpoint, parse_address, parse_etcd
from registry.fields import FieldReader
from registry.model import ConflictRule, ConflictType
from registry.names import DNS_LABEL, DNS_NAME
from registry.textfile import parse_size
from registry.yamldoc import FieldPath, kind_of
from resolver.dns.answers import BareNames

T = TypeVar("T")

# Checks never run more often than once a second (the health runner holds to it too):
# limits.check_interval can only raise the floor.
MIN_CHECK_INTERVAL_FLOOR = 1.0
RULE_KEYS = ("a", "b", "type", "reason")
DAYS = re.compile(r"([0-9]+)d")
# A lease shorter than a second cannot be granted; one longer than an hour would keep
# a killed daemon's instances in every answer for that long.
LEASE_TTL_RANGE = (1.0, 3600.0)
CONFLICT_TYPES = tuple(kind.value for kind in ConflictType)


class Section:
    """One mapping of the config file, read key by key; a key absent or null reads as None (its default)."""

    def __init__(self, read: ConfigReader, value: Any, at: FieldPath, allowed: tuple[str, ...]) -> None:
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


class ConfigReader(FieldReader):
    """The shared field reader, plus the config's own kinds of value."""

    def name(self, value: Any, at: FieldPath) -> str | None:
        return self.string(value, at, DNS_LABEL, "is not a valid DNS name (lower-case letters, digits, '-')", True)

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

    def each(self, value: Any, at: FieldPath, parse: Callable[[str], T]) -> list[T] | None:
        """A list of strings, each read by `parse`; its ValueError is that item's problem."""
        values = self.string_list(value, at)
        if values is None:
            return None
        good = []
        for i, text in enumerate(values):
            try:
                good.append(parse(text))
            except ValueError as exc:
                self.problem(at + (i,) if len(values) > 1 else at, str(exc))
        return good

    def listen(self, value: Any, at: FieldPath) -> list[Endpoint] | None:
        return self.each(value, at, parse_address)

    def recursors(self, value: Any, at: FieldPath) -> list[Endpoint] | None:
        return self.each(value, at, lambda text: parse_address(text, 53))

    def etcd(self, value: Any, at: FieldPath) -> list[Endpoint] | None:
        return self.each(value, at, _etcd_endpoint)

    def etcd_prefix(self, value: Any, at: FieldPath) -> str | None:
        text = self.string(value, at, non_empty=True)
        if text is None:
            return None
        try:
            return check_prefix(text)
        except ValueError as exc:
            self.problem(at, str(exc))
            return None

    def lease_ttl(self, value: Any, at: FieldPath) -> int | None:
        """Whole seconds (etcd grants leases in seconds), within LEASE_TTL_RANGE."""
        seconds = self.duration(value, at, LEASE_TTL_RANGE)
        if seconds is None:
            return None
        if seconds != int(seconds):
            self.problem(at, f"must be a whole number of seconds (etcd leases count seconds), not {seconds:g}s")
            return None
        return int(seconds)

    def networks(self, value: Any, at: FieldPath) -> list[str] | None:
        """CIDR networks (`10.0.0.0/8`, `fd00::/8`; a bare address is its /32 or /128)."""
        return self.each(value, at, _network)

    def one_listen(self, value: Any, at: FieldPath) -> Endpoint | None:
        if not isinstance(value, str):
            self.problem(at, f"must be one host:port string, not {kind_of(value)}")
            return None
        listen = self.listen(value, at)
        return listen[0] if listen else None

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

    def bare_names(self, value: Any, at: FieldPath) -> BareNames | None:
        """`all`, `srv` or `off`; YAML reads a bare `off` as false, which means it too."""
        if value is False:
            return BareNames.OFF
        text = self.choice(value, at, [choice.value for choice in BareNames])
        return None if text is None else BareNames(text)

    def age(self, value: Any, at: FieldPath, within: tuple[float, float]) -> float | None:
        """A duration that may be counted in days too (`30d`), as retention periods are."""
        days = DAYS.fullmatch(value) if isinstance(value, str) else None
        if days is None:
            duration = self.duration(value, at)
            if duration is None:
                return None
            seconds = duration
        else:
            seconds = int(days.group(1)) * 86400.0
        # One message whichever way it was written: the bound in seconds read 3.1536e+08s.
        if not within[0] <= seconds <= within[1]:
            self.problem(at, f"must be between {within[0]:g}s and {within[1] / 86400:g}d")
            return None
        return seconds

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
            rule = Section(self, item, at + (i,), RULE_KEYS)
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


def _network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text))
    except ValueError:
        pass
    try:
        hint = f"has host bits set (did you mean {str(ipaddress.ip_network(text, strict=False))!r}?)"
    except ValueError:
        hint = "is not a network such as 10.0.0.0/8 or fd00::/8"
    raise ValueError(f"{text!r} {hint}")


def _etcd_endpoint(text: str) -> Endpoint:
    try:
        return parse_etcd(text)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
