"""One registration field list (registry.model.REGISTRATION_FIELDS): everything else is tied to it here.

The validator takes it, `registration_dict` writes it, the OpenAPI `Registration`
describes it, the README's schema example shows it, and the OpenAPI enums are the
Python enums' values.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import NODE
from registry.cluster.records import encode_instance
from registry.errors import ValidationError
from registry.model import REGISTRATION_FIELDS, ConflictType, Entry, Status, Transport
from registry.schema import parse_registration
from resolver.client.selection import Strategy
from resolver.http.openapi_spec import COMPONENTS, OPERATIONS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
EVERY_FIELD = {
    "id": "web-1", "name": "web", "node": "n1", "address": "10.0.0.2", "port": 80, "protocol": "http",
    "transport": "tcp", "endpoint_path": "/x", "version": "1.0", "tags": ["a"], "meta": {"k": "v"}, "weight": 2,
    "priority": 3, "discoverable": False, "checks": [{"tcp": "127.0.0.1:80"}], "ttl": "30s",
}


def test_the_list_is_every_field_a_registration_sets() -> None:
    assert list(EVERY_FIELD) == list(REGISTRATION_FIELDS)


def test_the_validator_takes_every_field_and_nothing_else() -> None:
    instance = parse_registration(EVERY_FIELD, NODE)
    written = instance.registration_dict()
    assert list(written) == list(REGISTRATION_FIELDS)
    assert parse_registration(written, NODE) == instance
    with pytest.raises(ValidationError, match="unknown key"):
        parse_registration({**EVERY_FIELD, "source": "api"}, NODE)


def test_an_instance_read_back_from_the_fleet_carries_every_field() -> None:
    instance = parse_registration(EVERY_FIELD, NODE)
    assert set(REGISTRATION_FIELDS) <= set(json.loads(encode_instance(Entry(instance, Status.PASSING))))


def test_openapi_describes_the_same_fields() -> None:
    assert list(COMPONENTS["schemas"]["Registration"]["properties"]) == list(REGISTRATION_FIELDS)


def test_the_readme_schema_example_shows_every_field() -> None:
    section = README.split("## Registrations (YAML schema)", 1)[1]
    block = re.search(r"^    name: redis.*?(?=\n\S)", section, re.S | re.M)
    assert block is not None
    example = yaml.safe_load("\n".join(line[4:] for line in block.group(0).splitlines()))
    assert set(example) == set(REGISTRATION_FIELDS)


def enum_of(schema: dict[str, Any]) -> list[str]:
    return list(schema["enum"])


def test_openapi_enums_are_the_python_enums() -> None:
    schemas = COMPONENTS["schemas"]
    assert enum_of(schemas["Registration"]["properties"]["transport"]) == [t.value for t in Transport]
    assert enum_of(schemas["Instance"]["properties"]["status"]) == [s.value for s in Status]
    [strategy] = [p for p in OPERATIONS[("GET", "/v1/services/{name}/url")]["parameters"] if p["name"] == "strategy"]
    assert enum_of(strategy["schema"]) == [s.value for s in Strategy]
    body = OPERATIONS[("POST", "/v1/conflicts")]["requestBody"]["content"]["application/json"]["schema"]
    assert enum_of(body["properties"]["type"]) == [t.value for t in ConflictType]
