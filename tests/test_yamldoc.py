"""registry/yamldoc.py: merge keys work; hostile YAML is a problem with a line, never an exception."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import NODE
from registry.errors import ValidationError
from registry.schema import load_text
from registry.yamlbounded import MAX_DEPTH
from registry.yamldoc import PURE_PARSER_MAX, compose


# Nine levels of nine aliases: 387 million strings from ten lines.
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


def refusal(text: str, path: str = "x.yaml") -> str:
    """The one problem `text` is refused with, as `pilotfish validate` prints it."""
    with pytest.raises(ValidationError) as info:
        load_text(text, path, NODE)
    [problem] = info.value.problems
    return str(problem)


def test_merge_key_fills_in_what_the_mapping_leaves_out() -> None:
    text = """
x-defaults: &defaults
  port: 8080
  tags: [blue]
  checks: [{tcp: "127.0.0.1:8080"}]
services:
  - <<: *defaults
    name: web
  - <<: *defaults
    name: api
    port: 9090
"""
    web, api = load_text(text, "m.yaml", NODE)
    assert (web.name, web.port, web.tags) == ("web", 8080, ("blue",))
    assert (api.name, api.port, api.tags) == ("api", 9090, ("blue",))
    assert web.checks[0].target == api.checks[0].target == "127.0.0.1:8080"


def test_merge_of_a_list_takes_each_key_from_the_first_mapping_that_has_it() -> None:
    text = """
x-a: &a {port: 80, meta: {team: a}}
x-b: &b {port: 90, tags: [b], meta: {team: b}, <<: {version: "2"}}
services:
  - <<: [*a, *b]
    name: web
