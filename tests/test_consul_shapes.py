"""Pure parts of the Consul view: Go durations both ways, node IDs."""

from __future__ import annotations

import uuid

import pytest

from resolver.http.consul_http import parse_go_duration
from resolver.http.consul_checks import go_duration
from resolver.http.consul_shapes import node_id


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        # What Go's time.Duration.String() writes for each.
        (0, "0s"),
        (10, "10s"),
        (1.5, "1.5s"),
        (60, "1m0s"),
        (90, "1m30s"),
        (3600, "1h0m0s"),
        (5400.25, "1h30m0.25s"),
        (0.5, "500ms"),
        (0.0015, "1.5ms"),
        (0.000001, "1µs"),
        (0.000000007, "7ns"),
        (-2, "-2s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("120000ms", 120.0),
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("300us", 0.0003),
        ("300µs", 0.0003),
        ("0", 0.0),
        ("-5s", -5.0),
        ("10", None),
        ("s", None),
        ("", None),
        ("5 s", None),
        ("1d", None),
        ("1m30", None),
    ],
)
def test_parse_go_duration(text: str, seconds: float | None) -> None:
    parsed = parse_go_duration(text)
    assert parsed == pytest.approx(seconds) if seconds is not None else parsed is None


def test_node_ids_are_stable_uuids() -> None:
    assert node_id("web1") == node_id("web1") != node_id("web2")
    assert uuid.UUID(node_id("web1")).version == 5
