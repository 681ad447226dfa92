"""throttle.py: one line per key per interval, and the next line says how many were held back."""

from __future__ import annotations

import logging

import pytest

from resolver.dns import throttle
from resolver.dns.throttle import LogThrottle


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
    monkeypatch.setattr(throttle, "MAX_KEYS", 50)
    logs = LogThrottle(logging.getLogger("test.throttle.flood"), clock=lambda: 0.0)
    for key in range(10_000):
        logs.log(key, logging.DEBUG, "x")
    assert len(logs._keys) <= 50
