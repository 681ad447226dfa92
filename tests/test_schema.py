"""Registration validation: every malformed file is refused with its own file:line: field: message."""

from __future__ import annotations

import dataclasses

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import NODE
from registry.errors import ValidationError
from registry.fields import parse_duration
from registry.model import CheckKind, Transport
from registry.names import DNS_LABEL, HTTP_HEADER, INSTANCE_ID, META_KEY, PROTOCOL, SYSTEMD_UNIT, TAG
from registry.schema import load_file, load_text, parse_registration

ROOT = Path(__file__).resolve().parent.parent
MALFORMED = ROOT / "tests" / "data" / "malformed"
EXAMPLES = ROOT / "examples" / "services.d"

# (file, "line: field: message") — exactly what `pilotfish validate` prints after "path:".
EXPECTED = [
    ('01-yaml-syntax.yaml', "2: yaml: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence started on line 2)"),
    ('02-unknown-key.yaml', "2: prot: unknown key (did you mean 'port'?)"),
    ('03-port-too-big.yaml', '2: port: 70000 is outside 1..65535'),
    ('04-port-zero.yaml', '2: port: 0 is outside 1..65535'),
    ('05-port-string.yaml', '2: port: must be an integer, not a string'),
    ('06-missing-name.yaml', '1: name: missing required key'),
    ('07-name-uppercase.yaml', "1: name: 'WebApp' is not a DNS label (1-63 lowercase letters, digits and '-', no '-' at either end)"),
    ('08-name-underscore.yaml', "1: name: 'web_app' is not a DNS label (1-63 lowercase letters, digits and '-', no '-' at either end)"),
    ('09-missing-port.yaml', "1: port: missing required key ('my-app' has no well-known port)"),
    ('10-bad-duration-unit.yaml', "5: checks[0].interval: '10x' is not a duration (use a unit: 500ms, 10s, 5m, 1h)"),
    ('11-duration-bare-number.yaml', '5: checks[0].interval: must be a duration string, not an integer (add a unit: 10s, 500ms, 5m)'),
    ('12-duplicate-ids.yaml', "4: services[1].id: duplicate id 'web-8080' (also services[0])"),
    ('13-bad-address.yaml', "3: address: 'db.example.com' is not an IPv4 or IPv6 address"),
    ('14-bad-transport.yaml', "3: transport: 'sctp' must be tcp or udp"),
    ('15-tags-not-list.yaml', '3: tags: must be a list of strings, not a string'),
    ('16-meta-not-map.yaml', '3: meta: must be a mapping of strings, not a list'),
    ('17-check-two-kinds.yaml', '4: checks[0]: a check needs exactly one of tcp, http, ttl, exec, systemd (found tcp, http)'),
    ('18-check-no-kind.yaml', '4: checks[0]: a check needs exactly one of tcp, http, ttl, exec, systemd'),
    ('19-tcp-target-no-port.yaml', "4: checks[0].tcp: 'localhost' must be host:port (port 1..65535; IPv6 as [::1]:80)"),
    ('20-http-target-not-url.yaml', "4: checks[0].http: '/health' must be an http:// or https:// URL with a host"),
    ('21-rise-zero.yaml', '5: checks[0].rise: 0 is outside 1..100'),
    ('22-http-option-on-tcp.yaml', '5: checks[0].status: only applies to http checks, not tcp'),
    ('23-services-and-fields.yaml', '1: name: a file holds one service mapping or `services: [...]`, not both'),
    ('24-top-level-list.yaml', '1: (top): a file holds one service mapping or `services: [...]`, not a list'),
    ('25-duplicate-key.yaml', '3: port: duplicate key'),
    ('26-weight-negative.yaml', '3: weight: -1 is outside 0..65535'),
    ('27-discoverable-string.yaml', '3: discoverable: must be true or false, not a string'),
    ('28-version-float.yaml', '3: version: must be a string, not a list'),
    ('29-endpoint-path.yaml', "3: endpoint_path: 'health' must be empty or start with '/' and hold no spaces"),
    ('30-exec-empty.yaml', '4: checks[0].exec: must name a program to run'),
    ('31-other-node-no-address.yaml', '1: address: required for an instance on another node (far-away)'),
    ('32-services-not-list.yaml', '1: services: must be a list of services, not a mapping'),
    ('33-bad-tag.yaml', "3: tags[1]: 'has space' is not a tag (1-63 lowercase letters, digits, '_' and '-')"),
    ('34-protocol-bad.yaml', "3: protocol: 'HTTP/1.1' is not a URL scheme (lowercase, e.g. http, redis)"),
    ('35-not-utf8.yaml', '3: (file): not UTF-8 text: invalid start byte'),
    ('36-timestamp-tag.yaml', "3: version: 'x' is not a valid !!timestamp"),
    ('37-int-tag.yaml', "2: port: 'abc' is not a valid !!int"),
    ('38-python-tag.yaml', "1: name: tag '!!python/object/apply:os.system' is not supported (plain lists only)"),
    ('39-deep-nesting.yaml', '3: yaml: nested deeper than 64 levels; refused'),
    ('40-alias-bomb.yaml', '5: yaml: the document expands past 50,000 nodes (every alias repeats all its anchor holds); refused'),
    ('41-name-newline.yaml', "1: name: 'evil\\n' holds a control character, U+000A, at position 4"),
    ('42-duration-400-nines.yaml', "3: ttl: '" + "9" * 75 + "...' is longer than the limit of one year (8760h)"),
    ('43-interval-1ms.yaml', '5: checks[0].interval: 1ms is shorter than the 1s minimum (limits.check_interval)'),
    ('44-timeout-over-interval.yaml', '6: checks[0].timeout: 10s is longer than the interval (5s)'),
    ('45-alias-cycle.yaml', '1: yaml: alias *a is inside its own anchor (a cycle)'),
    ('46-lone-surrogate.yaml', "3: meta.note: '\\ud800' holds a lone surrogate (not valid Unicode), U+D800, at position 0"),
]


