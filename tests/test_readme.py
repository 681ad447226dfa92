"""README.md stays true: CI runs its test command, and its schema example validates."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import NODE
from registry.schema import load_text

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ")]


def test_ci_runs_exactly_the_readme_test_command_then_the_type_checker() -> None:
    run, test = quick_start_commands()
    assert run.endswith("pilotfish serve --config examples/pilotfish.yaml")
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci_lines == [test, "python3 -m mypy --strict registry resolver tests"]


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
