"""Validation of the health checks of a registration: one kind each, its target, its timing.

The registration validator (registry.schema) reads every other field; it inherits
this reader for `checks:`. A check may not run more often than the node's floor
(`limits.check_interval`) nor outlast its own interval, and an option of one kind
(`headers` of http) is refused on another.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any, Callable
from urllib.parse import urlsplit

from registry.fields import FieldReader, alternatives
from registry.model import CheckKind, CheckSpec, format_duration
from registry.names import HTTP_HEADER, INSTANCE_ID, SYSTEMD_UNIT
from registry.yamldoc import FieldPath, LocatedDoc, kind_of, quoted

CHECK_KINDS = tuple(kind.value for kind in CheckKind)
CHECK_COMMON = ("id", "name", "interval", "timeout", "rise", "fall", "deregister_after")
HTTP_ONLY = ("method", "headers", "status", "tls_skip_verify", "body")
CHECK_FIELDS = CHECK_KINDS + CHECK_COMMON + HTTP_ONLY

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "OPTIONS")
CHECK_DEFAULTS = {f.name: f.default for f in dataclasses.fields(CheckSpec)}


class CheckReader(FieldReader):
    """Reads `checks:` lists; `floor` is the shortest interval (and TTL) allowed here."""

    def __init__(self, path: str, located: LocatedDoc, floor: float) -> None:
        super().__init__(path, located)
        self.floor = floor

    def checks(self, value: Any, at: FieldPath, instance_id: str) -> tuple[CheckSpec, ...]:
        if not isinstance(value, list):
            self.problem(at, f"must be a list of checks, not {kind_of(value)}")
            return ()
        specs = []
        kinds_seen: dict[str, int] = {}
        for i, item in enumerate(value):
            spec = self.check(item, at + (i,), instance_id, kinds_seen)
            if spec is not None:
                specs.append(spec)
        return tuple(specs)

    def check(self, value: Any, at: FieldPath, instance_id: str, kinds_seen: dict[str, int]) -> CheckSpec | None:
        before = len(self.problems)
        data = self.mapping(value, at, CHECK_FIELDS)
        if data is None:
            return None
        data = {key: item for key, item in data.items() if item is not None}
        kinds = [kind for kind in CHECK_KINDS if kind in data]
        if len(kinds) != 1:
            found = f" (found {', '.join(kinds)})" if kinds else ""
            self.problem(at, f"a check needs exactly one of {', '.join(CHECK_KINDS)}{found}")
            return None
        kind = CheckKind(kinds[0])
        spec: dict[str, Any] = {"kind": kind}
        target_at = at + (kind.value,)
        raw_target = data[kind.value]
        parsers: dict[CheckKind, Callable[[Any, FieldPath], dict[str, Any] | None]] = {
            CheckKind.TCP: self.tcp_target,
            CheckKind.HTTP: self.http_target,
            CheckKind.TTL: lambda v, a: {"ttl": d} if (d := self.duration(v, a)) is not None else None,
            CheckKind.EXEC: self.exec_target,
            CheckKind.SYSTEMD: lambda v, a: {"target": u} if (u := self.string(v, a, SYSTEMD_UNIT, "is not a systemd unit name")) else None,
        }
        target = parsers[kind](raw_target, target_at)
        if target is not None:
            spec.update(target)
        for key in ("interval", "timeout", "deregister_after"):
            if key in data:
                spec[key] = self.duration(data[key], at + (key,))
        self.check_timing(spec, at, "interval" in data)
        for key in ("rise", "fall"):
            if key in data:
                spec[key] = self.integer(data[key], at + (key,), 1, 100)
        if "name" in data:
            spec["name"] = self.string(data["name"], at + ("name",))
        for key in HTTP_ONLY:
            if key in data and kind is not CheckKind.HTTP:
                self.problem(at + (key,), f"only applies to http checks, not {kind.value}")
        if kind is CheckKind.HTTP:
            self.http_options(data, at, spec)
        n = kinds_seen.get(kind.value, 0) + 1
        kinds_seen[kind.value] = n
        check_id = f"{instance_id}:{kind.value}" + (f":{n}" if n > 1 else "")
        if "id" in data:
            check_id = self.string(data["id"], at + ("id",), INSTANCE_ID, "is not a valid check id") or check_id
        if len(self.problems) > before:
            return None
        return CheckSpec(id=check_id, **{k: v for k, v in spec.items() if v is not None})

    def check_timing(self, spec: dict[str, Any], at: FieldPath, interval_given: bool) -> None:
        """A check may not run more than once a floor interval, nor outlast its interval.

        A TTL check never probes: its `ttl` is the period the service reports in, so
        the floor applies to that. Its interval and timeout go unused, and are held to
        the same rules only so that every check reads the same way.
        """
        floor = self.floor
        hint = "limits.check_interval"
        interval = spec.get("interval", CHECK_DEFAULTS["interval"])
        timeout = spec.get("timeout", CHECK_DEFAULTS["timeout"])
        if interval is not None and interval < floor:
            self.problem(at + ("interval",), f"{format_duration(interval)} is shorter than the {format_duration(floor)} minimum ({hint})")
            return
        if spec.get("ttl") is not None and spec["ttl"] < floor:
            self.problem(at + ("ttl",), f"{format_duration(spec['ttl'])} is shorter than the {format_duration(floor)} minimum ({hint})")
        if interval is None or timeout is None or timeout <= interval:
            return
        if "timeout" not in spec:
            # Only the default timeout is longer than a short interval: shorten the
            # default rather than refuse what the operator wrote (`interval: 1s`).
            spec["timeout"] = interval
        elif interval_given:
            self.problem(at + ("timeout",), f"{format_duration(timeout)} is longer than the interval ({format_duration(interval)})")
        else:
            self.problem(at + ("timeout",), f"{format_duration(timeout)} is longer than the default interval "
                                            f"({format_duration(interval)}); set a longer interval")

    def tcp_target(self, value: Any, at: FieldPath) -> dict[str, Any] | None:
        text = self.string(value, at)
        if text is None:
            return None
        host, _, port = text.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            self.problem(at, f"{quoted(text)} must be host:port (port 1..65535; IPv6 as [::1]:80)")
            return None
        return {"target": text}

    def http_target(self, value: Any, at: FieldPath) -> dict[str, Any] | None:
        text = self.string(value, at)
        if text is None:
            return None
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problem(at, f"{quoted(text)} must be an http:// or https:// URL with a host")
            return None
        try:
            parts.port
        except ValueError:
            self.problem(at, f"{quoted(text)} has a bad port")
            return None
        return {"target": text}

    def exec_target(self, value: Any, at: FieldPath) -> dict[str, Any] | None:
        if isinstance(value, str):
            try:
                argv = shlex.split(value)
            except ValueError as exc:
                self.problem(at, f"cannot split command: {exc}")
                return None
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            argv = list(value)
        else:
            self.problem(at, f"must be a command: a list of strings or one string, not {kind_of(value)}")
            return None
        if not argv or not argv[0]:
            self.problem(at, "must name a program to run")
            return None
        return {"argv": tuple(argv)}

    def http_options(self, data: dict[str, Any], at: FieldPath, spec: dict[str, Any]) -> None:
        if "method" in data:
            method = self.string(data["method"], at + ("method",))
            if method is not None and method.upper() not in HTTP_METHODS:
                self.problem(at + ("method",), f"{quoted(method)} must be {alternatives(HTTP_METHODS)}")
            elif method is not None:
                spec["method"] = method.upper()
        if "headers" in data:
            spec["headers"] = self.string_map(data["headers"], at + ("headers",), HTTP_HEADER)
        if "status" in data:
            codes = data["status"] if isinstance(data["status"], list) else [data["status"]]
            parsed = [self.integer(code, at + ("status",), 100, 599) for code in codes]
            if codes and all(code is not None for code in parsed):
                spec["expected_status"] = tuple(parsed)
            elif not codes:
                self.problem(at + ("status",), "must list at least one status code")
        if "tls_skip_verify" in data:
            spec["tls_skip_verify"] = self.boolean(data["tls_skip_verify"], at + ("tls_skip_verify",))
        if "body" in data:
            spec["body_contains"] = self.string(data["body"], at + ("body",))
