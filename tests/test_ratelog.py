"""ratelog.py: one line per interval (per key for LogThrottle), and the suppressed count is never lost."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from registry import ratelog
from registry.ratelog import LogThrottle, RateLimitedLog

log = logging.getLogger("pilotfish.test.ratelog")


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int]]:
    return [(r.getMessage(), getattr(r, "suppressed")) for r in caplog.records if r.name == log.name]


def test_a_burst_is_one_line_now_and_one_with_its_count_when_the_interval_ends(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=log.name)
    limited = RateLimitedLog(log, logging.WARNING, "client misbehaved", interval=0.2)

    async def burst() -> None:
        for n in range(1000):
            limited.note(client="127.0.0.1", n=n)
        deadline = time.monotonic() + 5
        while len(lines(caplog)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    asyncio.run(burst())
    assert lines(caplog) == [("client misbehaved", 0), ("client misbehaved", 999)]
    # The later line carries the fields of the last occurrence it stands for.
    assert getattr(caplog.records[-1], "n") == 999


def test_without_an_event_loop_the_count_comes_with_the_next_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=log.name)
    limited = RateLimitedLog(log, logging.WARNING, "disk full", interval=0.05)
    for _ in range(10):
        limited.note()
    time.sleep(0.1)  # the interval runs out with no loop to flush it
    limited.note()
    assert lines(caplog) == [("disk full", 0), ("disk full", 9)]


def test_one_line_per_key_per_interval_with_the_count_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    logs = LogThrottle(logging.getLogger("test.throttle"), interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "test.throttle"):
        for _ in range(500):
            logs.log("up1", logging.WARNING, "upstream %s failed", "up1")
        logs.log("up2", logging.WARNING, "upstream %s failed", "up2")
        now[0] += 10
        logs.log("up1", logging.WARNING, "upstream %s failed", "up1")
    assert [r.getMessage() for r in caplog.records] == [
        "upstream up1 failed",
        "upstream up2 failed",
        "upstream up1 failed (and 499 more like it since the last line)",
    ]
    assert [getattr(r, "suppressed") for r in caplog.records] == [0, 0, 499]


def test_a_flood_of_distinct_keys_cannot_grow_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelog, "MAX_KEYS", 50)
    logs = LogThrottle(logging.getLogger("test.throttle.flood"), clock=lambda: 0.0)
    for key in range(10_000):
        logs.log(key, logging.DEBUG, "x")
    assert len(logs._keys) <= 50
