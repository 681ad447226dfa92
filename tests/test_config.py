"""resolver/config.py: defaults, path resolution, and refusals that name file, line and key."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from registry.endpoints import Endpoint, parse_address
from registry.model import ConflictType
from registry.store import Retention
from resolver.config import (
    ConfigError,
    HttpSettings,
    default_address,
    load_config,
    restart_only_changes,
    with_running_values,
)
from resolver.dns.answers import BareNames


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "pilotfish.yaml"
    path.write_text(text)
    return str(path)


def test_embedded_default_matches_the_design(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.source is None
    assert config.domain == "internal"
    assert config.services_dir == str(tmp_path / "services.d")
    assert config.state_dir == str(tmp_path / "state")
    assert config.dns.listen == (Endpoint("127.0.0.1", 8600),) and config.dns.ttl == 5.0
    assert config.http.listen == Endpoint("127.0.0.1", 8500) and config.http.token is None
    assert config.cluster.datacenter == "dc1"
    assert config.node and config.node == config.node.lower()
    ipaddress.IPv4Address(config.address)


def test_default_address_is_a_non_loopback_ipv4_when_there_is_one() -> None:
    address = ipaddress.IPv4Address(default_address())
    assert not address.is_loopback or str(address) == "127.0.0.1"


def test_empty_file_is_the_default_with_paths_beside_it(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.services_dir == str(tmp_path / "services.d")
    assert config.source == str(tmp_path / "pilotfish.yaml")


def test_every_key(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
node: web1
address: 10.1.2.3
domain: Consul.
services_dir: drop-ins
state_dir: /var/lib/pilotfish
dns:
  listen: ["127.0.0.1:0", "[::1]:5353"]
  ttl: 500ms
  recursors: [1.1.1.1, "9.9.9.9:5353"]
  answer_warning: true
http: {listen: "0.0.0.0:8500", token: s3cret}
conflicts:
  - {a: redis-server, b: keydb, type: port, reason: "both bind 6379"}
node_health: {cpu: 80, memory: 85.5, disk: 95}
cluster: {etcd: ["http://10.0.0.1:2379"], prefix: /fleet/, lease_ttl: 1m, datacenter: eu-west}
"""))
    assert (config.node, config.address, config.domain) == ("web1", "10.1.2.3", "consul")
    assert config.services_dir == str(tmp_path / "drop-ins")
    assert config.state_dir == "/var/lib/pilotfish"
    assert [str(e) for e in config.dns.listen] == ["127.0.0.1:0", "[::1]:5353"]
    assert config.dns.ttl == 0.5 and config.dns.answer_warning is True
    assert [str(e) for e in config.dns.recursors] == ["1.1.1.1:53", "9.9.9.9:5353"]
    assert config.http.token == "s3cret"
    (rule,) = config.conflicts
    assert (rule.a, rule.b, rule.type, rule.source) == ("keydb", "redis-server", ConflictType.PORT, "config")
    assert (config.node_health.cpu, config.node_health.memory) == (80.0, 85.5)
    assert config.cluster.prefix == "/fleet/" and config.cluster.etcd == (Endpoint("10.0.0.1", 2379),)
    assert config.cluster.datacenter == "eu-west" and config.cluster.lease_ttl == 60 and config.cluster.enabled
    assert config.dns.prefer_local is False and load_config(None).cluster.lease_ttl == 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("domian: x\n", ":1: domian: unknown key (did you mean 'domain'?)"),
        ("dns:\n  listne: []\n", ":2: dns.listne: unknown key (did you mean 'listen'?)"),
        ("dns: {listen: ['127.0.0.1']}\n", ":1: dns.listen: '127.0.0.1' is not host:port"),
        ("dns: {listen: ['localhost:53']}\n", ":1: dns.listen: 'localhost' in 'localhost:53' is not an IP address"),
        ("dns:\n  listen:\n    - 127.0.0.1:1\n    - 127.0.0.1:70000\n", ":4: dns.listen[1]: port '70000'"),
        ("http: {listen: 8500}\n", ":1: http.listen: must be one host:port string, not an integer"),
        ("dns:\n  ttl: 5\n", ":2: dns.ttl: must be a duration string, not an integer (add a unit: 10s, 500ms, 5m)"),
        ("dns:\n  ttl: 5 seconds\n", ":2: dns.ttl: '5 seconds' is not a duration"),
        ("dns: {answer_warning: 'yes'}\n", ":1: dns.answer_warning: must be true or false, not a string"),
        ("node: Web_1\n", ":1: node: 'Web_1' is not a valid DNS name"),
        ("cluster: {datacenter: DC 1}\n", ":1: cluster.datacenter: 'DC 1' is not a valid DNS name"),
        ("address: 10.0.0\n", ":1: address: '10.0.0' is not an IP address"),
        ("node_health: {cpu: 120}\n", ":1: node_health.cpu: must be a percentage between 0 and 100, not 120"),
        ("conflicts:\n  - {a: x, b: y, type: kind}\n", ":2: conflicts[0].type: 'kind' must be one of port, dependency, resource"),
        ("conflicts:\n  - {a: x, type: port}\n", ":2: conflicts[0]: missing key 'b'"),
        ("dns: [1]\n", ":1: dns: must be a mapping, not a list"),
        ("http: {listen: '0.0.0.0:8500'}\n", ":1: http.listen: a non-loopback HTTP listen address needs http.token"),
        ("- 1\n", ":1: (top): the config file must be a mapping of keys"),
        ("dns: {listen: [\n", ":1: yaml: expected the node content"),
        ("domain: a\ndomain: b\n", ":2: domain: duplicate key"),
        ("limits: {file_size: 1MB}\n", ":1: limits.file_size: '1MB' is not a size (plain bytes, or with a unit: 512KiB, 1MiB)"),
        ("limits: {file_size: 0}\n", ":1: limits.file_size: 0 must be between 1 byte and 64MiB"),
        ("limits:\n  check_interval: 1ms\n", ":2: limits.check_interval: must be at least 1s"),
        ("node: \"web\\n\"\n", ":1: node: 'web\\n' holds a control character, U+000A, at position 3"),
        ("domain: !!timestamp x\n", ":1: domain: 'x' is not a valid !!timestamp"),
        ("dns: {ttl: 8761h}\n", ":1: dns.ttl: '8761h' is longer than the limit of one year (8760h)"),
        # The DNS hardening keys (issue 9).
        ("dns:\n  recursion_allow: [10.0.0.1/8]\n",
         ":2: dns.recursion_allow: '10.0.0.1/8' has host bits set (did you mean '10.0.0.0/8'?)"),
        ("dns:\n  recursion_allow:\n    - 10.0.0.0/8\n    - everyone\n",
         ":4: dns.recursion_allow[1]: 'everyone' is not a network such as 10.0.0.0/8 or fd00::/8"),
        ("dns: {recursion_allow: 10}\n", ":1: dns.recursion_allow: must be a list of strings, not an integer"),
        ("dns: {rate_limit: 0}\n", ":1: dns.rate_limit: must be a number >= 0.001, not 0"),
        ("dns: {rate_limit: '20/s'}\n", ":1: dns.rate_limit: must be a number >= 0.001, not a string"),
        ("dns: {rate_limit: .inf}\n", ":1: dns.rate_limit: must be a number >= 0.001, not inf"),
        ("dns: {rate_limit: .nan}\n", ":1: dns.rate_limit: must be a number >= 0.001, not nan"),
        ("dns: {rate_limit: true}\n", ":1: dns.rate_limit: must be a number >= 0.001, not a bool"),
        ("dns: {tcp_connections: 0}\n", ":1: dns.tcp_connections: must be an integer >= 1, not 0"),
        ("dns: {tcp_connections: 10.5}\n", ":1: dns.tcp_connections: must be an integer >= 1, not 10.5"),
        ("dns: {tcp_conections: 10}\n", ":1: dns.tcp_conections: unknown key (did you mean 'tcp_connections'?)"),
        # Fleet mode (issue 12).
        ("cluster: {lease_ttl: 10}\n", ":1: cluster.lease_ttl: must be a duration string, not an integer (add a unit"),
        ("cluster: {lease_ttl: 1500ms}\n", ":1: cluster.lease_ttl: must be a whole number of seconds"),
        ("cluster: {lease_ttl: 500ms}\n", ":1: cluster.lease_ttl: must be between 1s and 3600s"),
        ("cluster: {lease_ttl: 2h}\n", ":1: cluster.lease_ttl: must be between 1s and 3600s"),
        ("cluster: {prefix: pilotfish}\n", ":1: cluster.prefix: cluster prefix 'pilotfish' must start and end with '/'"),
        ("cluster: {prefix: '/a//b/'}\n", ":1: cluster.prefix: cluster prefix '/a//b/' must start and end with '/'"),
        ("cluster: {prefix: ''}\n", ":1: cluster.prefix: must be a non-empty string"),
        ("cluster: {etcd: ['https://10.0.0.1:2379']}\n", ":1: cluster.etcd: 'https://10.0.0.1:2379': https is not supported"),
        ("cluster: {lease: 10s}\n", ":1: cluster.lease: unknown key (did you mean 'lease_ttl'?)"),
        ("dns: {prefer_local: 1}\n", ":1: dns.prefer_local: must be true or false, not an integer"),
    ],
)
def test_refusals_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}{expected}" in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "nod: a\ndns: {ttl: 1}\nhttp: {tokn: x}\n"))
    assert [(p.line, p.field) for p in caught.value.problems] == [(1, "nod"), (2, "dns.ttl"), (3, "http.tokn")]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_config(str(tmp_path / "absent.yaml"))


