"""TTL checks: the service reports its own health before the TTL runs out.

`pass`, `warn` and `fail` arrive through the API (`PUT /v1/checks/{id}/{verb}`);
the runner turns silence longer than the TTL into critical. Rise and fall do not
apply: the service's own report is the result, and an expired TTL is final.
"""

from __future__ import annotations

from registry.health.outcome import Outcome
from registry.model import CheckSpec, Status

VERB_STATUS = {"pass": Status.PASSING, "warn": Status.WARNING, "fail": Status.CRITICAL}


def status_for_verb(verb: str) -> Status:
    """`pass|warn|fail` to a status; KeyError for anything else (the route only routes these)."""
    return VERB_STATUS[verb]


def expired(spec: CheckSpec) -> Outcome:
    return Outcome(Status.CRITICAL, f"TTL of {spec.ttl:g}s expired")


def reported(status: Status, note: str) -> Outcome:
    return Outcome(status, note or f"TTL check set to {status.value}")
