"""Bearer token: writes need it when configured, reads never do."""

from __future__ import annotations

import pytest

from apikit import ApiServer

TOKEN = "s3cret-token"
WRITES = [
    ("POST", "/v1/services", {"name": "w", "port": 8000}),
    ("PUT", "/v1/services/w-8000", {"name": "w", "port": 8000}),
    ("DELETE", "/v1/services/w-8000", None),
    ("POST", "/v1/conflicts", {"a": "x", "b": "y", "type": "port", "reason": "r"}),
    ("DELETE", "/v1/conflicts/1", None),
    ("PUT", "/v1/config/k", {"value": "v"}),
    ("DELETE", "/v1/nodes/node1/config/k", None),
    ("POST", "/v1/services/w/feedback", {"id": "w-8000", "active": 1}),
]


@pytest.mark.parametrize("method, path, body", WRITES)
def test_writes_without_the_token_are_401_and_change_nothing(
    api_with_token: ApiServer, method: str, path: str, body: object
) -> None:
    index = api_with_token.catalog.current.index
    for token in (None, "wrong-token", ""):
        reply = api_with_token.request(method, path, body, token=token)
        assert reply.status == 401, (method, path, token)
        assert reply.error["code"] == "unauthorized"
        assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert api_with_token.catalog.current.index == index


def test_the_token_lets_writes_through(api_with_token: ApiServer) -> None:
    assert api_with_token.post("/v1/services", {"name": "w", "port": 8000}, token=TOKEN).status == 201
    assert api_with_token.put("/v1/config/k", {"value": "v"}, token=TOKEN).status == 200
    assert api_with_token.delete("/v1/services/w-8000", token=TOKEN).status == 200
    basic = api_with_token.request("POST", "/v1/services", {"name": "w", "port": 8000}, token=None)
    assert basic.status == 401


def test_reads_need_no_token(api_with_token: ApiServer) -> None:
    for path in ("/v1/services", "/v1/status", "/v1/conflicts", "/healthz", "/metrics", "/v1/openapi.json"):
        assert api_with_token.get(path).status == 200, path


def test_no_token_configured_means_open_writes(api: ApiServer) -> None:
    assert api.post("/v1/services", {"name": "w", "port": 8000}).status == 201
