"""Validation of registrations: YAML files in services.d and JSON request bodies.

One validator serves both, so a field means the same thing wherever it arrives.
YAML is composed into nodes first so that every problem can name its line; a file
is accepted or rejected whole, and every problem in it is reported at once (an
operator fixing a file should not have to play whack-a-mole). Every string that gets
in is clean (no control characters, no lone surrogates: DNS and JSON readers serve
them as they are), every pattern matches the whole string, every duration is finite,
and no check runs more often than the node's floor allows.

Nothing here touches the catalog or the store: the output is `Instance` values or a
`ValidationError` listing `Problem`s.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import shlex
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from registry.errors import Problem, ValidationError
from registry.fields import FieldReader, alternatives
from registry.model import (
    API,
    REGISTRATION_FIELDS,
    CheckKind,
    CheckSpec,
    Instance,
    NodeIdentity,
    Source,
    Transport,
    format_duration,
)
from registry.textfile import DEFAULT_MAX_BYTES, read_text
from registry.wellknown import WELL_KNOWN
from registry.yamldoc import FieldPath, LocatedDoc, collector_paused, compose, dotted, kind_of, quoted, unclean

CHECK_KINDS = tuple(kind.value for kind in CheckKind)
CHECK_COMMON = ("id", "name", "interval", "timeout", "rise", "fall", "deregister_after")
HTTP_ONLY = ("method", "headers", "status", "tls_skip_verify", "body")
CHECK_FIELDS = CHECK_KINDS + CHECK_COMMON + HTTP_ONLY

# Patterns are applied with `fullmatch`: `$` would also match before a final newline,
# and "evil\n" would pass for a name.
DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
TAG = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,62})")
INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
PROTOCOL = re.compile(r"[a-z][a-z0-9+.-]{0,31}")
META_KEY = re.compile(r"[A-Za-z0-9_.-]{1,128}")
SYSTEMD_UNIT = re.compile(r"[A-Za-z0-9:_.@\\-]{1,256}")
HTTP_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "OPTIONS")
TRANSPORTS = tuple(transport.value for transport in Transport)
# Top-level keys that only hold anchors for `<<: *name` merges, as Docker Compose's
# `x-` extension fields do; the registry ignores them.
EXTENSION_PREFIX = "x-"
API_PATH = "<request>"
CHECK_DEFAULTS = {f.name: f.default for f in dataclasses.fields(CheckSpec)}


class _Validator(FieldReader):
    """Walks one document, collecting every problem rather than stopping at the first."""

    def __init__(self, path: str, located: LocatedDoc, identity: NodeIdentity, source: Source) -> None:
        super().__init__(path, located)
        self.identity = identity
        self.source = source

    # -- documents ----------------------------------------------------------

    def document(self, doc: Any) -> list[Instance]:
        if doc is None:
            return []
        if not isinstance(doc, dict):
            self.problem((), f"a file holds one service mapping or `services: [...]`, not {kind_of(doc)}")
            return []
        if "services" in doc:
            extra = [key for key in doc if key != "services" and not key.startswith(EXTENSION_PREFIX)]
            if extra:
                self.problem((extra[0],), "a file holds one service mapping or `services: [...]`, not both")
                return []
            services = doc["services"]
            if not isinstance(services, list):
                self.problem(("services",), f"must be a list of services, not {kind_of(services)}")
                return []
            found = [self.service(item, ("services", i)) for i, item in enumerate(services)]
        else:
            found = [self.service({key: value for key, value in doc.items() if not key.startswith(EXTENSION_PREFIX)}, ())]
        instances = [instance for instance in found if instance is not None]
        self.unique_ids(instances, "services" in doc)
        return instances

    def unique_ids(self, instances: list[Instance], listed: bool) -> None:
        seen: dict[str, int] = {}
        checks: dict[str, int] = {}
        for position, instance in enumerate(instances):
            at: FieldPath = ("services", position) if listed else ()
            if instance.id in seen:
                self.problem(at + ("id",), f"duplicate id {instance.id!r} (also services[{seen[instance.id]}])")
            seen.setdefault(instance.id, position)
            for n, check in enumerate(instance.checks):
                if check.id in checks:
                    self.problem(at + ("checks", n, "id"), f"duplicate check id {check.id!r}")
                checks.setdefault(check.id, position)

    def service(self, value: Any, at: FieldPath) -> Instance | None:
        before = len(self.problems)
        data = self.mapping(value, at, REGISTRATION_FIELDS)
        if data is None:
            return None
        # An explicit null (`ttl:` in YAML, "ttl": null in JSON) means "not set".
        data = {key: item for key, item in data.items() if item is not None}
        fields: dict[str, Any] = {}
        name = None
        if "name" not in data:
            self.problem(at + ("name",), "missing required key")
        else:
            name = self.dns_name(data["name"], at + ("name",))
        default = WELL_KNOWN.get(name or "")
        node = self.identity.node
        if "node" in data:
            node = self.dns_name(data["node"], at + ("node",)) or node
        if "address" in data:
            address = self.string(data["address"], at + ("address",))
            if address is not None:
                try:
                    fields["address"] = str(ipaddress.ip_address(address))
                except ValueError:
                    self.problem(at + ("address",), f"{quoted(address)} is not an IPv4 or IPv6 address")
        elif node != self.identity.node:
            self.problem(at + ("address",), f"required for an instance on another node ({node})")
        if "port" in data:
            fields["port"] = self.integer(data["port"], at + ("port",), 1, 65535)
        elif default is not None:
            fields["port"] = default.port
        elif name is not None:
            self.problem(at + ("port",), f"missing required key ({name!r} has no well-known port)")
        if "protocol" in data:
            fields["protocol"] = self.string(
                data["protocol"], at + ("protocol",), PROTOCOL, "is not a URL scheme (lowercase, e.g. http, redis)"
            )
        elif default is not None:
            fields["protocol"] = default.protocol
        if "transport" in data:
            transport = self.choice(data["transport"], at + ("transport",), TRANSPORTS)
            if transport is not None:
                fields["transport"] = Transport(transport)
        if "endpoint_path" in data:
            path = self.string(data["endpoint_path"], at + ("endpoint_path",))
            if path is not None and (path and not path.startswith("/") or any(c.isspace() for c in path)):
                self.problem(at + ("endpoint_path",), f"{quoted(path)} must be empty or start with '/' and hold no spaces")
            else:
                fields["endpoint_path"] = path
        if "version" in data:
            fields["version"] = self.text(data["version"], at + ("version",))
        if "tags" in data:
            fields["tags"] = self.tags(data["tags"], at + ("tags",))
        if "meta" in data:
            fields["meta"] = self.string_map(data["meta"], at + ("meta",), META_KEY)
        for key in ("weight", "priority"):
            if key in data:
                fields[key] = self.integer(data[key], at + (key,), 0, 65535)
        if "discoverable" in data:
            fields["discoverable"] = self.boolean(data["discoverable"], at + ("discoverable",))
        if "ttl" in data:
            fields["ttl"] = self.duration(data["ttl"], at + ("ttl",))
        port = fields.get("port")
        instance_id = f"{name}-{port}" if name and port else None
        if "id" in data:
            instance_id = self.string(
                data["id"], at + ("id",), INSTANCE_ID, "is not a valid id (letters, digits, '_', '.', ':', '@', '-')"
            )
        checks: tuple[CheckSpec, ...] = ()
        if "checks" in data:
            checks = self.checks(data["checks"], at + ("checks",), instance_id or "instance")
        if len(self.problems) > before or name is None or instance_id is None:
            return None
        fields = {key: value for key, value in fields.items() if value is not None}
        address_is_node = "address" not in fields
        return Instance(
            id=instance_id,
            name=name,
            node=node,
            address=fields.pop("address", self.identity.address),
            checks=checks,
            source=self.source,
            address_is_node=address_is_node,
            **fields,
        )

    def dns_name(self, value: Any, at: FieldPath) -> str | None:
        rule = "is not a DNS label (1-63 lowercase letters, digits and '-', no '-' at either end)"
        return self.string(value, at, DNS_LABEL, rule)

    def tags(self, value: Any, at: FieldPath) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            self.problem(at, f"must be a list of strings, not {kind_of(value)}")
            return None
        out: list[str] = []
        for i, item in enumerate(value):
            tag = self.string(item, at + (i,), TAG, "is not a tag (1-63 lowercase letters, digits, '_' and '-')")
            if tag is None:
                continue
            if tag in out:
                self.problem(at + (i,), f"duplicate tag {tag!r}")
                continue
            out.append(tag)
        return tuple(out)

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
        floor = self.identity.min_check_interval
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


def load_text(text: str, path: str, identity: NodeIdentity) -> list[Instance]:
    """Instances registered by one YAML document, or ValidationError naming every problem."""
    located = compose(text, path)
    if located.problems:
        raise ValidationError(located.problems)
    validator = _Validator(path, located, identity, Source.file(path))
    with collector_paused():
        instances = validator.document(located.value)
    if validator.problems:
        raise ValidationError(validator.problems)
    return instances


def load_file(path: str | Path, identity: NodeIdentity, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Instance]:
    """Instances registered by the file at `path`: a regular file of at most `max_bytes`."""
    path = str(path)
    return load_text(read_text(path, max_bytes), path, identity)


def parse_registration(body: Any, identity: NodeIdentity, source: Source = API) -> Instance:
    """One instance from a JSON request body (same fields as a YAML registration)."""
    located = LocatedDoc()
    validator = _Validator(API_PATH, located, identity, source)
    # YAML's reader refuses control characters as it converts; JSON has no such
    # step (json.loads turns "\ud800" into a lone surrogate), so every string of
    # the body, keys included, is looked at here first.
    for at, reason in unclean_strings(body):
        validator.problem(at, reason)
    instance = None if validator.problems else validator.service(body, ())
    if validator.problems or instance is None:
        raise ValidationError(validator.problems or [Problem(API_PATH, None, "(body)", "invalid registration")])
    return instance


def unclean_strings(value: Any) -> list[tuple[FieldPath, str]]:
    """Every string in a JSON value (keys too) that holds a control character or a lone surrogate."""
    found: list[tuple[FieldPath, str]] = []
    pending: list[tuple[FieldPath, Any]] = [((), value)]
    while pending:
        at, item = pending.pop()
        if isinstance(item, str):
            reason = unclean(item)
            if reason is not None:
                found.append((at, reason))
        elif isinstance(item, dict):
            for key, child in item.items():
                reason = unclean(key) if isinstance(key, str) else None
                if reason is not None:
                    found.append((at, f"key {reason}"))
                else:
                    pending.append((at + (key,), child))
        elif isinstance(item, list):
            pending.extend((at + (i,), child) for i, child in enumerate(item))
    return sorted(found, key=lambda pair: dotted(pair[0]))


def is_registration_file(path: str | Path) -> bool:
    """The watcher and the loader agree on what counts: *.yaml / *.yml, no dotfiles."""
    name = Path(path).name
    return name.endswith((".yaml", ".yml")) and not name.startswith(".")
