"""Rise/fall counting as a table: results in, reported statuses out."""

from __future__ import annotations

import pytest

from registry.health.risefall import RiseFall
from registry.model import Status

P, W, C = Status.PASSING, Status.WARNING, Status.CRITICAL

CASES = [
    # (rise, fall, starting status, results, reported after each result)
    (1, 1, None, [P, C, P], [P, C, P]),
    (1, 1, None, [C, C, P], [C, C, P]),
    (1, 3, P, [C, C, C, C], [P, P, C, C]),
    (1, 3, P, [C, C, P, C, C, C], [P, P, P, P, P, C]),
    (2, 1, C, [P, P, P], [C, P, P]),
    (2, 1, C, [P, C, P, P], [C, C, C, P]),
    (3, 2, None, [P, C, C, P, P, P], [P, P, C, C, C, P]),
    # Warning counts as a failure towards fall; a failing check moves between warning and critical at once.
    (1, 2, P, [W, C], [P, C]),
    (1, 2, P, [W, W, C, W], [P, W, C, W]),
    (2, 1, W, [P, W, P, P], [W, W, W, P]),
]


@pytest.mark.parametrize(("rise", "fall", "start", "results", "expected"), CASES)
def test_reported_statuses(rise: int, fall: int, start: Status | None, results: list[Status], expected: list[Status]) -> None:
    counter = RiseFall(rise, fall, start)
    assert [counter.feed(result) for result in results] == expected


def test_progress_names_the_pending_change() -> None:
    counter = RiseFall(2, 3, P)
    counter.feed(C)
    assert counter.progress(C) == "1/3 failures before critical"
    counter.feed(C)
    assert counter.progress(C) == "2/3 failures before critical"
    counter.feed(C)
    assert counter.progress(C) == ""
    counter.feed(P)
    assert counter.progress(P) == "1/2 passes before passing"
