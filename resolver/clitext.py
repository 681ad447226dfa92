"""What the `pilotfish` verbs print for people: tables and one-line summaries of API answers.

`--json` prints the API's own body instead; nothing here is parsed back.
"""

from __future__ import annotations

import json
from typing import Any


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the last column is never padded."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [headers] + rows
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def instance_rows(instances: list[dict[str, Any]]) -> str:
    headers = ["NAME", "ID", "NODE", "URL", "STATUS", "TAGS", "SOURCE"]
    rows = [
        [i["name"], i["id"], i["node"], i["url"], i["status"], ",".join(i.get("tags", [])) or "-", i["source"]]
        for i in instances
    ]
    return table(headers, rows)


def rule_rows(rules: list[dict[str, Any]]) -> str:
    rows = [[str(r.get("id") or "-"), r["a"], r["b"], r["type"], r.get("source", ""), r.get("reason", "")] for r in rules]
    return table(["ID", "A", "B", "TYPE", "SOURCE", "REASON"], rows)


def status_text(body: dict[str, Any]) -> str:
    node = body.get("node", {})
    lines = [
        f"pilotfish {body.get('version')}  node {node.get('name')} ({node.get('address')}) {node.get('state')}"
        + (f": {node['reason']}" if node.get("reason") else ""),
        f"index {body.get('index')}  services {body.get('services')}  instances {body.get('instances')}  "
        + "  ".join(f"{k} {v}" for k, v in body.get("counts", {}).items()),
    ]
    for listener, addresses in sorted(body.get("bound", {}).items()):
        lines.append(f"{listener:<8} {', '.join(addresses)}")
    errors = body.get("file_errors", [])
    lines.append(f"files {len(body.get('files', []))}, rejected {len(errors)}")
    for error in errors:
        for problem in error["problems"]:
            line = problem.get("line") if problem.get("line") is not None else "-"
            lines.append(f"  {problem['path']}:{line}: {problem['field']}: {problem['message']}")
    return "\n".join(lines)


def config_text(value: dict[str, Any]) -> str:
    return f"{value['key']} = {json.dumps(value['value'])} ({value['value_type']}, {value['scope']})"


def window_rows(windows: list[dict[str, Any]]) -> str:
    rows = [
        [str(w["id"]), w["instance"] or "(node)", w["kind"], w["phase"], w["drain_at"], w["start"], w["end"] or "-",
         w.get("reason", "")]
        for w in windows
    ]
    return table(["ID", "TARGET", "KIND", "PHASE", "DRAINS", "STARTS", "ENDS", "REASON"], rows)


def maintenance_text(body: dict[str, Any], with_window: bool) -> str:
    """A maintenance answer: the node's (or instance's) state now, and (`with_window`) the window it opened."""
    window = body.get("window") if with_window else None
    if "state" in body:  # the node
        line = f"node {body.get('name')}: {body.get('state')}" + (f" ({body['reason']})" if body.get("reason") else "")
    else:
        state = body.get("maintenance_state") or body.get("status")
        reason = body.get("maintenance_reason")
        line = f"instance {body.get('id')}: {state}" + (f" ({reason})" if reason else "")
    if window:
        until = f" until {window['end']}" if window.get("end") else " until ended"
        line += (f"\nwindow {window['id']} ({window['kind']}, {window['phase']}): drains from {window['drain_at']}, "
                 f"work from {window['start']}{until}")
    return line
