"""The node's state machine: which moves are allowed, and which state the node's inputs give.

A node's state follows from three inputs, each owned by someone else: its resource
figures (online or degraded, from the node monitor), the maintenance window holding
it now (draining, maintenance or offline, from the scheduler), and the recovery of
its checks once a maintenance ended. `settle` turns them into one state; the catalog
records each change as a `node` event with what triggered it. `TRANSITIONS` is the
table every change must follow: a request to move the node elsewhere (maintenance on
twice, off when it is not on) is refused with InvalidTransition (HTTP 409), and a
test walks every combination of inputs to prove `settle` never leaves the table.

Pure: no clock, no I/O, no catalog.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from registry.errors import InvalidTransition, NothingToEnd
from registry.states import Hold, NodeState

ONLINE, DEGRADED, RECOVERING = NodeState.ONLINE, NodeState.DEGRADED, NodeState.RECOVERING
DRAINING, MAINTENANCE, OFFLINE = NodeState.DRAINING, NodeState.MAINTENANCE, NodeState.OFFLINE

# From each state, the states it may go to. No state goes to itself: turning
# maintenance on twice, or off when it is not on, is refused rather than ignored.
# A window that ends as the next one begins (back to back) hands the node over
# without a recovery between them: maintenance and offline may go to draining or offline.
TRANSITIONS: Mapping[NodeState, frozenset[NodeState]] = MappingProxyType({
    ONLINE: frozenset({DEGRADED, DRAINING, MAINTENANCE, OFFLINE}),
    DEGRADED: frozenset({ONLINE, RECOVERING, DRAINING, MAINTENANCE, OFFLINE}),
    DRAINING: frozenset({OFFLINE, RECOVERING, ONLINE, DEGRADED}),
    MAINTENANCE: frozenset({RECOVERING, ONLINE, DEGRADED, DRAINING, OFFLINE}),
    OFFLINE: frozenset({RECOVERING, ONLINE, DEGRADED, DRAINING}),
    RECOVERING: frozenset({ONLINE, DEGRADED, DRAINING, MAINTENANCE, OFFLINE}),
})


def check_transition(current: NodeState, requested: NodeState) -> None:
    """Raise InvalidTransition unless the table allows `current` -> `requested`."""
    allowed = TRANSITIONS[current]
    if requested not in allowed:
        raise InvalidTransition(current.value, requested.value, sorted(state.value for state in allowed))


def nothing_to_end(current: NodeState, target: str, upcoming: str) -> NothingToEnd:
    """The refusal of a request that would leave the state where it is (maintenance off when not on)."""
    return NothingToEnd(target, current.value, sorted(state.value for state in TRANSITIONS[current]), upcoming)


def transitions_dict() -> dict[str, list[str]]:
    """The table as `GET /v1/node` serves it: each state and where it may go."""
    return {state.value: sorted(target.value for target in TRANSITIONS[state]) for state in NodeState}


def settle(
    resources: NodeState, resource_reason: str, hold: Hold | None, waiting: int, failing: str | None
) -> tuple[NodeState, str]:
    """The node's state and reason from its inputs.

    `waiting` counts the checks that have yet to pass `rise` times since the node's
    last maintenance ended, `failing` names one that failed meanwhile (None: none).
    A window holding the node wins; then recovery (degraded while a check fails);
    then what the resource figures say.
    """
    if hold is not None:
        return hold.state, hold.reason
    if failing is not None:
        return DEGRADED, failing
    if waiting:
        plural = "check" if waiting == 1 else "checks"
        return RECOVERING, f"after maintenance: {waiting} {plural} still to pass rise times"
    return resources, resource_reason
