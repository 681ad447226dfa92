"""The /url selection strategies as pure functions over entries (no server)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from registry.model import Entry, Instance, Status
from resolver.client.selection import Strategy
from resolver.http.selection import Selector

LOCAL = "here"


def _entry(instance_id: str, node: str = LOCAL, weight: int = 1) -> Entry:
    return Entry(Instance(instance_id, "svc", node, "10.0.0.1", 8000, weight=weight), Status.PASSING)


CANDIDATES = [_entry("a"), _entry("b", node="there"), _entry("c", weight=0)]


def _picks(selector: Selector, strategy: Strategy, n: int, candidates: list[Entry] = CANDIDATES, client: str = "192.0.2.1") -> list[str]:
    return [selector.select("svc", candidates, strategy, client, LOCAL).instance.id for _ in range(n)]


@pytest.mark.parametrize(
    "strategy, candidates, expected",
    [
        (Strategy.ROUND_ROBIN, CANDIDATES, ["a", "b", "c", "a", "b", "c"]),
        (Strategy.LOCAL_FIRST, CANDIDATES, ["a", "c", "a", "c", "a", "c"]),
        (Strategy.LOCAL_FIRST, [_entry("x", node="far"), _entry("y", node="far")], ["x", "y", "x", "y", "x", "y"]),
        (Strategy.LEAST_CONN, CANDIDATES, ["a", "b", "c", "a", "b", "c"]),
    ],
)
def test_deterministic_strategies(strategy: Strategy, candidates: list[Entry], expected: list[str]) -> None:
    assert _picks(Selector(), strategy, 6, candidates) == expected


def test_weighted_follows_weights_and_never_picks_weight_zero() -> None:
    counts = Counter(_picks(Selector(random.Random(7)), Strategy.WEIGHTED, 2000, [_entry("a", weight=3), _entry("b"), _entry("z", weight=0)]))
    assert counts["z"] == 0
    assert 2.4 < counts["a"] / counts["b"] < 3.8


def test_weighted_with_all_weights_zero_still_answers() -> None:
    assert set(_picks(Selector(random.Random(1)), Strategy.WEIGHTED, 50, [_entry("a", weight=0), _entry("b", weight=0)])) == {"a", "b"}


def test_random_reaches_every_candidate() -> None:
    assert set(_picks(Selector(random.Random(3)), Strategy.RANDOM, 100)) == {"a", "b", "c"}


def test_ip_hash_is_stable_per_client_and_spreads_clients() -> None:
    selector = Selector()
    assert len(set(_picks(selector, Strategy.IP_HASH, 10, client="198.51.100.7"))) == 1
    chosen = {_picks(selector, Strategy.IP_HASH, 1, client=f"198.51.100.{n}")[0] for n in range(50)}
    assert chosen == {"a", "b", "c"}


def test_least_conn_feedback_overrides_the_local_count() -> None:
    selector = Selector()
    _picks(selector, Strategy.LEAST_CONN, 3)
    assert selector.connections(("here", "a")) == 1
    selector.report(("here", "a"), 10)
    selector.report(("there", "b"), 10)
    assert _picks(selector, Strategy.LEAST_CONN, 1) == ["c"]
