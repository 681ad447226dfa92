"""registry/fields.py: one reader, the same refusal for the same fault in a registration and in the config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import NODE
from registry.errors import ValidationError
from registry.fields import FieldReader, parse_duration, suggestion
from registry.schema import load_text
from registry.yamldoc import LocatedDoc
from resolver.config import ConfigError, load_config

LABEL = re.compile(r"[a-z]+")


def refusal(read: Callable[[FieldReader], object]) -> str:
    reader = FieldReader("x.yaml", LocatedDoc(lines={("a",): 3}))
    assert read(reader) is None
    [problem] = reader.problems
    return str(problem)


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (lambda r: r.string(1, ("a",)), "x.yaml:3: a: must be a string, not an integer"),
        (lambda r: r.string("", ("a",), non_empty=True), "x.yaml:3: a: must be a non-empty string"),
        (lambda r: r.string("A", ("a",), LABEL, "is not lower-case"), "x.yaml:3: a: 'A' is not lower-case"),
        (lambda r: r.choice("sctp", ("a",), ("tcp", "udp")), "x.yaml:3: a: 'sctp' must be tcp or udp"),
        (lambda r: r.choice("x", ("a",), ("p", "q", "r")), "x.yaml:3: a: 'x' must be one of p, q, r"),
        (lambda r: r.integer(True, ("a",), 1, 9), "x.yaml:3: a: must be an integer, not a bool"),
        (lambda r: r.integer(10, ("a",), 1, 9), "x.yaml:3: a: 10 is outside 1..9"),
        (lambda r: r.number(float("nan"), ("a",), 1), "x.yaml:3: a: must be a number >= 1, not nan"),
        (lambda r: r.boolean("yes", ("a",)), "x.yaml:3: a: must be true or false, not a string"),
        (lambda r: r.duration(5, ("a",)), "x.yaml:3: a: must be a duration string, not an integer (add a unit: 10s, 500ms, 5m)"),
        (lambda r: r.duration("2h", ("a",), (1, 60)), "x.yaml:3: a: must be between 1s and 60s"),
        (lambda r: r.mapping([], ("a",), ()), "x.yaml:3: a: must be a mapping, not a list"),
        (lambda r: r.strings(["x", 1], ("a", 0)), "x.yaml:3: a[0]: must be a list of strings, not a list"),
    ],
)
def test_refusals(read: Callable[[FieldReader], Any], expected: str) -> None:
    assert refusal(read) == expected


def test_an_unknown_key_is_named_with_the_closest_known_one() -> None:
    reader = FieldReader("x.yaml", LocatedDoc())
    assert reader.mapping({"prot": 1, "extra": 2}, (), ("port", "name")) is not None
    assert [p.message for p in reader.problems] == ["unknown key (did you mean 'port'?)", "unknown key"]
    assert suggestion("tcp_conections", ("tcp_connections",)) == " (did you mean 'tcp_connections'?)"


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration("500ms") == 0.5
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration("10")


def test_a_registration_and_the_config_refuse_the_same_fault_in_the_same_words(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as registration:
        load_text("name: web\nport: 80\nttl: 5\n", "web.yaml", NODE)
    config_file = tmp_path / "pilotfish.yaml"
    config_file.write_text("dns:\n  ttl: 5\n")
    with pytest.raises(ConfigError) as config:
        load_config(str(config_file))
    [from_registration], [from_config] = registration.value.problems, config.value.problems
    assert from_registration.message == from_config.message
    assert (from_registration.line, from_config.line) == (3, 2)
