"""The README's client library examples run as written, against a real daemon.

Each ```python block of the "Client library" section runs in a fresh interpreter
with PILOTFISH_HTTP and PILOTFISH_DNS pointing at a daemon that serves what the
examples look up; a `# -> text` comment is the line its statement prints.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from daemonkit import DaemonFactory

SECTION = (REPO / "README.md").read_text().split("## Client library", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"```python\n(.*?)```", SECTION, re.S)
FILES = {
    "api.yaml": "services:\n  - {name: api, id: api-1, port: 9001, protocol: http}\n"
                "  - {name: api, id: api-2, port: 9002, protocol: http}\n",
    "redis.yaml": "name: redis\nport: 6379\ntags: [primary]\n",
}


def expected_output(block: str) -> list[str]:
    return [line.split("# -> ", 1)[1] for line in block.splitlines() if "# -> " in line]


def test_the_section_has_sync_and_async_examples() -> None:
    assert len(BLOCKS) == 3
    assert "Discovery(" in BLOCKS[0] and "AsyncDiscovery(" in BLOCKS[1]
    assert all(expected_output(block) for block in BLOCKS)


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_readme_client_example_runs(number: int, start_daemon: DaemonFactory, tmp_path: Path) -> None:
    daemon = start_daemon(files=FILES)
    block = BLOCKS[number]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PILOTFISH_HTTP": daemon.http_url,
           "PILOTFISH_DNS": f"{daemon.dns[0]}:{daemon.dns[1]}"}
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected_output(block)
