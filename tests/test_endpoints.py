"""registry/endpoints.py: addresses parsed once, written back one way."""

from __future__ import annotations

import pytest

from registry.endpoints import Endpoint, parse_address, parse_etcd


@pytest.mark.parametrize(
    ("text", "default_port", "endpoint", "loopback"),
    [
        ("127.0.0.1:8600", None, Endpoint("127.0.0.1", 8600), True),
        ("[::1]:0", None, Endpoint("::1", 0), True),
        ("0.0.0.0:53", None, Endpoint("0.0.0.0", 53), False),
        ("1.1.1.1", 53, Endpoint("1.1.1.1", 53), False),
        ("fd00::1", 53, Endpoint("fd00::1", 53), False),
    ],
)
def test_addresses(text: str, default_port: int | None, endpoint: Endpoint, loopback: bool) -> None:
    assert parse_address(text, default_port) == endpoint
    assert endpoint.is_loopback is loopback
    assert parse_address(str(endpoint)) == endpoint  # what is written back reads back the same


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("127.0.0.1", "'127.0.0.1' is not host:port"),
        ("localhost:53", "'localhost' in 'localhost:53' is not an IP address"),
        ("127.0.0.1:70000", "port '70000' in '127.0.0.1:70000' must be 0-65535"),
        ("::1:53", "is not host:port"),
    ],
)
def test_bad_addresses(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_address(text)
    assert reason in str(caught.value)


def test_etcd_endpoints_may_be_names_and_never_loopback_by_name() -> None:
    endpoint = parse_etcd("http://etcd.internal:2379/")
    assert (endpoint, str(endpoint), endpoint.is_loopback) == (Endpoint("etcd.internal", 2379), "etcd.internal:2379", False)
    with pytest.raises(ValueError, match="https is not supported"):
        parse_etcd("https://etcd.internal:2379")
