"""The event log's vocabulary: every event the registry records, built here and nowhere else.

Two paths write events: the catalog's journal (with the snapshot that shows the
change, one transaction per publish) and the store's own transactions that must
commit with a change a client waits on (an API registration, a conflict rule).
Both take `Event` values made by the functions below, so that an event's kind, its
subject and the shape of its detail are spelled once; `/v1/events` serves them as
they are. Fleet mode adds its own here (a remote node's instance seen or gone).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Mapping

from registry.errors import ConflictError, Problem
from registry.model import CheckState, ConflictRule, Instance, Source
from registry.states import NodeState, Trigger, Window


class EventKind(str, enum.Enum):
    REGISTRATION = "registration"
    UPDATE = "update"
    DEREGISTRATION = "deregistration"
    REJECTION = "rejection"
    HEALTH = "health"
    MAINTENANCE = "maintenance"
    NODE = "node"
    WINDOW = "window"
    CONFLICT_RULE = "conflict_rule"
    CONFLICT_RULE_DELETED = "conflict_rule_deleted"
    PRUNE = "prune"


@dataclass(frozen=True, slots=True)
class Event:
    """One event to record: `subject` names what it is about (a file, `api:<id>`, a node)."""

    kind: EventKind
    subject: str
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as the log holds it: `seq` orders the log, `ts` is when it was written."""

    seq: int
    ts: float
    kind: str
    subject: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, object]:
        return {"seq": self.seq, "ts": self.ts, "kind": self.kind, "subject": self.subject, "detail": self.detail}


def _api(instance_id: str) -> str:
    return f"api:{instance_id}"


# -- files ----------------------------------------------------------------------


def file_applied(path: str, instance_ids: list[str]) -> Event:
    return Event(EventKind.REGISTRATION, str(Source.file(path)), {"path": path, "instances": instance_ids})


def file_rejected(path: str, problems: list[Problem]) -> Event:
    return Event(EventKind.REJECTION, str(Source.file(path)), {"problems": [p.to_dict() for p in problems]})


def file_removed(path: str, instance_ids: list[str]) -> Event:
    return Event(EventKind.DEREGISTRATION, str(Source.file(path)), {"path": path, "instances": instance_ids})


# -- the API ---------------------------------------------------------------------


def api_registered(instance_id: str, body: Mapping[str, Any], replaced: bool) -> Event:
    """An API registration as stored: its body is the detail."""
    return Event(EventKind.UPDATE if replaced else EventKind.REGISTRATION, _api(instance_id), body)


def api_refused(instance_id: str, conflict: ConflictError) -> Event:
    return Event(EventKind.REJECTION, _api(instance_id), {"error": conflict.to_dict()})


def api_deregistered(instance_id: str, reason: str) -> Event:
    return Event(EventKind.DEREGISTRATION, _api(instance_id), {"reason": reason})


def expired(instance: Instance, reason: str) -> Event:
    """An instance a file registered, removed without its file (TTL, deregister_after)."""
    return Event(EventKind.DEREGISTRATION, str(instance.source), {"id": instance.id, "reason": reason})


# -- health and state -------------------------------------------------------------


def check_changed(
    instance_id: str, state: CheckState, previous: CheckState | None, extra: Mapping[str, Any] | None = None
) -> Event:
    """A check's status changed (or it ran for the first time); `extra` is the runner's say."""
    detail = {
        "check": state.check_id,
        "from": previous.status.value if previous else None,
        "to": state.status.value,
        "output": state.output,
        **(extra or {}),
    }
    return Event(EventKind.HEALTH, instance_id, detail)


def maintenance(
    instance_id: str, before: NodeState | None, after: NodeState | None, reason: str | None, trigger: Trigger
) -> Event:
    """An instance's own maintenance moved (None: not in maintenance, serving as its checks say)."""
    detail = {
        "on": after is not None and after.drains,
        "from": before.value if before else None,
        "to": after.value if after else None,
        "reason": reason,
        "trigger": trigger.value,
    }
    return Event(EventKind.MAINTENANCE, instance_id, detail)


def node_changed(node: str, before: NodeState, after: NodeState, reason: str, trigger: Trigger) -> Event:
    return Event(EventKind.NODE, node, {"from": before.value, "to": after.value, "reason": reason, "trigger": trigger.value})


def window(action: str, window: Window, detail: Mapping[str, Any], trigger: Trigger) -> Event:
    """A maintenance window planned, opened, changed, cancelled or ended; `detail` is how the API shows it."""
    subject = window.instance or window.node
    return Event(EventKind.WINDOW, subject, {"action": action, "trigger": trigger.value, "window": dict(detail)})


def pruned(deleted: int, max_age: float, max_rows: int, oldest_seq: int | None) -> Event:
    """Events older than max_age or beyond max_rows went; the log now starts at `oldest_seq`."""
    detail = {"deleted": deleted, "max_age": max_age, "max_rows": max_rows, "oldest_seq": oldest_seq}
    return Event(EventKind.PRUNE, "events", detail)


# -- conflict rules ----------------------------------------------------------------


def rule_added(rule: ConflictRule) -> Event:
    return Event(EventKind.CONFLICT_RULE, f"{rule.a}/{rule.b}", rule.to_dict())


def rule_deleted(a: str, b: str, rule_id: int) -> Event:
    return Event(EventKind.CONFLICT_RULE_DELETED, f"{a}/{b}", {"id": rule_id})
