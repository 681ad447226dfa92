"""Every CLI verb against a live daemon (started by `pilotfish serve` in conftest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clientkit import html_server
from conftest import wait_for
from daemonkit import Daemon, DaemonFactory
from resolver.cli import main
from resolver.cli_common import EXIT_REFUSED, EXIT_UNREACHABLE


class Cli:
    """Runs `pilotfish VERB ...` in-process against one daemon; returns (exit code, stdout, stderr)."""

    def __init__(self, daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
        self.daemon = daemon
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        options = ["--http", self.daemon.http_url] + (["--token", self.daemon.token] if self.daemon.token else [])
        code = main([*options, *argv])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(start_daemon: DaemonFactory, capsys: pytest.CaptureFixture[str]) -> Cli:
    daemon = start_daemon(token="t0ken", files={"redis.yaml": "name: redis\nport: 6379\ntags: [primary]\n"})
    return Cli(daemon, capsys)


def test_status_shows_ports_counts_and_rejected_files(cli: Cli) -> None:
    (cli.daemon.services_dir / "bad.yaml").write_text("name: web\nport: high\n")
    wait_for(lambda: cli.daemon.status()["file_errors"], what="the rejected file")
    code, out, _ = cli("status")
    assert code == 0
    assert "node testnode (127.0.0.1) online" in out
    assert cli.daemon.bound["http"][0] in out and cli.daemon.bound["dns_udp"][0] in out
    assert "rejected 1" in out and "bad.yaml:2: port:" in out
    assert cli.json("status")["bound"] == cli.daemon.bound


def test_ls_and_lookup(cli: Cli) -> None:
    code, out, _ = cli("ls")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NAME", "ID", "NODE", "URL", "STATUS", "TAGS", "SOURCE"]
    assert row.split()[:6] == ["redis", "redis-6379", "testnode", "redis://127.0.0.1:6379", "passing", "primary"]
    assert list(cli.json("ls")) == ["redis"]
    assert [i["id"] for i in cli.json("lookup", "redis", "--tag", "primary")] == ["redis-6379"]
    assert cli("lookup", "redis", "--url")[1].strip() == "redis://127.0.0.1:6379"
    code, _, err = cli("lookup", "nothing")
    assert code == EXIT_REFUSED and "not found" in err


def test_register_and_deregister_a_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "workers.yaml"
    path.write_text("services:\n  - {name: worker, id: w1, port: 9001}\n  - {name: worker, id: w2, port: 9002}\n")
    code, out, _ = cli("register", str(path))
    assert code == 0 and "w1" in out and "w2" in out
    assert sorted(cli.daemon.srv_ports("_worker._tcp")) == [9001, 9002]
    code, out, _ = cli("deregister", "w1")
    assert code == 0 and out.strip() == "deregistered w1 (worker)"
    assert cli.daemon.srv_ports("_worker._tcp") == [9002]
    code, _, err = cli("deregister", "redis-6379")
    assert code == EXIT_REFUSED and "redis.yaml" in err, "file instances are read-only through the API"


def test_register_reads_the_file_as_a_drop_in_does(cli: Cli, tmp_path: Path) -> None:
    # `version: 1.10` is the text "1.10" in services.d (and for `validate`); register must agree.
    path = tmp_path / "api.yaml"
    path.write_text("name: api\nport: 9100\nversion: 1.10\n")
    assert main(["validate", "-q", str(path)]) == 0
    code, _, err = cli("register", str(path))
    assert code == 0, err
    assert [i["version"] for i in cli.daemon.get("/v1/services/api")] == ["1.10"]
    listed = tmp_path / "listed.yaml"
    listed.write_text("services:\n  - {name: api, id: api-2, port: 9101, version: 2.0}\n")
    assert cli("register", str(listed))[0] == 0
    assert cli.daemon.get("/v1/services/api?version=2.0")[0]["id"] == "api-2"


def test_register_refuses_a_fifo_or_a_device_instead_of_waiting_on_it(cli: Cli, tmp_path: Path) -> None:
    fifo = tmp_path / "services.yaml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        done = subprocess.run([sys.executable, "-m", "resolver.cli", "--http", cli.daemon.http_url, "register", str(path)],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode != 0 and "not a regular file" in done.stderr, done.stderr


def test_register_refused_on_conflict_prints_the_reason(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text("name: redis-stack-server\nport: 6390\n")
    cli.daemon.write("POST", "/v1/services", {"name": "redis-server", "port": 6400})
    code, out, err = cli("register", str(path), "--json")
    assert code == EXIT_REFUSED and "HTTP 409" in err
    assert json.loads(out)["error"]["code"]


def test_register_refused_midway_shows_what_was_registered(cli: Cli, tmp_path: Path) -> None:
    # The API takes one service per request: the first stays registered, and the user must see it.
    path = tmp_path / "pair.yaml"
    path.write_text("services:\n  - {name: worker, id: w1, port: 9001}\n  - {name: other, id: o1, port: 9001}\n")
    code, out, err = cli("register", str(path))
    assert code == EXIT_REFUSED and "HTTP 409" in err
    assert "w1" in out and "o1" not in out
    assert cli.daemon.srv_ports("_worker._tcp") == [9001]


def test_conflicts_list_add_rm(cli: Cli) -> None:
    before = len(cli.json("conflicts", "list")["rules"])
    code, out, _ = cli("conflicts", "add", "memcached", "redis", "--type", "resource", "--reason", "one cache per host")
    assert code == 0 and "memcached" in out and "one cache per host" in out
    rules = cli.json("conflicts", "list")["rules"]
    assert len(rules) == before + 1
    added = next(r for r in rules if r["a"] == "memcached")
    code, out, _ = cli("conflicts", "rm", str(added["id"]))
    assert code == 0 and out.strip() == f"deleted rule {added['id']}"
    code, out, _ = cli("conflicts", "list")
    assert "memcached" not in out and out.splitlines()[0].split() == ["ID", "A", "B", "TYPE", "SOURCE", "REASON"]


def test_maint_on_and_off(cli: Cli) -> None:
    code, out, _ = cli("maint", "on", "--reason", "kernel upgrade")
    assert code == 0 and out.strip() == "node testnode: maintenance (kernel upgrade)"
    assert cli.daemon.srv_ports("_redis._tcp") == []
    code, out, _ = cli("maint", "off")
    assert code == 0 and "online" in out
    assert cli.daemon.srv_ports("_redis._tcp") == [6379]


def test_maint_refuses_an_option_its_action_would_ignore(cli: Cli) -> None:
    """`maint on --start +1h --end +2h` used to put the node in maintenance at once,
    the times dropped: an operator who meant `plan` drained the node an hour early."""
    for argv, flag in [
        (("maint", "on", "--start", "+1h", "--end", "+2h"), "--start"),
        (("maint", "drain", "--start", "+1h", "--end", "+2h"), "--start"),
        (("maint", "on", "--timeout", "10m"), "--timeout"),
        (("maint", "off", "--reason", "done"), "--reason"),
        (("maint", "cancel", "1", "--end", "+1h"), "--end"),
        (("maint", "change", "1", "--instance", "redis-6379", "--end", "+1h"), "--instance"),
    ]:
        code, _, err = cli(*argv)
        assert code == 2 and f"takes no {flag}" in err, (argv, err)
    assert cli.daemon.get("/v1/node")["state"] == "online" and cli.daemon.get("/v1/maintenance")["windows"] == []
    assert cli.daemon.srv_ports("_redis._tcp") == [6379]


def test_config_get_and_set(cli: Cli) -> None:
    code, out, _ = cli("config", "set", "pool_size", "30", "--type", "int")
    assert code == 0 and out.strip() == "pool_size = 30 (int, global)"
    assert cli("config", "set", "pool_size", "40", "--type", "int", "--node", "testnode")[0] == 0
    assert cli.json("config", "get", "pool_size") == {"key": "pool_size", "value": 30, "value_type": "int", "scope": "global"}
    assert cli("config", "get", "pool_size", "--node", "testnode")[1].strip() == "pool_size = 40 (int, node)"
    assert "pool_size = 40 (int, node)" in cli("config", "get")[1]
    code, _, err = cli("config", "set", "pool_size", "lots", "--type", "int")
    assert code == EXIT_REFUSED and "HTTP 400" in err


def test_config_set_without_key_or_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Refused before any request: no daemon is needed to see the mistake.
    for argv in (["config", "set"], ["config", "set", "pool_size"]):
        assert main(["--http", "http://127.0.0.1:9", *argv]) == 2, argv
        assert "config set needs KEY VALUE" in capsys.readouterr().err


def test_writes_without_the_token_are_refused(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--http", cli.daemon.http_url, "deregister", "anything"])
    assert code == EXIT_REFUSED and "HTTP 401" in capsys.readouterr().err


def test_no_daemon_is_exit_3(capsys: pytest.CaptureFixture[str], daemon: Daemon) -> None:
    url = daemon.http_url
    assert daemon.stop() == 0
    assert main(["status", "--http", url]) == EXIT_UNREACHABLE
    assert "no pilotfish daemon" in capsys.readouterr().err


def test_a_server_that_is_not_pilotfish_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    # `--http` pointed at some other web server that answers 200 with HTML: no traceback.
    with html_server() as url:
        assert main(["status", "--http", url]) == EXIT_UNREACHABLE
        assert "not as a pilotfish daemon" in capsys.readouterr().err


def test_a_malformed_daemon_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Refused by the client library before any request (urllib used to raise a traceback here).
    assert main(["status", "--http", "localhost:8500"]) == 2
    assert "the scheme must be http or https" in capsys.readouterr().err