def test_corpus_is_complete() -> None:
    assert sorted(p.name for p in MALFORMED.iterdir()) == sorted(name for name, _ in EXPECTED)
    assert len(EXPECTED) >= 25
    assert len({message for _, message in EXPECTED}) == len(EXPECTED), "every message is distinct"


@pytest.mark.parametrize("name,expected", EXPECTED, ids=[name for name, _ in EXPECTED])
def test_malformed_file_is_rejected_with_its_message(name: str, expected: str) -> None:
    path = MALFORMED / name
    with pytest.raises(ValidationError) as info:
        load_file(path, NODE)
    assert [str(p) for p in info.value.problems] == [f"{path}:{expected}"]


def test_validate_cli_prints_one_line_per_problem_and_exits_1() -> None:
    files = sorted(str(p.relative_to(ROOT)) for p in MALFORMED.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "resolver.cli", "validate", "--quiet", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    expected = [f"tests/data/malformed/{name}:{message}" for name, message in EXPECTED]
    assert result.stdout.splitlines() == expected


def test_validate_cli_accepts_the_examples() -> None:
    files = sorted(str(p) for p in EXAMPLES.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "resolver.cli", "validate", *files], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_every_example_file_loads() -> None:
    files = sorted(EXAMPLES.iterdir())
    assert files
    names: set[str] = set()
    for path in files:
        names.update(instance.name for instance in load_file(path, NODE))
    assert {"redis", "api", "postgresql"} <= names


def test_a_file_reports_every_problem_at_once() -> None:
    text = "services:\n  - name: Web\n    prot: 80\n  - name: api\n    port: 70000\n"
    with pytest.raises(ValidationError) as info:
        load_text(text, "multi.yaml", NODE)
    assert sorted(str(p) for p in info.value.problems) == [
        "multi.yaml:2: services[0].name: 'Web' is not a DNS label (1-63 lowercase letters, digits and '-', no '-' at either end)",
        "multi.yaml:3: services[0].prot: unknown key (did you mean 'port'?)",
        "multi.yaml:5: services[1].port: 70000 is outside 1..65535",
    ]


def test_full_registration_with_defaults() -> None:
    text = """
name: redis
port: 6379
protocol: redis
tags: [primary]
meta: {team: platform, replicas: 2, enabled: yes}
version: 1.10
checks:
  - tcp: 127.0.0.1:6379
    interval: 10s
    timeout: 500ms
  - http: http://127.0.0.1:8080/health
    status: [200, 204]
    headers: {X-Probe: pilotfish}
  - http: http://127.0.0.1:8080/ready
"""
    [instance] = load_text(text, "/etc/pilotfish/services.d/redis.yaml", NODE)
    assert instance.id == "redis-6379"
    assert instance.node == NODE.node and instance.address == NODE.address and instance.address_is_node
    assert instance.url == f"redis://{NODE.address}:6379"
    assert instance.transport is Transport.TCP
    assert str(instance.source) == "file:/etc/pilotfish/services.d/redis.yaml"
    # Scalars keep the text the operator wrote: version 1.10 is not the float 1.1.
    assert instance.version == "1.10"
    assert dict(instance.meta) == {"team": "platform", "replicas": "2", "enabled": "yes"}
    tcp, http, http2 = instance.checks
    assert (tcp.kind, tcp.interval, tcp.timeout) == (CheckKind.TCP, 10.0, 0.5)
    assert http.expected_status == (200, 204) and dict(http.headers) == {"X-Probe": "pilotfish"}
    assert [c.id for c in instance.checks] == ["redis-6379:tcp", "redis-6379:http", "redis-6379:http:2"]


@pytest.mark.parametrize(
    "name,port,protocol",
    [
        ("redis-server", 6379, "redis"),
        ("redis-stack-server", 6379, "redis"),
        ("postgresql", 5432, "postgres"),
        ("mysql-server", 3306, "mysql"),
        ("mariadb-server", 3306, "mysql"),
        ("nginx", 80, "http"),
        ("apache2", 80, "http"),
        ("prometheus", 9090, "http"),
        ("grafana-server", 3000, "http"),
        ("ollama", 11434, "http"),
    ],
)
def test_well_known_services_may_omit_port_and_protocol(name: str, port: int, protocol: str) -> None:
    [instance] = load_text(f"name: {name}\n", "x.yaml", NODE)
    assert (instance.port, instance.protocol, instance.id) == (port, protocol, f"{name}-{port}")


def test_ipv6_address_url_is_bracketed() -> None:
    instance = parse_registration({"name": "web", "port": 80, "protocol": "http", "address": "::1", "endpoint_path": "/x"}, NODE)
    assert instance.url == "http://[::1]:80/x"
    assert not instance.address_is_node


def test_json_body_problems_have_no_line() -> None:
    with pytest.raises(ValidationError) as info:
        parse_registration({"name": "web", "port": "80", "extra": 1}, NODE)
    assert sorted(str(p) for p in info.value.problems) == [
        "<request>:-: extra: unknown key",
        "<request>:-: port: must be an integer, not a string",
    ]
    with pytest.raises(ValidationError):
        parse_registration(["not", "a", "mapping"], NODE)


def test_empty_file_registers_nothing() -> None:
    assert load_text("# nothing here yet\n", "empty.yaml", NODE) == []


@pytest.mark.parametrize(
    "text,seconds",
    [("10s", 10.0), ("500ms", 0.5), ("5m", 300.0), ("1h30m", 5400.0), ("1.5s", 1.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10", "10x", "", "s", "-5s", "0s", "1 s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_an_instance_read_back_registers_the_same_instance() -> None:
    text = """
name: web
port: 8443
protocol: https
address: 10.1.2.3
endpoint_path: /api
version: "3"
tags: [blue, edge]
meta: {team: web}
weight: 5
priority: 2
ttl: 90s
checks:
  - http: https://10.1.2.3:8443/health
    method: HEAD
    status: [200, 301]
    tls_skip_verify: true
    body: ok
    interval: 1500ms
    timeout: 1s
    rise: 2
    fall: 3
    deregister_after: 10m
  - exec: [/usr/bin/check, --quick]
  - ttl: 30s
  - systemd: nginx.service
"""
    [instance] = load_text(text, "web.yaml", NODE)
    again = parse_registration(instance.registration_dict(), NODE, source=instance.source)
    assert again == instance


# -- hardening: names and values are clean, durations and checks bounded ---------

WEB = {"name": "web", "port": 80}


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "evil\n", "port": 80}, "name"),
        ({**WEB, "id": "web-1\n"}, "id"),
        ({**WEB, "node": NODE.node + "\n"}, "node"),
        ({**WEB, "protocol": "http\n"}, "protocol"),
        ({**WEB, "tags": ["blue\n"]}, "tags[0]"),
        ({**WEB, "meta": {"team\n": "web"}}, "meta"),
        ({**WEB, "meta": {"team": "web\n"}}, "meta.team"),
        ({**WEB, "version": "1.0\n"}, "version"),
        ({**WEB, "endpoint_path": "/x\r\n"}, "endpoint_path"),
        ({**WEB, "checks": [{"systemd": "nginx.service\n"}]}, "checks[0].systemd"),
        ({**WEB, "checks": [{"tcp": "127.0.0.1:80", "id": "c1\n"}]}, "checks[0].id"),
        ({**WEB, "checks": [{"tcp": "127.0.0.1:80", "name": "probe\x1b[2J"}]}, "checks[0].name"),
        ({**WEB, "checks": [{"exec": ["/bin/check", "--x\n"]}]}, "checks[0].exec[1]"),
        ({**WEB, "checks": [{"http": "http://127.0.0.1/", "headers": {"X-A": "b\r\nX-Injected: 1"}}]}, "checks[0].headers.X-A"),
        ({**WEB, "checks": [{"http": "http://127.0.0.1/", "body": "ok\x00"}]}, "checks[0].body"),
    ],
)
def test_a_control_character_in_any_registered_string_is_refused(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_registration(body, NODE)
    [problem] = info.value.problems
    assert problem.field == field and "holds a control character" in problem.message


def test_a_lone_surrogate_from_json_is_refused() -> None:
    body = json.loads('{"name": "web", "port": 80, "meta": {"note": "\\ud800"}, "tags": ["\\udfff"]}')
    with pytest.raises(ValidationError) as info:
        parse_registration(body, NODE)
    assert [(p.field, p.message) for p in info.value.problems] == [
        ("meta.note", "'\\ud800' holds a lone surrogate (not valid Unicode), U+D800, at position 0"),
        ("tags[0]", "'\\udfff' holds a lone surrogate (not valid Unicode), U+DFFF, at position 0"),
    ]


@pytest.mark.parametrize("pattern", [DNS_LABEL, TAG, INSTANCE_ID, PROTOCOL, META_KEY, SYSTEMD_UNIT, HTTP_HEADER])
def test_patterns_match_whole_strings_only(pattern: re.Pattern[str]) -> None:
    # Defence in depth behind the control-character check: `$` matches before a final newline.
    assert pattern.fullmatch("a1") and not pattern.fullmatch("a1\n")
    assert not pattern.pattern.endswith("$")


@pytest.mark.parametrize("text", ["9" * 400 + "s", "8761h", "525601m", "1e3s", "١٠s", "10s\n"])
def test_durations_are_finite_and_at_most_a_year(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
    assert parse_duration("8760h") == 365 * 24 * 3600


@pytest.mark.parametrize(
    "check,field,message",
    [
        ({"tcp": "127.0.0.1:80", "interval": "1ms"}, "interval", "1ms is shorter than the 1s minimum (limits.check_interval)"),
        ({"tcp": "127.0.0.1:80", "interval": "999ms"}, "interval", "999ms is shorter than the 1s minimum (limits.check_interval)"),
        ({"tcp": "127.0.0.1:80", "interval": "2s", "timeout": "3s"}, "timeout", "3s is longer than the interval (2s)"),
        ({"http": "http://127.0.0.1/", "timeout": "11s"}, "timeout",
         "11s is longer than the default interval (10s); set a longer interval"),
        ({"ttl": "500ms"}, "ttl", "500ms is shorter than the 1s minimum (limits.check_interval)"),
    ],
)
def test_checks_may_not_run_too_often_or_outlast_their_interval(check: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_registration({**WEB, "checks": [check]}, NODE)
    assert [(p.field, p.message) for p in info.value.problems] == [(f"checks[0].{field}", message)]


def test_check_timing_defaults_and_the_configured_floor() -> None:
    [tcp, ttl] = parse_registration({**WEB, "checks": [{"tcp": "127.0.0.1:80"}, {"ttl": "1s"}]}, NODE).checks
    assert (tcp.interval, tcp.timeout, ttl.ttl) == (10.0, 2.0, 1.0)
    fast = dataclasses.replace(NODE, min_check_interval=0.1)
    [check] = parse_registration({**WEB, "checks": [{"tcp": "127.0.0.1:80", "interval": "100ms", "timeout": "100ms"}]},
                                 fast).checks
    assert (check.interval, check.timeout) == (0.1, 0.1)


def test_a_short_interval_shortens_the_default_timeout() -> None:
    """`interval: 1s` alone is valid: the 2s default timeout shrinks to the interval."""
    [check] = parse_registration({**WEB, "checks": [{"tcp": "127.0.0.1:80", "interval": "1500ms"}]}, NODE).checks
    assert (check.interval, check.timeout) == (1.5, 1.5)


def test_extension_keys_hold_anchors_and_are_ignored() -> None:
    text = "x-check: &check {tcp: '127.0.0.1:80', interval: 5s}\nservices:\n  - {name: web, port: 80, checks: [*check]}\n"
    [web] = load_text(text, "x.yaml", NODE)
    assert web.checks[0].interval == 5.0
    [web] = load_text("x-base: &base {port: 80}\n<<: *base\nname: web\n", "x.yaml", NODE)
    assert web.port == 80
    with pytest.raises(ValidationError) as info:
        load_text("services: []\nchecks: []\n", "x.yaml", NODE)
    assert str(info.value) == "x.yaml:2: checks: a file holds one service mapping or `services: [...]`, not both"


def test_validate_cli_judges_by_the_daemons_limits_and_never_blocks(tmp_path: Path) -> None:
    fast = tmp_path / "fast.yaml"
    fast.write_text("name: web\nport: 80\nchecks:\n  - tcp: 127.0.0.1:80\n    interval: 2s\n    timeout: 1s\n")
    os.mkfifo(tmp_path / "fifo.yaml")
    config = tmp_path / "pilotfish.yaml"
    config.write_text("node: web1\nlimits: {file_size: 64}\n")

    def validate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "resolver.cli", "validate", "--quiet", *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    refused = validate(str(fast), str(tmp_path / "fifo.yaml"))
    assert refused.returncode == 1
    assert refused.stdout.splitlines() == [
        f"{tmp_path / 'fifo.yaml'}:-: (file): is a FIFO (named pipe), not a regular file; not read",
    ]
    small = validate("--config", str(config), str(fast))
    assert small.returncode == 1 and small.stdout.splitlines() == [
        f"{fast}:-: (file): is {fast.stat().st_size} bytes, over the 64 bytes limit (limits.file_size); not read"
    ]
    config.write_text("limits: {check_interval: 5s}\n")
    slow = validate("--config", str(config), str(fast))
    assert slow.returncode == 1 and slow.stdout.splitlines() == [
        f"{fast}:5: checks[0].interval: 2s is shorter than the 5s minimum (limits.check_interval)"
    ]
