"""The building blocks of the OpenAPI tables: one way to write a parameter or a response.

Our own operations (openapi_spec), the Consul-compatible reads (consul_openapi) and
the status page (ui_openapi) are described in three tables; they share these so that
a parameter is declared the same way everywhere, which is what the strict query
check (resolver.http.params) reads back.
"""

from __future__ import annotations

import enum
from typing import Any

Operation = dict[str, Any]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def text_body(description: str, media_type: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def error(description: str) -> dict[str, Any]:
    return json_body(ref("Error"), description)


def path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def query(name: str, description: str, type_: str = "string", repeat: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": type_}
    if repeat:
        schema = {"type": "array", "items": schema}
    param = {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
    if repeat:
        param.update(style="form", explode=True)
    return param


def enum_schema(values: type[enum.Enum] | tuple[str, ...], **extra: Any) -> dict[str, Any]:
    """A string schema whose values are a Python enum's (or a declared tuple's), never retyped here."""
    names = [member.value for member in values] if isinstance(values, type) else list(values)
    return {"type": "string", "enum": names, **extra}
