"""Registration validation: every malformed file is refused with its own file:line: field: message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from registry.catalog import NodeDefaults
from registry.errors import ValidationError
from registry.model import CheckKind, Transport
from registry.schema import load_file, load_text, parse_duration, parse_registration

ROOT = Path(__file__).resolve().parent.parent
MALFORMED = ROOT / "tests" / "data" / "malformed"
EXAMPLES = ROOT / "examples" / "services.d"
DEFAULTS = NodeDefaults("host1", "10.0.0.5")

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
    ('35-not-utf8.yaml', '3: (file): not UTF-8 text: invalid start byte'),]


def test_corpus_is_complete() -> None:
    assert sorted(p.name for p in MALFORMED.iterdir()) == sorted(name for name, _ in EXPECTED)
    assert len(EXPECTED) >= 25
    assert len({message for _, message in EXPECTED}) == len(EXPECTED), "every message is distinct"


@pytest.mark.parametrize("name,expected", EXPECTED, ids=[name for name, _ in EXPECTED])
def test_malformed_file_is_rejected_with_its_message(name: str, expected: str) -> None:
    path = MALFORMED / name
    with pytest.raises(ValidationError) as info:
        load_file(path, DEFAULTS)
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
    names = set()
    for path in files:
        names.update(instance.name for instance in load_file(path, DEFAULTS))
    assert {"redis", "api", "postgresql"} <= names


def test_a_file_reports_every_problem_at_once() -> None:
    text = "services:\n  - name: Web\n    prot: 80\n  - name: api\n    port: 70000\n"
    with pytest.raises(ValidationError) as info:
        load_text(text, "multi.yaml", DEFAULTS)
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
    [instance] = load_text(text, "/etc/pilotfish/services.d/redis.yaml", DEFAULTS)
    assert instance.id == "redis-6379"
    assert instance.node == "host1" and instance.address == "10.0.0.5" and instance.address_is_node
    assert instance.url == "redis://10.0.0.5:6379"
    assert instance.transport is Transport.TCP
    assert instance.source == "file:/etc/pilotfish/services.d/redis.yaml"
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
    [instance] = load_text(f"name: {name}\n", "x.yaml", DEFAULTS)
    assert (instance.port, instance.protocol, instance.id) == (port, protocol, f"{name}-{port}")


def test_ipv6_address_url_is_bracketed() -> None:
    instance = parse_registration({"name": "web", "port": 80, "protocol": "http", "address": "::1", "endpoint_path": "/x"}, DEFAULTS)
    assert instance.url == "http://[::1]:80/x"
    assert not instance.address_is_node


def test_json_body_problems_have_no_line() -> None:
    with pytest.raises(ValidationError) as info:
        parse_registration({"name": "web", "port": "80", "extra": 1}, DEFAULTS)
    assert sorted(str(p) for p in info.value.problems) == [
        "<request>:-: extra: unknown key",
        "<request>:-: port: must be an integer, not a string",
    ]
    with pytest.raises(ValidationError):
        parse_registration(["not", "a", "mapping"], DEFAULTS)


def test_empty_file_registers_nothing() -> None:
    assert load_text("# nothing here yet\n", "empty.yaml", DEFAULTS) == []


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
    [instance] = load_text(text, "web.yaml", DEFAULTS)
    again = parse_registration(instance.registration_dict(), DEFAULTS, source=instance.source)
    assert again == instance
