"""ratelimit.py: budgets per client network, slip, a table that never grows."""

from __future__ import annotations

import socket

import pytest

from resolver.dns.ratelimit import ANSWER, DROP, SLIP, RateLimiter, network_of


def verdicts(limiter: RateLimiter, network: bytes, times: list[float]) -> list[int]:
    return [limiter.verdict(network, now) for now in times]


def test_a_burst_of_one_second_then_every_second_limited_answer_slips() -> None:
    limiter = RateLimiter(5)
    got = verdicts(limiter, b"\x0a\x00\x00", [100.0] * 11)
    assert got == [ANSWER] * 5 + [DROP, SLIP, DROP, SLIP, DROP, SLIP]


def test_the_budget_refills_at_the_rate() -> None:
    limiter = RateLimiter(10)
    assert verdicts(limiter, b"net", [0.0] * 10) == [ANSWER] * 10
    assert limiter.verdict(b"net", 0.0) != ANSWER
    assert limiter.verdict(b"net", 0.1) == ANSWER  # 0.1 s at 10/s: one more
    assert limiter.verdict(b"net", 0.1) != ANSWER
    assert verdicts(limiter, b"net", [5.0] * 10) == [ANSWER] * 10  # refilled to the burst, no further


def test_fractional_rates_answer_one_in_so_many_seconds() -> None:
    limiter = RateLimiter(0.5)
    assert verdicts(limiter, b"net", [0.0, 0.5, 1.0, 2.0]) == [ANSWER, DROP, SLIP, ANSWER]


def test_networks_have_budgets_of_their_own() -> None:
    limiter = RateLimiter(1)
    assert verdicts(limiter, b"one", [0.0, 0.0]) == [ANSWER, DROP]
    assert limiter.verdict(b"two", 0.0) == ANSWER


def test_the_table_is_fixed_and_a_taken_slot_starts_afresh() -> None:
    limiter = RateLimiter(1, size=1)  # every network shares the one slot
    assert verdicts(limiter, b"one", [0.0, 0.0]) == [ANSWER, DROP]
    assert limiter.verdict(b"two", 0.0) == ANSWER  # a collision forgets, never limits an innocent
    assert limiter.verdict(b"one", 0.0) == ANSWER
    many = RateLimiter(1, size=8)
    for i in range(10_000):
        many.verdict(i.to_bytes(3, "big"), 0.0)
    assert len(many._networks) == 8


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("192.0.2.77", bytes([192, 0, 2])),
        ("127.0.0.1", None),
        ("127.5.6.7", None),
        ("2001:db8:1:2ff::7", socket.inet_pton(socket.AF_INET6, "2001:db8:1:200::")[:7]),
        ("::1", None),
    ],
)
def test_clients_are_limited_by_their_slash_24_or_slash_56_and_loopback_never(address: str, network: bytes | None) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    assert network_of(socket.inet_pton(family, address)) == network
