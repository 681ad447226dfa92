"""`pilotfish maint`: maintenance of the node or one instance, and its windows, through the API.

Every action is a PUT or DELETE of resolver/http/routes_maintenance.py; an option the
action would ignore is refused before anything is sent.
"""

from __future__ import annotations

import argparse
from typing import Any

from resolver.cli_common import UsageError, client_of, show
from resolver.client import quote
from resolver.clitext import maintenance_text, window_rows


# The options each `maint` action takes. One it does not take is refused rather than
# dropped: `maint on --start +1h --end +2h` used to put the node in maintenance now.
MAINT_OPTIONS = {
    "on": ("instance", "reason"),
    "drain": ("instance", "reason", "timeout"),
    "plan": ("instance", "reason", "start", "end", "drain_ahead"),
    "done": ("instance",),
    "off": ("instance",),
    "ls": (),
    "change": ("reason", "start", "end", "drain_ahead"),
    "cancel": (),
}


def maint_options_check(args: argparse.Namespace) -> None:
    """Refuse an option the action would ignore, naming the action that takes it."""
    for option in ("instance", "reason", "timeout", "start", "end", "drain_ahead"):
        if getattr(args, option) is not None and option not in MAINT_OPTIONS[args.action]:
            flag = "--" + option.replace("_", "-")
            takers = [action for action, options in MAINT_OPTIONS.items() if option in options]
            raise UsageError(f"maint {args.action} takes no {flag} (it is for maint {', '.join(takers)})")


def cmd_maint(args: argparse.Namespace) -> int:
    """Maintenance of the node, or of one instance with --instance; windows by their id."""
    maint_options_check(args)
    client = client_of(args)
    if args.action == "ls":
        show(args, client.request("GET", "/v1/maintenance"), lambda body: window_rows(body["windows"]))
        return 0
    if args.action in ("change", "cancel"):
        if args.window is None:
            raise UsageError(f"maint {args.action} needs the window's ID (pilotfish maint ls lists them)")
        path = f"/v1/maintenance/{quote(args.window)}"
        if args.action == "cancel":
            show(args, client.request("DELETE", path), lambda w: f"cancelled window {w['id']}")
            return 0
        changes = {key: value for key, value in (("start", args.start), ("end", args.end),
                                                 ("drain_ahead", args.drain_ahead), ("reason", args.reason)) if value}
        show(args, client.request("PUT", path, changes), lambda w: window_rows([w]))
        return 0
    if args.window is not None:
        raise UsageError(f"maint {args.action} takes no window ID (use --instance for an instance)")
    base = f"/v1/services/{quote(args.instance)}/maintenance" if args.instance else "/v1/node/maintenance"
    if args.action == "done":
        answer = client.request("PUT", base + "/done")
    else:
        answer = client.request("PUT", base, maintenance_body(args))
    # The window is news when it was planned or drains; `on` and `off` say all in the state.
    show(args, answer, lambda body: maintenance_text(body, args.action in ("drain", "plan", "done")))
    return 0


def maintenance_body(args: argparse.Namespace) -> dict[str, Any]:
    """The body of `maint on|drain|plan|off`: the kind and its fields, as the API takes them."""
    body: dict[str, Any] = {"enable": args.action != "off"}
    if args.reason:
        body["reason"] = args.reason
    if args.action == "drain":
        body.update(kind="draining", **({"drain_timeout": args.timeout} if args.timeout else {}))
    elif args.action == "plan":
        if not (args.start and args.end):
            raise UsageError("maint plan needs --start and --end (RFC 3339, or +30m from now)")
        body.update(kind="planned", start=args.start, end=args.end)
        if args.drain_ahead:
            body["drain_ahead"] = args.drain_ahead
    return body