def test_dns_hardening_keys(tmp_path: Path) -> None:
    defaults = load_config(write(tmp_path, ""))
    assert (defaults.dns.recursion_allow, defaults.dns.rate_limit, defaults.dns.tcp_connections) == ((), None, 1000)
    config = load_config(write(tmp_path, """\
dns:
  recursion_allow: [10.0.0.0/8, 192.0.2.7, "fd00::/8"]
  rate_limit: 20
  tcp_connections: 64
"""))
    assert config.dns.recursion_allow == ("10.0.0.0/8", "192.0.2.7/32", "fd00::/8")
    assert config.dns.rate_limit == 20.0 and config.dns.tcp_connections == 64
    assert load_config(write(tmp_path, "dns: {rate_limit: 2.5, recursion_allow: 10.1.0.0/16}\n")).dns.rate_limit == 2.5


@pytest.mark.parametrize(
    ("text", "bare"),
    [("", BareNames.ALL), ("dns: {bare_names: srv}\n", BareNames.SRV), ("dns: {bare_names: all}\n", BareNames.ALL),
     # YAML reads a bare `off` as false: it means off all the same.
     ("dns: {bare_names: off}\n", BareNames.OFF), ("dns: {bare_names: 'off'}\n", BareNames.OFF)],
)
def test_dns_bare_names(tmp_path: Path, text: str, bare: BareNames) -> None:
    assert load_config(write(tmp_path, text)).dns.bare_names is bare


