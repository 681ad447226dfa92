"""The node's state table, and `settle`: every move its inputs can make stays in the table."""

from __future__ import annotations

import itertools

import pytest

from registry.errors import InvalidTransition
from registry.states import Hold, NodeState
from registry.transitions import TRANSITIONS, check_transition, nothing_to_end, settle, transitions_dict

ONLINE, DEGRADED, RECOVERING = NodeState.ONLINE, NodeState.DEGRADED, NodeState.RECOVERING
DRAINING, MAINTENANCE, OFFLINE = NodeState.DRAINING, NodeState.MAINTENANCE, NodeState.OFFLINE


@pytest.mark.parametrize(
    ("current", "requested", "allowed"),
    [
        (ONLINE, DEGRADED, True),
        (ONLINE, MAINTENANCE, True),
        (ONLINE, DRAINING, True),
        (ONLINE, ONLINE, False),
        (ONLINE, RECOVERING, False),  # only the end of a maintenance recovers
        (DEGRADED, ONLINE, True),
        (DRAINING, OFFLINE, True),
        (DRAINING, DRAINING, False),  # drain twice
        (DRAINING, MAINTENANCE, False),
        (MAINTENANCE, MAINTENANCE, False),  # maintenance on twice
        (MAINTENANCE, DEGRADED, True),
        (MAINTENANCE, RECOVERING, True),
        (OFFLINE, MAINTENANCE, False),
        (OFFLINE, DRAINING, True),  # back to back windows
        (OFFLINE, RECOVERING, True),
        (OFFLINE, ONLINE, True),
        (RECOVERING, DEGRADED, True),
        (RECOVERING, MAINTENANCE, True),
    ],
)
def test_transition_table(current: NodeState, requested: NodeState, allowed: bool) -> None:
    assert (requested in TRANSITIONS[current]) is allowed
    if allowed:
        check_transition(current, requested)
    else:
        with pytest.raises(InvalidTransition) as refused:
            check_transition(current, requested)
        assert refused.value.current == current.value and refused.value.requested == requested.value


def test_no_state_goes_to_itself_and_staying_is_refused_with_the_table() -> None:
    for state in NodeState:
        assert state not in TRANSITIONS[state]
        error = nothing_to_end(state, "node n1", "")
        assert (error.current, error.requested) == (state.value, state.value)
        assert error.allowed == transitions_dict()[state.value]


def hold(state: NodeState) -> Hold:
    return Hold(state, f"window {state.value}", None, 1)


# A node's inputs: (resources, hold, checks waiting, a failure).
Inputs = tuple[NodeState, NodeState | None, int, bool]


def moves(inputs: Inputs) -> list[Inputs]:
    """Every change of one input that can happen from `inputs` (see registry.maintenance and registry.instances)."""
    resources, held, waiting, failing = inputs
    out: list[Inputs] = [({ONLINE: DEGRADED, DEGRADED: ONLINE}[resources], held, waiting, failing)]
    if held is None:
        # A window begins: immediate, draining, or planned with no drain left.
        out += [(resources, state, waiting, failing) for state in (DRAINING, MAINTENANCE, OFFLINE)]
        if waiting:
            out += [(resources, None, waiting - 1, failing), (resources, None, waiting, not failing),
                    (resources, None, 0, False)]
    else:
        if held is DRAINING:
            out.append((resources, OFFLINE, waiting, failing))
        else:  # back to back: the next window begins as this one ends
            out += [(resources, DRAINING, waiting, failing), (resources, OFFLINE, waiting, failing)]
        # It ends: the recovery begins afresh (waiting or not: a node without checks is back at once).
        out += [(resources, None, 3, False), (resources, None, 0, False)]
    return out


def test_settle_never_leaves_the_table() -> None:
    starts: list[Inputs] = [
        (resources, held, waiting, failing and waiting > 0)
        for resources, held, waiting, failing in itertools.product(
            (ONLINE, DEGRADED), (None, DRAINING, MAINTENANCE, OFFLINE), (0, 2), (False, True)
        )
    ]
    checked = 0
    for before in set(starts):
        state, _ = settle(before[0], "figures", hold(before[1]) if before[1] else None, before[2],
                          "check x failing" if before[3] else None)
        for after in moves(before):
            new, _ = settle(after[0], "figures", hold(after[1]) if after[1] else None, after[2],
                            "check x failing" if after[3] and after[2] else None)
            if new is not state:
                assert new in TRANSITIONS[state], (before, after, state, new)
                checked += 1
    assert checked > 50


def test_settle_puts_the_window_first_then_recovery_then_the_figures() -> None:
    assert settle(DEGRADED, "cpu 95%", hold(OFFLINE), 2, "failing") == (OFFLINE, "window offline")
    assert settle(ONLINE, "", None, 2, "after maintenance: check c of i critical") == (
        DEGRADED, "after maintenance: check c of i critical"
    )
    assert settle(DEGRADED, "cpu 95%", None, 1, None) == (RECOVERING, "after maintenance: 1 check still to pass rise times")
    assert settle(DEGRADED, "cpu 95%", None, 0, None) == (DEGRADED, "cpu 95%")
