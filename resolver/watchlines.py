"""What `pilotfish watch` prints: each change of the watched instances, one line each.

A watch hands over whole states (every instance of the service, or of every
service); people want the difference. `WatchLines` keeps the last state and turns
the next one into lines: `+` an instance appeared, `-` it went, `~` it changed
(which fields, from what to what). The first state is printed as a `watching` line
and a `+` per instance, so what follows reads as a story. With `--json` each line is
one object: {"event": "watching"|"added"|"removed"|"changed", ...}.
"""

from __future__ import annotations

import json
import time
from typing import Any

from resolver.client import Instance, Instances, Services

# Fields whose change is worth a line; ids and names identify, the rest follows from these.
COMPARED = ("status", "url", "tags", "meta", "version", "weight", "priority")
Key = tuple[str, str, str]


class WatchLines:
    def __init__(self, name: str | None, as_json: bool) -> None:
        self.name = name
        self.as_json = as_json
        self._last: dict[Key, Instance] | None = None

    def lines(self, state: Instances | Services, now: float | None = None) -> list[str]:
        stamp = time.time() if now is None else now
        current = _flatten(state)
        events: list[dict[str, Any]] = []
        previous = self._last
        if previous is None:
            events.append({"event": "watching", "name": self.name, "index": state.index, "instances": len(current)})
            previous = {}
        for key in sorted(previous.keys() - current.keys()):
            events.append({"event": "removed", "instance": previous[key]})
        for key in sorted(current):
            instance = current[key]
            before = previous.get(key)
            if before is None:
                events.append({"event": "added", "instance": instance})
                continue
            changed = {f: [_field(before, f), _field(instance, f)] for f in COMPARED if _field(before, f) != _field(instance, f)}
            if changed:
                events.append({"event": "changed", "instance": instance, "changed": changed})
        self._last = current
        return [self._render(event, state.index, stamp) for event in events]

    def _render(self, event: dict[str, Any], index: int | None, stamp: float) -> str:
        if self.as_json:
            out = {**event, "ts": round(stamp, 3), "index": index}
            if "instance" in out:
                out["instance"] = out["instance"].to_dict()
            return json.dumps(out, sort_keys=True)
        clock = time.strftime("%H:%M:%S", time.localtime(stamp))
        kind = event["event"]
        if kind == "watching":
            what = self.name or "every service"
            count = event["instances"]
            return f"{clock} watching {what} at index {index}: {count} instance{'s' if count != 1 else ''}"
        instance: Instance = event["instance"]
        who = f"{instance.name} {instance.id}" + (f"@{instance.node}" if instance.node else "")
        if kind == "added":
            tags = ",".join(instance.tags) or "-"
            return f"{clock} + {who} {instance.url} {instance.status} {tags}"
        if kind == "removed":
            return f"{clock} - {who} {instance.url}"
        changes = ", ".join(f"{f} {_text(old)} -> {_text(new)}" for f, (old, new) in event["changed"].items())
        return f"{clock} ~ {who} {changes}"


def _flatten(state: Instances | Services) -> dict[Key, Instance]:
    groups = [state.items] if isinstance(state, Instances) else list(state.by_name.values())
    return {(i.name, i.node, i.id): i for group in groups for i in group}


def _field(instance: Instance, name: str) -> Any:
    value = getattr(instance, name)
    return dict(value) if name == "meta" else list(value) if name == "tags" else value


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"
    return str(value) if value != "" else "-"
