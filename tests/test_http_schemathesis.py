"""The API attacked through its own OpenAPI document (schemathesis): no 5xx, and every
answer has a documented status, content type and schema.

schemathesis reads the OpenAPI document and sends every operation a few dozen
generated requests, valid and invalid ones, to a running daemon; the fixture first
checks that the daemon serves exactly that document at `/v1/openapi.json`. (The
document is built in-process for collection because schemathesis' lazy loading
from a fixture does not work with pytest 9.) Hypothesis runs derandomized (the same
requests on every run, so a failure reproduces and nothing flakes) and without
shrinking, which would only spend time on a failure that already reproduces.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks

from conftest import NODE
from daemonkit import DaemonFactory
from registry.catalog import Catalog
from registry.store import Store
from resolver.config import Config
from resolver.http.app import build_app
from resolver.http.openapi import document
from resolver.http.openapi_spec import DURATION_PATTERN
from resolver.state import DaemonState

# Requests per operation; about 30 operations make a run of ~15 s.
EXAMPLES = 25

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
]

SERVICES = {
    "web.yaml": "name: web\nport: 8080\nprotocol: http\ntags: [blue]\nmeta: {team: edge}\n",
    "db.yaml": "name: postgresql\nchecks:\n  - ttl: 30s\n    id: db-ttl\n",
}


def openapi_document() -> dict[str, Any]:
    store = Store(":memory:")
    try:
        state = DaemonState(Config(node=NODE.node, address=NODE.address), Catalog(store, NODE), store, NODE)
        served: dict[str, Any] = json.loads(json.dumps(document(build_app(state))))  # as served: JSON through and through
        return served
    finally:
        store.close()


DOCUMENT = openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a running daemon that serves DOCUMENT."""
    factory = DaemonFactory(Path(tmp_path_factory.mktemp("schemathesis")))
    try:
        daemon = factory(files=SERVICES)
        with urllib.request.urlopen(daemon.http_url + "/v1/openapi.json", timeout=10) as response:
            assert json.loads(response.read()) == DOCUMENT
        yield daemon.http_url
    finally:
        factory.close()


def tame(case: Any) -> None:
    """Keep generated requests from the two things that are fine but slow or unsafe here.

    A blocking query whose index matches waits up to 10 minutes (their own tests
    cover them): any `wait` becomes 1 ms. An exec check runs a command as the daemon's
    user: generated registrations get none.
    """
    query = case.query
    if isinstance(query, dict) and "index" in query:
        wait = query.get("wait")
        if not isinstance(wait, str) or re.fullmatch(DURATION_PATTERN, wait):
            query["wait"] = "1ms"  # an invalid wait stays: it is answered 400 at once
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("checks"), list):
        body["checks"] = [c for c in body["checks"] if not (isinstance(c, dict) and "exec" in c)]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_its_documented_promises(case: Any, served: str) -> None:
    tame(case)
    case.call_and_validate(base_url=served, checks=CHECKS)
