"""The `pilotfish` command: the daemon, and verbs that talk to a running one.

`validate` works without a daemon so that CI pipelines and config management can
check a file before dropping it into services.d.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Sequence

from registry.catalog import NodeDefaults
from registry.errors import ValidationError
from registry.schema import load_file


def cmd_validate(args: argparse.Namespace) -> int:
    """Print `file:line: field: message` per problem; exit 1 if any file is invalid."""
    defaults = NodeDefaults(socket.gethostname().split(".")[0].lower() or "localhost", "127.0.0.1")
    failed = False
    for path in args.files:
        try:
            instances = load_file(path, defaults)
        except ValidationError as exc:
            failed = True
            for problem in sorted(exc.problems, key=lambda p: (p.line or 0, p.field)):
                print(problem, file=sys.stdout)
            continue
        if not args.quiet:
            print(f"{path}: ok ({len(instances)} instance{'s' if len(instances) != 1 else ''})", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pilotfish", description="per-host service discovery: DNS and HTTP")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    validate = verbs.add_parser("validate", help="check registration files without a daemon")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    validate.set_defaults(func=cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