"""
    [web] = load_text(text, "m.yaml", NODE)
    assert (web.port, web.tags, dict(web.meta), web.version) == (80, ("b",), {"team": "a"}, "2")


def test_merge_key_reads_an_anchored_list_item() -> None:
    text = "services:\n  - &web\n    name: web\n    port: 1\n  - <<: *web\n    id: web-2\n    port: 2\n"
    assert [(i.id, i.port) for i in load_text(text, "m.yaml", NODE)] == [("web-1", 1), ("web-2", 2)]


def test_merged_keys_still_meet_the_schema() -> None:
    text = "x-base: &base {port: 70000}\nservices:\n  - <<: *base\n    name: web\n"
    assert refusal(text) == "x.yaml:1: services[0].port: 70000 is outside 1..65535"
    assert refusal("name: web\n<<: [1]\nport: 1\n") == (
        "x.yaml:2: (top): `<<` merges a mapping or a list of mappings, nothing else"
    )


@pytest.mark.parametrize(
    "text,expected",
    [
        ("name: web\nport: 80\nversion: !!timestamp x\n", "x.yaml:3: version: 'x' is not a valid !!timestamp"),
        ("name: web\nport: !!int abc\n", "x.yaml:2: port: 'abc' is not a valid !!int"),
        ("name: web\nport: 80\ndiscoverable: !!bool maybe\n", "x.yaml:3: discoverable: 'maybe' is not a valid !!bool"),
        ("name: web\nport: !!float x\n", "x.yaml:2: port: 'x' is not a valid !!float"),
        ("name: web\nport: 80\nversion: !!binary 'a'\n", "x.yaml:3: version: 'a' is not a valid !!binary"),
        (
            "name: !!python/object/apply:os.system [id]\nport: 80\n",
            "x.yaml:1: name: tag '!!python/object/apply:os.system' is not supported (plain lists only)",
        ),
        (
            "name: !!python/name:os.system x\nport: 80\n",
            "x.yaml:1: name: tag '!!python/name:os.system' is not supported (plain strings, numbers, booleans and null only)",
        ),
        (
            "name: web\nport: 80\nmeta: !custom {a: b}\n",
            "x.yaml:3: meta: tag '!custom' is not supported (plain mappings only)",
        ),
        ("name: web\nport: 80\ntags: !!set {a, b}\n", "x.yaml:3: tags: tag '!!set' is not supported (plain mappings only)"),
    ],
)
def test_tags_that_do_not_build_a_plain_value_are_the_files_problem(text: str, expected: str) -> None:
    assert refusal(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "name: web\nport: 80\nmeta: " + "[" * 1000 + "]" * 1000 + "\n",
        "x: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n",
        "".join("  " * i + "a:\n" for i in range(1000)),
        "".join("  " * i + "-\n" for i in range(1000)),
        "x: " + "[" * 100_000 + "]" * 100_000 + "\n",
    ],
    ids=["flow-lists", "flow-maps", "block-maps", "block-lists", "100k-deep"],
)
def test_deep_nesting_is_refused_at_the_line_it_goes_too_deep(text: str) -> None:
    message = refusal(text)
    assert message.startswith("x.yaml:")
    # On a file past PURE_PARSER_MAX, libyaml's scanner, looking ahead through
    # flow brackets, may meet its own limit (1,000) first: its message stays.
    assert message.endswith(f"yaml: nested deeper than {MAX_DEPTH} levels; refused") or (
        len(text) > PURE_PARSER_MAX and "exceeded maximum nesting depth" in message
    )


def test_the_depth_limit_counts_what_aliases_bring_in() -> None:
    inner = "[" * 40 + "]" * 40
    assert compose(f"a: &a {inner}\n", "d.yaml").problems == []
    [problem] = compose(f"a: &a {inner}\nb: {'[' * 30}*a{']' * 30}\n", "d.yaml").problems
    assert (problem.line, problem.message) == (2, f"nested deeper than {MAX_DEPTH} levels; refused")


def test_exactly_the_depth_limit_is_read() -> None:
    deepest = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert compose(f"a: {deepest}\n", "d.yaml").problems == []
    assert compose(f"a: [{deepest}]\n", "d.yaml").problems != []


def test_alias_bomb_is_refused_in_milliseconds_without_growing() -> None:
    tracemalloc.start()
    try:
        started = time.perf_counter()
        message = refusal(BOMB, "bomb.yaml")
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message.startswith("bomb.yaml:5: yaml: the document expands past 50,000 nodes")
    # Generous bounds for a shared machine: the refusal takes about a millisecond and
    # 20 KB; expanding the bomb would take minutes and gigabytes.
    assert seconds < 1.0
    assert peak < 5_000_000


def test_a_recursive_alias_is_refused() -> None:
    assert refusal("x-a: &a [1, *a]\nservices: []\n") == "x.yaml:1: yaml: alias *a is inside its own anchor (a cycle)"
    assert refusal("x-a: &a {b: *a}\nservices: []\n") == "x.yaml:1: yaml: alias *a is inside its own anchor (a cycle)"


def test_a_large_plain_file_is_within_its_budget() -> None:
    # No aliases: a file never holds more nodes than bytes, so size alone is never refused.
    text = "services:\n" + "".join(f"  - {{name: s{i}, port: {i + 1}}}\n" for i in range(20_000))
    assert len(load_text(text, "big.yaml", NODE)) == 20_000


@pytest.mark.parametrize(
    "value,code",
    [('"evil\\n"', "U+000A"), ('"a\\tb"', "U+0009"), ('"\\0"', "U+0000"), ('"\\e[31m"', "U+001B"),
     ('"\\x85"', "U+0085"), ('"\\ud800"', "U+D800"), ('"\\x7f"', "U+007F")],
)
def test_control_characters_and_lone_surrogates_are_refused_everywhere(value: str, code: str) -> None:
    for at, text in [
        ("name", f"name: {value}\nport: 80\n"),
        ("meta.team", f"name: web\nport: 80\nmeta: {{team: {value}}}\n"),
        ("checks[0].exec[1]", f"name: web\nport: 80\nchecks: [{{exec: [/bin/true, {value}]}}]\n"),
    ]:
        message = refusal(text)
        assert f": {at}: " in message and f", {code}, at position" in message, message
    assert code in refusal(f"name: web\nport: 80\nmeta: {{{value}: x}}\n")


# -- attacked with random documents -------------------------------------------------

FRAGMENTS = [
    "name: web\n", "port: 80\n", "services:\n", "  - ", "- ", "? ", ": ", "&a ", "&b ", "*a", "*b", "<<: *a\n",
    "<<: [*a, *b]\n", "!!timestamp ", "!!int ", "!!binary ", "!!python/object:os.system ", "!foo ", "!!set ",
    "[", "]", "{", "}", ",", "\n", "  ", "'", '"', "\\x00", "\\ud800", "\\U0001F600", "---\n", "...\n", "#",
    "%YAML 1.1\n", "checks: [{tcp: 127.0.0.1:80}]\n", "meta: {a: b}\n", "tags: [a]\n", "ttl: 1s\n",
    "é", "\u2028", "\ufeff", "\t", "|\n  x\n", ">-\n  y\n", "=", "~", "null", "0x1F", "1e999", ".nan", "2024-01-01",
]
VALID = (
    "x-base: &base {port: 80, tags: [a, b], meta: {team: web}}\n"
    "services:\n  - <<: *base\n    name: web\n    checks: [{tcp: '127.0.0.1:80', interval: 10s}]\n"
    "  - name: api\n    port: 81\n    version: 1.10\n"
)


def _mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    for position, length, insert in edits:
        at = position % (len(text) + 1)
        text = text[:at] + insert + text[at + length:]
    return text


documents = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 4), st.sampled_from(FRAGMENTS) | st.text(max_size=3)),
             min_size=1, max_size=6).map(lambda edits: _mutate(VALID, edits)),
    st.text(max_size=200),
    st.integers(1, 300).map(lambda depth: "a: " + "[" * depth + "]" * depth),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_document_loads_or_is_refused_with_problems(text: str) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        instances = load_text(text, "fuzz.yaml", NODE)
    except ValidationError as exc:
        assert exc.problems and all(p.path == "fuzz.yaml" for p in exc.problems)
        assert all(len(str(p)) < 1000 for p in exc.problems), "messages stay short, whatever the input"
    else:
        assert all(str(instance.source) == "file:fuzz.yaml" for instance in instances)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # Generous: a few kilobytes of input may cost a few megabytes, never the machine.
    assert time.perf_counter() - started < 5.0
    assert peak < 20_000_000
