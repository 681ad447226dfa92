"""Errors the registry raises, as data.

Each protocol maps these to its own answer in exactly one place (HTTP status,
CLI exit code, log line), so they carry fields rather than pre-formatted text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from registry.model import ConflictRule, Instance, Source


class RegistryError(Exception):
    """Root of every error the registry raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a registration: where it is and what is wrong.

    `path` is the file (or "<api>" for a request body), `line` is 1-based when
    known, `field` is a dotted path such as `services[1].checks[0].interval`.
    """

    path: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        line = self.line if self.line is not None else "-"
        return f"{self.path}:{line}: {self.field}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "line": self.line, "field": self.field, "message": self.message}


class ValidationError(RegistryError):
    """A registration (file or body) was refused whole; `problems` says why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class ConflictError(RegistryError):
    """A registration was refused because an incumbent is in the way.

    `rule` is None for the implicit collision (same address, port and transport).
    """

    def __init__(self, candidate: Instance, incumbent: Instance, rule: ConflictRule | None, reason: str) -> None:
        self.candidate = candidate
        self.incumbent = incumbent
        self.rule = rule
        self.reason = reason
        super().__init__(
            f"{candidate.name} ({candidate.id}) conflicts with {incumbent.name} ({incumbent.id}) "
            f"on node {incumbent.node}: {reason}"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule.to_dict() if self.rule else None,
            "reason": self.reason,
            "candidate": {"id": self.candidate.id, "name": self.candidate.name},
            "incumbent": {
                "id": self.incumbent.id,
                "name": self.incumbent.name,
                "node": self.incumbent.node,
                "source": str(self.incumbent.source),
                "address": self.incumbent.address,
                "port": self.incumbent.port,
            },
        }


class DuplicateIdError(RegistryError):
    """An id on a node is already held by another source (a file or the API)."""

    def __init__(self, instance_id: str, node: str, holder: Source) -> None:
        self.instance_id = instance_id
        self.node = node
        self.holder = holder
        super().__init__(f"id {instance_id!r} on node {node} is already registered by {holder}")

    def to_dict(self) -> dict[str, object]:
        return {"id": self.instance_id, "node": self.node, "holder": str(self.holder), "file": self.holder.path or None}


def refusal_problem(path: str, error: ConflictError | DuplicateIdError) -> Problem:
    """How a file refused for what is in its way is reported beside files that did not parse."""
    return Problem(path, None, "id" if isinstance(error, DuplicateIdError) else "name", str(error))


class NotFoundError(RegistryError):
    def __init__(self, what: str, name: str) -> None:
        self.what = what
        self.name = name
        super().__init__(f"{what} {name!r} not found")


class ReadOnlyError(RegistryError):
    """An instance owned by a file (or the cluster) cannot be changed through the API."""

    def __init__(self, instance_id: str, source: Source) -> None:
        self.instance_id = instance_id
        self.source = source
        super().__init__(f"instance {instance_id!r} is owned by {source}; change it there")


class ConfigValueError(RegistryError):
    """A typed config value that does not cast to its declared type."""

    def __init__(self, key: str, value_type: str, message: str) -> None:
        self.key = key
        self.value_type = value_type
        super().__init__(f"config {key!r}: {message}")


class InvalidTransition(RegistryError):
    """A node state change the transition table does not allow (HTTP 409)."""

    def __init__(self, current: str, requested: str, allowed: list[str]) -> None:
        self.current = current
        self.requested = requested
        self.allowed = allowed
        super().__init__(f"cannot go from {current} to {requested}; allowed: {', '.join(allowed) or 'none'}")


class NotDraining(InvalidTransition):
    """`maint done` for a target that is not draining: there is no drain to cut short (HTTP 409)."""

    def __init__(self, target: str, current: str) -> None:
        self.current = current
        self.requested = "offline"
        self.allowed = []
        RegistryError.__init__(self, f"{target} is {current}, not draining: nothing to mark done")


class NothingToEnd(InvalidTransition):
    """`maint off` for a target nothing holds now (HTTP 409): a move to the state it is in.

    Said as such, with the window still to come if there is one: "cannot go from
    online to online" left an operator who meant to call off a planned window
    believing it gone.
    """

    def __init__(self, target: str, current: str, allowed: list[str], upcoming: str) -> None:
        self.current = current
        self.requested = current
        self.allowed = allowed
        RegistryError.__init__(self, f"{target} is {current}, not in maintenance: nothing to end{upcoming}")


class WindowOverlap(RegistryError):
    """A maintenance window that would hold its target while another one does (HTTP 409)."""

    def __init__(self, window_id: int, target: str, drain_at: str, ends: str | None) -> None:
        self.window_id = window_id
        self.target = target
        self.drain_at = drain_at
        self.ends = ends
        until = f"until {ends}" if ends else "until it is ended"
        super().__init__(f"window {window_id} holds {target} from {drain_at} {until}: change or cancel it first")


class WindowLimit(RegistryError):
    """A node already has as many maintenance windows as it may keep (HTTP 409)."""

    def __init__(self, node: str, limit: int) -> None:
        self.node = node
        self.limit = limit
        super().__init__(f"node {node} has {limit} maintenance windows, the most it keeps: cancel some first")


class StorageFault(enum.Enum):
    """Why SQLite refused: each is answered differently (HTTP 507 for FULL, 503 otherwise)."""

    FULL = "storage_full"
    READ_ONLY = "storage_read_only"
    CORRUPT = "storage_corrupt"
    UNAVAILABLE = "storage_unavailable"  # I/O error, locked by another process, cannot open


class StorageError(RegistryError):
    """The database refused a read or a write; nothing of that write was kept.

    `path` is the database file and `detail` SQLite's own words; the message says
    what an operator can do about it.
    """

    def __init__(self, fault: StorageFault, path: str, detail: str, advice: str) -> None:
        self.fault = fault
        self.path = path
        self.detail = detail
        self.advice = advice
        super().__init__(f"{path}: {detail}; {advice}")
