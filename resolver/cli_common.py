"""What every client verb of the `pilotfish` command shares: exit codes, the client, output.

Kept apart from resolver.cli so that the verbs grouped in modules of their own
(resolver.cli_maint) use the same client and the same output as the rest.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from resolver.client import Discovery

EXIT_REFUSED = 1
EXIT_USAGE = 2  # as argparse exits on a bad command line
EXIT_UNREACHABLE = 3

Render = Callable[[Any], str]

# A verb waits longer than an application's lookup would: a person is watching.
CLI_TIMEOUT = 10.0


class UsageError(Exception):
    """The command line (or its environment variables) cannot work: exit 2."""


def client_of(args: argparse.Namespace) -> Discovery:
    try:
        return Discovery(args.http, token=args.token, timeout=CLI_TIMEOUT)
    except ValueError as exc:  # a malformed --http or PILOTFISH_HTTP, a token with spaces
        raise UsageError(str(exc)) from None


def show(args: argparse.Namespace, body: Any, render: Render) -> None:
    print(json.dumps(body, indent=2, sort_keys=True) if args.json else render(body))
