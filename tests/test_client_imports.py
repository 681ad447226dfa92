"""An application that imports the client library does not load the daemon.

Checked in a fresh interpreter, the way an application starts: after importing
`resolver.client` (and using both flavours' modules), nothing of the server side
(aiohttp, the registry, the daemon, the HTTP app, YAML, dnslib, psutil) is loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVER_SIDE = ("aiohttp", "registry", "resolver.daemon", "resolver.http", "resolver.dns", "resolver.config",
               "resolver.metrics", "resolver.cli", "yaml", "dnslib", "psutil", "watchfiles", "prometheus_client",
               "uvloop", "multidict", "yarl")


def modules_after(imports: str) -> set[str]:
    program = f"import json, sys\n{imports}\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
    ).stdout
    return set(json.loads(out))


def test_client_imports_only_the_standard_library_and_dnspython() -> None:
    # What the interpreter loads by itself (site hooks of the venv, say) is not the client's doing.
    baseline = modules_after("")
    loaded = modules_after(
        "from resolver.client import Discovery, AsyncDiscovery\nDiscovery('http://127.0.0.1:1', environ={}).stats()"
    ) - baseline
    assert "resolver.client.aio" in loaded and "dns.asyncquery" in loaded
    server = sorted(m for m in loaded if any(m == s or m.startswith(s + ".") for s in SERVER_SIDE))
    assert server == []
    third_party = {m.split(".")[0] for m in loaded} - set(sys.stdlib_module_names) - {"resolver", "dns"}
    # dnspython's own optional helpers, when installed, are as far as it goes.
    assert third_party <= {"idna", "sniffio"}, third_party
