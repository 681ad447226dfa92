"""Reading a value another program wrote: strict JSON, no control characters, no lone surrogates.

The first step of decoding any etcd value (registry.cluster.records): the text is
scanned before it is parsed, because a value arrives from a program we do not
control, and a control character or a lone surrogate read into the catalog would
reach every reader (DNS TXT, logs, the status page).
"""

from __future__ import annotations

import json
import re
from typing import Any

from registry.cluster.keys import BadRecord

# Nodes refuse to read a value larger than this; a record is about 1 KiB.
MAX_RECORD_BYTES = 64 * 1024
# The controls as they can appear in JSON text: raw (strict parsing already refuses
# raw C0 inside strings) or escaped after an even run of backslashes. Scanning the
# text once is several times cheaper than walking the decoded value.
CONTROL_IN_JSON = re.compile(
    r"""
    [\x7f-\x9f]                        # raw DEL and C1
    | (?<!\\)(?:\\\\)*\\            # an escape, not an escaped backslash, then:
      (?: [bfr]                         #   \b \f \r
        | u00(?:0[0-8b-fB-F] | 1[0-9a-fA-F] | 7[fF] | [89][0-9a-fA-F])   # C0 but tab and newline, DEL, C1
      )
    """,
    re.VERBOSE,
)
RAW_CONTROL = re.compile(r"[\x7f-\x9f]")
# A surrogate can only come from an escape. A pair is one character (an emoji from an
# ASCII-only encoder); only when the text has one is the value walked for a lone one.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
# A tab or a newline as JSON writes them (strict parsing refuses them raw), in the raw bytes.
TAB_OR_NEWLINE = re.compile(rb"\\[tn]|\\u000[9aA]")


def load_object(key: str, raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_RECORD_BYTES:
        raise BadRecord(key, f"value is {len(raw)} bytes, over {MAX_RECORD_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRecord(key, f"value is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    # Most records hold no backslash at all: then only a raw DEL or C1 can be a control,
    # and one plain character class finds it several times faster than the full scan.
    escaped = "\\" in text
    found = (CONTROL_IN_JSON if escaped else RAW_CONTROL).search(text)
    if found:
        raise BadRecord(key, f"value holds a control character ({found.group()[-6:]!r})")
    try:
        value = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise BadRecord(key, "value is nested too deep to read") from None
    except ValueError as exc:  # JSONDecodeError, a duplicate, NaN, or an int too long to convert
        raise BadRecord(key, f"value is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRecord(key, f"value must be a JSON object, not {type(value).__name__}")
    if escaped and SURROGATE_ESCAPE.search(text) and has_lone_surrogate(value):
        raise BadRecord(key, "value holds a lone surrogate (not a character)")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise ValueError(f"duplicate field {name!r}")
        out[name] = value
    return out


def has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and LONE_SURROGATE.search(item):
            return True
    return False


def depth(value: Any) -> int:
    """How deep lists and objects nest in `value`; iterative, so depth cannot hurt it."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest
