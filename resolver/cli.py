"""The `pilotfish` command: the daemon, and verbs that talk to a running one.

`validate` works without a daemon so that CI pipelines and config management can
check a file before dropping it into services.d. Every other verb except `serve` is
a thin client of the HTTP API (`--http`, `--token`, or PILOTFISH_HTTP and
PILOTFISH_TOKEN): tables for people, `--json` for scripts. Exit codes: 0 done,
1 refused by the daemon (or a lookup matching nothing), 2 usage, 3 no daemon answering.
They talk to the daemon through the client library (resolver.client), as any
application would, but ask it directly: no cache, no fallback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from typing import Any, Sequence

from registry.errors import Problem, ValidationError
from registry.model import NodeIdentity
from registry.schema import EXTENSION_PREFIX, load_file
from registry.textfile import DEFAULT_MAX_BYTES, MAX_MAX_BYTES, read_text
from registry.yamldoc import FieldPath, compose
from resolver.cli_common import EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, UsageError, client_of, show
from resolver.cli_maint import cmd_maint
from resolver.client import ApiError, ConnectionChange, DaemonUnavailable, detect, quote
from resolver.clitext import config_text, instance_rows, rule_rows, status_text
from resolver.watchlines import WatchLines


def cmd_validate(args: argparse.Namespace) -> int:
    """Print `file:line: field: message` per problem; exit 1 if any file is invalid.

    With `--config`, files are judged by that daemon's node and limits, so a file
    passes here exactly when that daemon would take it.
    """
    identity = NodeIdentity(socket.gethostname().split(".")[0].lower() or "localhost", "127.0.0.1")
    max_bytes = DEFAULT_MAX_BYTES
    if args.config is not None:
        from resolver.config import ConfigError, load_config

        try:
            config = load_config(args.config)
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stdout)
            return EXIT_REFUSED
        identity = config.identity
        max_bytes = config.limits.file_size
    failed = False
    for path in args.files:
        try:
            instances = load_file(path, identity, max_bytes)
        except ValidationError as exc:
            failed = True
            for problem in sorted(exc.problems, key=lambda p: (p.line or 0, p.field)):
                print(problem, file=sys.stdout)
            continue
        except Exception as exc:  # one file's surprise is that file's problem, as in the daemon
            failed = True
            print(Problem(path, None, "(file)", f"reading it failed: {type(exc).__name__}: {exc}"), file=sys.stdout)
            continue
        if not args.quiet:
            print(f"{path}: ok ({len(instances)} instance{'s' if len(instances) != 1 else ''})", file=sys.stderr)
    return 1 if failed else 0


def cmd_serve(args: argparse.Namespace) -> int:
    # SIGHUP's default action ends the process. Loading the daemon takes about half a
    # second, so from here on a SIGHUP is noted instead, and replayed as a reload once
    # the daemon runs (`systemctl reload` right after `start`, or a config tool).
    hangups: list[int] = []
    signal.signal(signal.SIGHUP, lambda signum, frame: hangups.append(signum))
    # Imported here so that the client verbs start without loading the servers.
    from resolver.daemon import serve
    from resolver.logs import setup_logging

    setup_logging()
    return serve(args.config, hangups)


# -- verbs that talk to the daemon --------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    show(args, client_of(args).request("GET", "/v1/status"), status_text)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    grouped = client_of(args).request("GET", "/v1/services", query={"status": args.status, "tag": args.tag})
    show(args, grouped, lambda body: instance_rows([i for name in sorted(body) for i in body[name]]))
    return 0


def cmd_lookup(args: argparse.Namespace) -> int:
    client = client_of(args)
    query = {"status": args.status, "tag": args.tag}
    if args.url:
        chosen = client.request("GET", f"/v1/services/{quote(args.name)}/url", query={**query, "strategy": args.strategy})
        show(args, chosen, lambda body: str(body["url"]))
        return 0
    instances = client.request("GET", f"/v1/services/{quote(args.name)}", query=query)
    show(args, instances, instance_rows)
    return 0 if instances else EXIT_REFUSED


def registration_bodies(path: str) -> list[Any]:
    """The services a YAML/JSON file declares, as API bodies (one file, one or many).

    Read as services.d reads it: `version: 1.10` stays the text "1.10", where plain
    YAML loading would send the number 1.1 (which the API refuses). And read as
    services.d is read: a FIFO or `/dev/zero` given by mistake is refused, not waited on.
    """
    try:
        located = compose(read_text(path, MAX_MAX_BYTES), path)
    except ValidationError as exc:
        raise SystemExit("\n".join(f"pilotfish: cannot read {problem}" for problem in exc.problems)) from None
    if located.problems:
        raise SystemExit("\n".join(f"pilotfish: cannot read {problem}" for problem in located.problems))
    doc = located.value
    extensions_only = isinstance(doc, dict) and all(key == "services" or key.startswith(EXTENSION_PREFIX) for key in doc)
    if isinstance(doc, dict) and isinstance(doc.get("services"), list) and extensions_only:
        items: list[tuple[FieldPath, Any]] = [(("services", i), item) for i, item in enumerate(doc["services"])]
    else:
        items = [((), doc)]
    return [_version_as_written(body, located.raw.get(at + ("version",))) for at, body in items]


def _version_as_written(body: Any, raw: str | None) -> Any:
    version = body.get("version") if isinstance(body, dict) else None
    if raw is not None and isinstance(version, (int, float)) and not isinstance(version, bool):
        return {**body, "version": raw}
    return body


def cmd_register(args: argparse.Namespace) -> int:
    client = client_of(args)
    registered: list[Any] = []
    try:
        for body in registration_bodies(args.file):
            registered.append(client.request("POST", "/v1/services", body))
    except ApiError:
        # One request per service: those before the refused one stay registered; say which.
        if registered and not args.json:
            show(args, registered, instance_rows)
        raise
    show(args, registered, instance_rows)
    return 0


def cmd_deregister(args: argparse.Namespace) -> int:
    body = client_of(args).request("DELETE", f"/v1/instances/{quote(args.id)}", query={"node": args.node})
    show(args, body, lambda b: f"deregistered {b['deregistered']['id']} ({b['deregistered']['name']})")
    return 0


def cmd_conflicts(args: argparse.Namespace) -> int:
    client = client_of(args)
    if args.action == "list":
        show(args, client.request("GET", "/v1/conflicts"), lambda body: rule_rows(body["rules"]))
    elif args.action == "add":
        body = {"a": args.a, "b": args.b, "type": args.type, "reason": args.reason}
        show(args, client.request("POST", "/v1/conflicts", body), lambda rule: rule_rows([rule]))
    else:
        deleted = client.request("DELETE", f"/v1/conflicts/{args.rule_id}")
        show(args, deleted, lambda body: f"deleted rule {body['deleted']['id']}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    client = client_of(args)
    if args.action == "get" and args.key is None:
        node = args.node or str(client.request("GET", "/v1/status")["node"]["name"])
        view = client.request("GET", f"/v1/nodes/{quote(node)}/config")
        show(args, view, lambda body: "\n".join(config_text(v) for _, v in sorted(body["config"].items())))
        return 0
    if args.action == "set" and (args.key is None or args.value is None):
        print("pilotfish: config set needs KEY VALUE", file=sys.stderr)
        return EXIT_USAGE
    path = (f"/v1/nodes/{quote(args.node)}/config/" if args.node else "/v1/config/") + quote(args.key)
    if args.action == "get":
        show(args, client.request("GET", path), config_text)
        return 0
    show(args, client.request("PUT", path, {"value": args.value, "value_type": args.type}), config_text)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow the daemon's blocking queries until Ctrl-C; a daemon restart is waited out.

    A daemon that does not answer the first request is exit 3, as for every verb (a
    wrong --http should not look like a wait); once one has answered, its going away
    is said on stderr and the watch reconnects with a growing pause.
    """
    client = client_of(args)
    printer = WatchLines(args.name, args.json)
    connected = False

    def on_connection(change: ConnectionChange) -> None:
        if not connected:
            raise DaemonUnavailable(client.base_url, change.reason or "no answer")
        if change.connected:
            print(f"pilotfish: reconnected to {client.base_url}", file=sys.stderr, flush=True)
        else:
            print(f"pilotfish: no answer from {client.base_url} ({change.reason}); retrying in {change.retry_in:g}s",
                  file=sys.stderr, flush=True)

    try:
        for state in client.watch(args.name, tags=args.tag or (), status=args.status, wait=args.wait,
                                  on_connection=on_connection):
            connected = True
            for line in printer.lines(state):
                print(line, flush=True)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # `pilotfish watch | head`: the reader left. Point stdout at nothing so that
        # the interpreter's final flush does not complain about the pipe as well.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


