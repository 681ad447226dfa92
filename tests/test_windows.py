"""Maintenance windows as values: phases, holds, overlap, times and drains as operators write them."""

from __future__ import annotations

from typing import Any

import pytest

from registry.errors import ValidationError, WindowLimit, WindowOverlap
from registry.model import rfc3339
from registry.states import MaintenanceKind, NodeState, Window, WindowPhase
from registry.windows import MAX_WINDOWS, admit, changed, parse_drain, parse_time, planned, window_dict

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
HOUR = 3600.0


def window(drain_at: float, starts: float, ends: float | None, kind: MaintenanceKind = MaintenanceKind.PLANNED,
           instance: str = "", window_id: int = 1) -> Window:
    return Window(window_id, "node1", instance, kind, "kernel upgrade", drain_at, starts, ends, NOW)


def test_a_planned_window_goes_through_its_phases() -> None:
    planned_window = window(NOW + 10, NOW + 20, NOW + 30)
    expected = [(NOW, WindowPhase.PLANNED, None), (NOW + 10, WindowPhase.DRAINING, NodeState.DRAINING),
                (NOW + 20, WindowPhase.ACTIVE, NodeState.OFFLINE), (NOW + 30, WindowPhase.OVER, None)]
    for at, phase, state in expected:
        assert planned_window.phase_at(at) is phase
        hold = planned_window.hold_at(at)
        assert (hold.state if hold else None) is state
    draining, working = planned_window.hold_at(NOW + 10), planned_window.hold_at(NOW + 25)
    assert draining is not None and draining.until == NOW + 20  # draining: until the work starts
    assert working is not None and working.until == NOW + 30
    assert [planned_window.next_change(t) for t in (NOW, NOW + 10, NOW + 25, NOW + 30)] == [NOW + 10, NOW + 20, NOW + 30, None]


def test_an_immediate_window_is_maintenance_until_ended() -> None:
    immediate = window(NOW, NOW, None, MaintenanceKind.IMMEDIATE)
    hold = immediate.hold_at(NOW + 10 * 365 * 24 * HOUR)
    assert hold is not None and hold.state is NodeState.MAINTENANCE and hold.until is None
    assert immediate.next_change(NOW + 1) is None


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ((0, 10, 20), (20, 25, 30), False),  # one ends as the other begins draining
        ((0, 10, 20), (19, 25, 30), True),  # the second drains before the first ends
        ((5, 10, 20), (0, 1, 6), True),
        ((0, 0, None), (1000, 1001, 1002), True),  # an open window holds forever
        ((50, 60, 70), (0, 0, None), True),
        ((0, 10, 20), (30, 40, 50), False),
    ],
)
def test_overlap_counts_drains_and_open_ends(a: tuple[float, float, float | None], b: tuple[float, float, float | None],
                                             overlap: bool) -> None:
    first, second = window(*a), window(*b, window_id=2)
    assert first.overlaps(second) is overlap and second.overlaps(first) is overlap


def test_admit_refuses_an_overlap_of_the_same_target_only() -> None:
    node_window = window(NOW, NOW + 10, NOW + 20)
    with pytest.raises(WindowOverlap) as refused:
        admit(window(NOW + 15, NOW + 16, NOW + 30, window_id=0), [node_window])
    assert refused.value.window_id == 1 and refused.value.target == "node node1"
    admit(window(NOW + 15, NOW + 16, NOW + 30, instance="redis-1", window_id=0), [node_window])
    admit(node_window, [node_window])  # a window does not overlap itself (a change)


