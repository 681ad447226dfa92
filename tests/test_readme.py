"""README.md stays true: CI runs its test command, and its schema example validates."""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import consul
import pytest
import yaml

from conftest import NODE, REPO, bound_socket, wait_for
from consulkit import PrometheusConsulSD
from daemonkit import DaemonFactory
from registry.cluster.keys import config_key, conflict_key, instance_key, node_key
from registry.schema import load_text
from registry.transitions import transitions_dict
from resolver.cli import build_parser
from resolver.config import SECTION_KEYS, TOP_KEYS, load_config
from resolver.http.openapi import OPERATIONS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ")]


def test_ci_runs_exactly_the_readme_test_command_then_the_type_checker() -> None:
    run, test = quick_start_commands()
    assert run.endswith("pilotfish serve --config examples/pilotfish.yaml")
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    *setup, command, types = ci_lines
    assert (command, types) == (test, "python3 -m mypy --strict registry resolver tests")
    # Before it only what a test would otherwise skip for (Debian's chromium and dig), never fatal.
    assert setup == ['.ci/install-system-packages || echo "chromium or dig not installed: the browser and dig tests will skip" >&2']


def test_schema_example_in_readme_is_a_valid_registration() -> None:
    section = README.split("## Registrations (YAML schema)", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^    name: redis.*?(?=\n\S)", section, re.S | re.M)
    assert block is not None
    text = "\n".join(line[4:] for line in block.group(0).splitlines())
    [instance] = load_text(text, "README.md", NODE)
    assert instance.name == "redis" and len(instance.checks) == 5


def test_merge_key_example_in_readme_registers_two_instances() -> None:
    section = README.split("## Registrations (YAML schema)", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^    x-checked: .*?(?=\n\S)", section, re.S | re.M)
    assert block is not None
    text = "\n".join(line[4:] for line in block.group(0).splitlines())
    web, canary = load_text(text, "README.md", NODE)
    assert (web.id, canary.id, canary.tags) == ("web-8080", "web-canary", ("canary",))
    assert web.checks[0].interval == canary.checks[0].interval == 5.0


def consul_section() -> str:
    return README.split("## Consul compatibility", 1)[1].split("\n## ", 1)[0]


def fenced(section: str, language: str) -> str:
    match = re.search(rf"^```{language}\n(.*?)^```", section, re.S | re.M)
    assert match is not None, f"no {language} block"
    return match.group(1)


README_WEB = """\
services:
  - {name: web, id: web-1, port: 8080}
  - {name: web, id: web-2, port: 8081, address: 10.0.0.7}
  - {name: web, id: web-down, port: 8082, checks: [{tcp: "127.0.0.1:1", interval: 1s, timeout: 1s}]}
"""


def test_consul_prometheus_example_discovers_the_passing_instances(start_daemon: DaemonFactory) -> None:
    """The README's consul_sd_configs block, run as Prometheus would: its requests, its labels, its relabelling."""
    daemon = start_daemon(files={"web.yaml": README_WEB})
    [job] = yaml.safe_load(fenced(consul_section(), "yaml"))["scrape_configs"]
    [sd_config] = job["consul_sd_configs"]
    assert sd_config["server"] == "127.0.0.1:8500"  # the default listen address
    sd = PrometheusConsulSD(daemon.bound["http"][0], services=tuple(sd_config.get("services", ())),
                            tags=tuple(sd_config.get("tags", ())))
    assert sd.datacenter() == "dc1"
    targets = []
    for name in sd.watched(sd.catalog_services().body):
        targets.extend(sd.targets(sd.health_service(name)))
    for rule in job["relabel_configs"]:
        assert rule["action"] == "keep"
        [label] = rule["source_labels"]
        targets = [t for t in targets if re.fullmatch(rule["regex"], t[label])]
    assert sorted(t["__address__"] for t in targets) == ["10.0.0.7:8081", "127.0.0.1:8080"]


def test_consul_py_consul_example_runs(start_daemon: DaemonFactory, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    daemon = start_daemon(files={"web.yaml": README_WEB})
    monkeypatch.setenv("CONSUL_HTTP_ADDR", daemon.bound["http"][0])
    namespace: dict[str, object] = {}
    try:
        exec(compile(fenced(consul_section(), "python"), "README.md", "exec"), namespace)
    finally:
        client = namespace.get("c")
        if isinstance(client, consul.Consul):
            client.http.session.close()  # py-consul's close() leaves its requests session open
    assert sorted(capsys.readouterr().out.splitlines()) == ["web-1 127.0.0.1:8080", "web-2 10.0.0.7:8081"]


def maintenance_section() -> str:
    return README.split("## Maintenance", 1)[1].split("\n## ", 1)[0]


def markdown_rows(text: str, header: str) -> list[list[str]]:
    """The rows of the markdown table whose header row starts with `header`, cells stripped."""
    lines = text.split(header, 1)[1].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_state_table_in_readme_is_the_code_s() -> None:
    rows = markdown_rows(maintenance_section(), "| from | to |")
    assert {state: to.split(", ") for state, to in rows} == transitions_dict()


def test_the_maintenance_timeline_in_readme_runs_as_shown(start_daemon: DaemonFactory) -> None:
    section = maintenance_section()
    [command] = [line.strip()[2:] for line in section.splitlines() if line.strip().startswith("$ pilotfish maint plan")]
    expected = [(row[1], row[2], row[3]) for row in markdown_rows(section, "| after | state | trigger |")]
    with bound_socket() as sock:
        port = sock.getsockname()[1]
        daemon = start_daemon(files={"db.yaml": f"name: db\nport: {port}\nchecks:\n"
                                                f"  - tcp: 127.0.0.1:{port}\n    interval: 1s\n    rise: 2\n"})
        wait_for(lambda: daemon.srv_ports("_db._tcp") == [port], 10, "db in DNS")
        args = shlex.split(command)[1:]
        done = subprocess.run([sys.executable, "-m", "resolver.cli", "--http", daemon.http_url, *args],
                              capture_output=True, text=True, cwd=REPO, timeout=30)
        assert done.returncode == 0, done.stderr
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not seen or seen[-1] != ("online", "answered") or len(seen) == 1):
            # The state and DNS are two reads: a sample is kept only when the state was the
            # same on both sides of the DNS lookup, or a change between them (loaded
            # machine) would pair the new state with the old answer.
            state = str(daemon.get("/v1/node")["state"])
            answered = "answered" if daemon.srv_ports("_db._tcp") == [port] else "empty"
            now = (state, answered)
            if str(daemon.get("/v1/node")["state"]) == state and (not seen or seen[-1] != now):
                seen.append(now)
            time.sleep(0.05)
    events = [e["detail"] for e in reversed(daemon.get("/v1/events?kind=node")["events"])]
    triggers = [""] + [e["trigger"] for e in events]
    assert [(state, trigger, answered) for (state, answered), trigger in zip(seen, triggers)] == expected
    assert [e["to"] for e in events] == [state for state, _ in seen[1:]]


def fleet_section() -> str:
    return README.split("## Fleet mode", 1)[1].split("\n## ", 1)[0]


def test_fleet_walkthrough_config_loads_and_its_keys_table_is_the_layout(tmp_path: Path) -> None:
    lines = fleet_section().split("$ cat a.yaml", 1)[1].splitlines()[1:]
    config_text = "\n".join(line[4:] for line in lines[: next(i for i, line in enumerate(lines) if "$ " in line)])
    (tmp_path / "a.yaml").write_text(config_text + "\n")
    config = load_config(str(tmp_path / "a.yaml"))
    assert (config.node, config.address, config.cluster.lease_ttl, config.cluster.enabled) == ("a", "127.0.0.51", 5, True)
    table = re.findall(r"^\| `(<prefix>[^`]+)` \|", fleet_section(), re.MULTILINE)
    built = [node_key("<prefix>", "n"), instance_key("<prefix>", "n", "i"), conflict_key("<prefix>", "a", "b"),
             config_key("<prefix>", "k"), config_key("<prefix>", "k", "n")]
    spelled = [key.replace("<node>", "n").replace("<id>", "i").replace("<a>+<b>", "a+b").replace("<key>", "k")
               for key in table]
    assert spelled == built


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_configuration_reference_lists_every_key_with_its_default(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference block is what `pilotfish serve` without --config runs on, key for key."""
    reference = yaml.safe_load(fenced(section("Configuration"), "yaml"))
    assert list(reference) == list(TOP_KEYS)
    for name, keys in SECTION_KEYS.items():
        assert list(reference[name]) == list(keys), name
    # node and address are shown as what the default is made of (<short hostname>);
    # every other value is the default itself, paths relative to where it is read.
    del reference["node"], reference["address"]
    (tmp_path / "reference.yaml").write_text(yaml.safe_dump(reference))
    monkeypatch.chdir(tmp_path)
    assert dataclasses.replace(load_config(str(tmp_path / "reference.yaml")), source=None) == load_config(None)


def documented_routes(text: str) -> set[tuple[str, str]]:
    """Every `METHOD /path` (or `GET/PUT /path`) in backticks, path parameters as {}."""
    found = set()
    for methods, path in re.findall(r"`((?:GET|PUT|POST|DELETE)(?:/(?:GET|PUT|POST|DELETE))*) (/[^`\s]*)`", text):
        for method in methods.split("/"):
            found.add((method, re.sub(r"\{[^}]*\}|<[^>]*>", "{}", path)))
    return found


def test_the_http_api_and_consul_tables_list_every_route_the_app_serves() -> None:
    served = {(method, re.sub(r"\{[^}]*\}", "{}", path)) for method, path in OPERATIONS}
    assert documented_routes(section("HTTP API") + section("Consul compatibility")) == served


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next((dict(action.choices) for action in parser._actions
                 if isinstance(action, argparse._SubParsersAction)), {})


def test_the_cli_section_shows_every_verb_and_option_of_pilotfish_help() -> None:
    text = section("CLI")
    missing = []
    for verb, parser in subcommands(build_parser()).items():
        # A verb's words (conflicts add, maint plan) are shown on its lines: `pilotfish maint
        # ls | change ID | cancel ID`, or in prose as `maint done`.
        lines = "\n".join(line for line in text.splitlines() if f"pilotfish {verb}" in line or f"`{verb} " in line)
        actions = subcommands(parser) or {"": parser}
        for action in parser._actions:
            if action.choices and not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                actions.update({str(choice): parser for choice in action.choices})
        if not lines:
            missing.append(f"pilotfish {verb}")
        for name, sub in actions.items():
            if name and not re.search(rf"\b{name}\b", lines):
                missing.append(f"pilotfish {verb} {name}")
            for action in sub._actions:
                flags = [flag for flag in action.option_strings if flag not in ("-h", "--help")]
                if flags and not any(re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) for flag in flags):
                    missing.append(f"pilotfish {verb} {name} {flags[-1]}")
    assert missing == []
