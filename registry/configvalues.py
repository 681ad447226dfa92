"""Typed config values (`PUT /v1/config/{key}`): the types a value may have, and its casts.

A value is cast when it is written and again when it is read back, so a value that
does not cast to its declared type is refused at the door and never served. Pure
functions; the store keeps the text `serialise_value` makes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from registry.errors import ConfigValueError

VALUE_TYPES = ("string", "int", "bool", "json")
# Where a value read for a node came from: its own row, or the global default.
CONFIG_SCOPES = ("node", "global")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def cast_value(key: str, raw: object, value_type: str) -> Any:
    """Cast a config value to its declared type, or refuse it with the reason."""
    if value_type not in VALUE_TYPES:
        raise ConfigValueError(key, value_type, f"value_type must be one of {', '.join(VALUE_TYPES)}")
    if value_type == "json":
        if not isinstance(raw, str):
            return raw
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise ConfigValueError(key, value_type, f"not valid JSON: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:
            raise ConfigValueError(key, value_type, f"not valid JSON: {exc}") from None
    if value_type == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigValueError(key, value_type, f"{raw!r} is not a bool (true/false)")
    if value_type == "int":
        if isinstance(raw, bool):
            raise ConfigValueError(key, value_type, f"{raw!r} is not an int")
        if isinstance(raw, int):
            return raw
        try:
            return int(str(raw).strip(), 10)
        except ValueError:
            raise ConfigValueError(key, value_type, f"{raw!r} is not an int") from None
    if not isinstance(raw, str):
        raise ConfigValueError(key, value_type, f"{raw!r} is not a string")
    # JSON's "\ud800" decodes to a lone surrogate, which SQLite cannot store as UTF-8.
    # Other characters stay: a string value may be a multi-line template.
    surrogate = _SURROGATE.search(raw)
    if surrogate is not None:
        raise ConfigValueError(key, value_type, f"holds a lone surrogate (not valid Unicode) at position {surrogate.start()}")
    return raw


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; a value stored with one could not be served back."""
    raise ValueError(f"{name} is not a JSON value")


def serialise_value(value: Any, value_type: str) -> str:
    """The text SQLite keeps for a value already cast to `value_type`."""
    if value_type == "json":
        return json.dumps(value, sort_keys=True)
    if value_type == "bool":
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class ConfigValue:
    key: str
    value: Any
    value_type: str
    scope: str  # "node" or "global"
    node: str | None

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "value": self.value, "value_type": self.value_type, "scope": self.scope}