def test_admit_refuses_one_window_more_than_a_node_keeps() -> None:
    many = [window(NOW + i * 10, NOW + i * 10, NOW + i * 10 + 5, window_id=i + 1) for i in range(MAX_WINDOWS)]
    with pytest.raises(WindowLimit):
        admit(window(NOW - 100, NOW - 50, NOW - 20, window_id=0), many)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2025-06-15T15:06:40Z", NOW),
        ("2025-06-15t17:06:40+02:00", NOW),
        ("2025-06-15 15:06:40.5z", NOW + 0.5),
        ("+30m", NOW + 1800),
        ("+1h30m", NOW + 5400),
    ],
)
def test_times_are_rfc3339_or_a_duration_from_now(text: str, seconds: float) -> None:
    assert parse_time(text, NOW, "start") == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2025-06-15T15:06:40", "is not a time"),  # no offset: which zone?
        ("2025-06-15", "is not a time"),
        ("tomorrow", "is not a time"),
        ("+30", "is not a time"),
        ("+0s", "longer than zero"),
        ("2025-02-30T10:00:00Z", "day is out of range"),
        (1750000000, "must be a time"),
        (None, "must be a time"),
    ],
)
def test_a_time_that_does_not_read_is_refused_naming_the_field(value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_time(value, NOW, "start")
    [problem] = refused.value.problems
    assert problem.field == "start" and message in problem.message


def test_drains_default_to_five_minutes_and_zero_is_none() -> None:
    assert parse_drain(None, "drain_ahead") == 300.0
    assert parse_drain("0s", "drain_ahead") == parse_drain("0", "drain_ahead") == 0.0
    assert parse_drain("90s", "drain_ahead") == 90.0
    for bad in ("25h", "5", 300, "-1m"):
        with pytest.raises(ValidationError):
            parse_drain(bad, "drain_ahead")


def test_a_planned_window_must_end_after_its_start_and_after_now() -> None:
    assert planned("node1", "", "r", NOW + 60, NOW + 120, 30, NOW).drain_at == NOW + 30
    for starts, ends, field in ((NOW + 60, NOW + 60, "end"), (NOW - 120, NOW - 60, "end"),
                                (NOW + 400 * 24 * HOUR, NOW + 401 * 24 * HOUR, "start")):
        with pytest.raises(ValidationError) as refused:
            planned("node1", "", "r", starts, ends, 30, NOW)
        assert refused.value.problems[0].field == field


def test_a_change_moves_a_planned_window_but_never_back_in_phase() -> None:
    future = window(NOW + 60, NOW + 120, NOW + 180)
    moved = changed(future, {"start": "+10m", "end": "+20m", "drain_ahead": "1m", "reason": "new kernel"}, NOW)
    assert (moved.drain_at, moved.starts, moved.ends, moved.reason) == (NOW + 540, NOW + 600, NOW + 1200, "new kernel")
    begun = window(NOW - 60, NOW - 30, NOW + 60)
    with pytest.raises(ValidationError, match="has begun"):
        changed(begun, {"start": "+1h"}, NOW)
    assert changed(begun, {"end": "+2h"}, NOW).ends == NOW + 2 * HOUR
    with pytest.raises(ValidationError, match="needs an end"):
        changed(future, {"end": None}, NOW)
    with pytest.raises(ValidationError, match="unknown field"):
        changed(future, {"kind": "immediate"}, NOW)
    open_window = window(NOW - 10, NOW - 10, None, MaintenanceKind.IMMEDIATE)
    assert changed(open_window, {"end": "+1h"}, NOW).ends == NOW + HOUR  # an immediate window may be given an end


def test_windows_read_back_as_rfc3339() -> None:
    shown = window_dict(window(NOW, NOW + 10, None, MaintenanceKind.DRAINING, instance="redis-1"), NOW + 5)
    assert shown == {
        "id": 1, "node": "node1", "instance": "redis-1", "kind": "draining", "reason": "kernel upgrade",
        "phase": "draining", "drain_at": "2025-06-15T15:06:40.000Z", "start": "2025-06-15T15:06:50.000Z",
        "end": None, "created": "2025-06-15T15:06:40.000Z",
    }
    assert parse_time(rfc3339(NOW + 0.25) or "", 0, "start") == NOW + 0.25