def test_dns_bare_names_refusals(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "dns: {bare_names: none}\n"))
    assert str(caught.value).endswith(":1: dns.bare_names: 'none' must be one of all, srv, off")


@pytest.mark.parametrize("text,size", [("", 2**20), ("limits: {file_size: 512KiB}\n", 512 * 1024), ("limits: {file_size: 4096}\n", 4096)])
def test_limits_file_size(tmp_path: Path, text: str, size: int) -> None:
    assert load_config(write(tmp_path, text)).limits.file_size == size


def test_limits_check_interval(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).limits.check_interval == 1.0
    assert load_config(write(tmp_path, "limits: {check_interval: 5s}\n")).limits.check_interval == 5.0


def test_a_config_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pilotfish.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is a FIFO"):
        load_config(str(fifo))


def test_http_limits_and_database_size(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
http: {max_connections: 64, header_timeout: 2s, body_timeout: 1m}
limits: {database_size: 256MiB}
"""))
    assert (config.http.max_connections, config.http.header_timeout, config.http.body_timeout) == (64, 2.0, 60.0)
    assert config.limits.database_size == 256 << 20
    default = load_config(write(tmp_path, ""))
    assert (default.http.max_connections, default.http.header_timeout, default.http.body_timeout) == (512, 10.0, 30.0)
    assert default.limits.database_size is None


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("http: {max_connections: 0}", "http.max_connections", "0 is outside 1..1000000"),
        ("http: {max_connections: many}", "http.max_connections", "must be an integer, not a string"),
        ("http: {header_timeout: 10}", "http.header_timeout", "duration string"),
        ("http: {body_timeout: 2h}", "http.body_timeout", "between 0.1s and 3600s"),
        ("limits: {database_size: 1kB}", "limits.database_size", "is not a size"),
        ("limits: {database_size: 4KiB}", "limits.database_size", "must be at least 64KiB"),
        ("limits: {database_sise: 1GiB}", "limits.database_sise", "did you mean 'database_size'"),
    ],
)
def test_http_limits_and_database_size_refusals(tmp_path: Path, text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(write(tmp_path, text + "\n"))
    [problem] = refused.value.problems
    assert problem.field == key and message in problem.message and problem.line == 1


def test_event_retention_reads_days_and_defaults_to_the_design(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "{}\n")).events == Retention(max_age=30 * 86400.0, max_rows=100_000)
    config = load_config(write(tmp_path, "events: {max_age: 7d, max_rows: 5000}\n"))
    assert config.events == Retention(max_age=7 * 86400.0, max_rows=5000)
    assert load_config(write(tmp_path, "events: {max_age: 12h}\n")).events.max_age == 43200.0


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("events: {max_age: 30}", "events.max_age", "duration string"),
        ("events: {max_age: 10s}", "events.max_age", "between 60s and 3650d"),
        ("events: {max_age: 4000d}", "events.max_age", "between 60s and 3650d"),
        ("events: {max_rows: 10}", "events.max_rows", "10 is outside 100..100000000"),
        ("events: {max_rows: 1e5}", "events.max_rows", "must be an integer"),
        ("events: {max_row: 100}", "events.max_row", "did you mean 'max_rows'"),
    ],
)
def test_event_retention_refusals(tmp_path: Path, text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(write(tmp_path, text + "\n"))
    [problem] = refused.value.problems
    assert problem.field == key and message in problem.message and problem.line == 1


def test_a_reload_keeps_the_running_value_of_every_restart_only_key(tmp_path: Path) -> None:
    old = load_config(write(tmp_path, "node: a\ndns: {ttl: 5s}\nhttp: {listen: '127.0.0.1:8500', token: one}\n"))
    new = load_config(write(tmp_path, "node: b\ndns: {ttl: 1s}\nhttp: {listen: '127.0.0.1:9500', token: two}\n"
                                      "cluster: {etcd: ['10.0.0.1:2379']}\n"))
    assert restart_only_changes(old, new) == ["node", "dns", "http.listen"]
    live = with_running_values(old, new)
    assert restart_only_changes(old, live) == []
    assert (live.node, live.dns, live.http.listen) == (old.node, old.dns, old.http.listen)
    # Everything else takes the new value; the daemon leaves the fleet and joins again on `cluster`.
    assert live.http.token == "two" and live.cluster == new.cluster


@pytest.mark.parametrize(
    ("listen", "token", "open_to_writes"),
    [("127.0.0.1:8500", None, False), ("[::1]:8500", None, False), ("10.0.0.1:8500", "t", False), ("10.0.0.1:8500", None, True)],
)
def test_writes_are_open_only_beyond_loopback_without_a_token(listen: str, token: str | None, open_to_writes: bool) -> None:
    assert HttpSettings(parse_address(listen), token).writes_open is open_to_writes