# -- parser ----------------------------------------------------------------------


def wait_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < seconds <= 600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 600 seconds")
    return seconds


def client_options() -> argparse.ArgumentParser:
    """Options every client verb takes, before or after the verb."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--http", default=argparse.SUPPRESS, metavar="URL",
                        help=f"daemon API (env PILOTFISH_HTTP, default here {detect(environ=os.environ).http_url})")
    common.add_argument("--token", default=argparse.SUPPRESS, help="bearer token for writes (env PILOTFISH_TOKEN)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON")
    return common


def build_parser() -> argparse.ArgumentParser:
    # Separate option objects for the top level: set_defaults below must not reach the verbs'
    # copies, whose SUPPRESS default is what lets `--http` work before or after the verb.
    parser = argparse.ArgumentParser(
        prog="pilotfish", description="per-host service discovery: DNS and HTTP", parents=[client_options()]
    )
    # http None: the client library picks PILOTFISH_HTTP, else what the environment implies.
    parser.set_defaults(http=None, token=os.environ.get("PILOTFISH_TOKEN") or None, json=False)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    common = client_options()

    serve = verbs.add_parser("serve", help="run the daemon")
    serve.add_argument("--config", metavar="FILE", help="config file (default: the embedded default)")
    serve.set_defaults(func=cmd_serve)

    validate = verbs.add_parser("validate", help="check registration files without a daemon")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    validate.add_argument("--config", metavar="FILE", help="judge by this daemon config's node and limits")
    validate.set_defaults(func=cmd_validate)

    verbs.add_parser("status", parents=[common], help="the daemon's node, ports, counts and rejected files").set_defaults(
        func=cmd_status
    )
    for name, func, help_text in (("ls", cmd_ls, "every discoverable instance"),
                                  ("lookup", cmd_lookup, "instances of one service")):
        verb = verbs.add_parser(name, parents=[common], help=help_text)
        if name == "lookup":
            verb.add_argument("name", metavar="NAME")
            verb.add_argument("--url", action="store_true", help="print one URL chosen by --strategy")
            verb.add_argument("--strategy", default="round_robin", help="with --url (default round_robin)")
        verb.add_argument("--tag", action="append", help="only instances with this tag (repeatable)")
        verb.add_argument("--status", help="passing, warning, critical, maintenance or any")
        verb.set_defaults(func=func)

    register = verbs.add_parser("register", parents=[common], help="register the service(s) of a YAML/JSON file via the API")
    register.add_argument("file", metavar="FILE")
    register.set_defaults(func=cmd_register)

    deregister = verbs.add_parser("deregister", parents=[common], help="remove an API registration")
    deregister.add_argument("id", metavar="ID")
    deregister.add_argument("--node", help="node of the instance (default: the daemon's)")
    deregister.set_defaults(func=cmd_deregister)

    conflicts = verbs.add_parser("conflicts", parents=[common], help="conflict rules: list, add A B, rm ID")
    actions = conflicts.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common])
    add = actions.add_parser("add", parents=[common])
    add.add_argument("a", metavar="A")
    add.add_argument("b", metavar="B")
    add.add_argument("--type", default="port", choices=["port", "dependency", "resource"])
    add.add_argument("--reason", required=True)
    remove = actions.add_parser("rm", parents=[common])
    # A stored rule's number, or a fleet rule's `<a>+<b>` (fleet mode).
    remove.add_argument("rule_id", metavar="ID")
    conflicts.set_defaults(func=cmd_conflicts)

    maint = verbs.add_parser(
        "maint", parents=[common],
        help="maintenance of this node (or --instance): on, drain, plan, done, off; windows: ls, change ID, cancel ID",
    )
    maint.add_argument("action", choices=["on", "drain", "plan", "done", "off", "ls", "change", "cancel"])
    maint.add_argument("window", nargs="?", metavar="ID", help="the window to change or cancel")
    maint.add_argument("--instance", metavar="ID", help="one instance of this node instead of the node")
    maint.add_argument("--reason", help="shown in status and events")
    maint.add_argument("--timeout", metavar="DURATION", help="drain: how long before offline (default 5m)")
    maint.add_argument("--start", metavar="TIME", help="plan, change: RFC 3339, or +30m from now")
    maint.add_argument("--end", metavar="TIME", help="plan, change: RFC 3339, or +2h from now")
    maint.add_argument("--drain-ahead", metavar="DURATION", help="plan, change: drain this long before the start (default 5m)")
    maint.set_defaults(func=cmd_maint)

    config = verbs.add_parser("config", parents=[common], help="typed config values: get [KEY], set KEY VALUE")
    config.add_argument("action", choices=["get", "set"])
    config.add_argument("key", nargs="?", metavar="KEY")
    config.add_argument("value", nargs="?", metavar="VALUE")
    config.add_argument("--type", default="string", choices=["string", "int", "bool", "json"], help="with set")
    config.add_argument("--node", help="per-node value (default: the global one)")
    config.set_defaults(func=cmd_config)

    watch = verbs.add_parser("watch", parents=[common], help="print each change of one service (or all) as it happens")
    watch.add_argument("name", nargs="?", metavar="NAME", help="default: every service")
    watch.add_argument("--tag", action="append", help="only instances with this tag (repeatable)")
    watch.add_argument("--status", default="any", help="passing, warning, critical, maintenance or any (default)")
    watch.add_argument("--wait", type=wait_seconds, default=30.0, metavar="SECONDS",
                       help="longest blocking query (default 30, at most 600)")
    watch.set_defaults(func=cmd_watch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ApiError as exc:
        if args.json and exc.body is not None:
            print(json.dumps(exc.body, indent=2, sort_keys=True))
        print(f"pilotfish: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except DaemonUnavailable as exc:
        print(f"pilotfish: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except UsageError as exc:
        print(f"pilotfish: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
