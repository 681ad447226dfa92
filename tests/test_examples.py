"""The deployment files in examples/ and systemd/ say what the README says they do."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from resolver.config import load_config

REPO = Path(__file__).resolve().parent.parent


def test_example_config_serves_the_examples_on_the_readme_ports() -> None:
    config = load_config(str(REPO / "examples" / "pilotfish.yaml"))
    assert config.services_dir == str(REPO / "examples" / "services.d")
    assert [str(e) for e in config.dns.listen] == ["127.0.0.1:8600"] and str(config.http.listen) == "127.0.0.1:8500"
    state = Path(config.state_dir).relative_to(REPO)
    ignored = subprocess.run(["git", "check-ignore", "-q", str(state / "pilotfish.db")], cwd=REPO)
    assert ignored.returncode == 0, f"{state} must be gitignored"


def test_forwarding_snippets_point_the_domain_at_the_daemon() -> None:
    dnsmasq = (REPO / "examples" / "forwarding" / "dnsmasq.conf").read_text().splitlines()
    assert "server=/internal/127.0.0.1#8600" in dnsmasq
    resolved = (REPO / "examples" / "forwarding" / "systemd-resolved.conf").read_text().splitlines()
    assert "DNS=127.0.0.1:8600" in resolved and "Domains=~internal" in resolved


def test_prometheus_scrapes_metrics() -> None:
    scrape = yaml.safe_load((REPO / "examples" / "prometheus.yml").read_text())
    [job] = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8500"]


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (REPO / "systemd" / "pilotfish.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_unit_is_hardened() -> None:
    settings = unit_settings()
    for key, value in {
        "DynamicUser": "yes", "StateDirectory": "pilotfish", "ProtectSystem": "strict", "ProtectHome": "yes",
        "NoNewPrivileges": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
    }.items():
        assert settings.get(key) == [value], key
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert settings["ExecStart"][0].endswith("pilotfish serve --config /etc/pilotfish/pilotfish.yaml")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    # verify wants ExecStart to exist on this machine; the unit is otherwise checked as shipped.
    unit = tmp_path / "pilotfish.service"
    text = (REPO / "systemd" / "pilotfish.service").read_text()
    unit.write_text(text.replace("/usr/local/bin/pilotfish", shutil.which("true") or "/bin/true"))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
