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

import ipaddress
from pathlib import Path
from typing import Any

from registry.checkschema import CheckReader
from registry.errors import Problem, ValidationError
from registry.model import API, REGISTRATION_FIELDS, CheckSpec, Instance, NodeIdentity, Source, Transport
from registry.names import DNS_LABEL, INSTANCE_ID, META_KEY, PROTOCOL, TAG
from registry.textfile import DEFAULT_MAX_BYTES, read_text
from registry.wellknown import WELL_KNOWN
from registry.yamldoc import FieldPath, LocatedDoc, collector_paused, compose, dotted, kind_of, quoted, unclean

TRANSPORTS = tuple(transport.value for transport in Transport)
# Top-level keys that only hold anchors for `<<: *name` merges, as Docker Compose's
# `x-` extension fields do; the registry ignores them.
EXTENSION_PREFIX = "x-"
API_PATH = "<request>"


class _Validator(CheckReader):
    """Walks one document, collecting every problem rather than stopping at the first."""

    def __init__(self, path: str, located: LocatedDoc, identity: NodeIdentity, source: Source) -> None:
        super().__init__(path, located, identity.min_check_interval)
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


def parse_registration(body: Any, identity: NodeIdentity, source: Source = API, strings_clean: bool = False) -> Instance:
    """One instance from a JSON request body (same fields as a YAML registration).

    `strings_clean`: the caller has already made sure that no string in `body` holds
    a control character or a lone surrogate (fleet mode scans the raw JSON text,
    which is several times cheaper than walking the decoded value).
    """
    located = LocatedDoc()
    validator = _Validator(API_PATH, located, identity, source)
    # YAML's reader refuses control characters as it converts; JSON has no such
    # step (json.loads turns "\ud800" into a lone surrogate), so every string of
    # the body, keys included, is looked at here first.
    for at, reason in () if strings_clean else unclean_strings(body):
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
