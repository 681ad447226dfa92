"""Nobody runs commands through the API: exec checks come from files unless the config says otherwise.

Every way an exec check can reach the runner is tried against the real daemon:
POST and PUT, `pilotfish register FILE`, a registration stored while the config
allowed it and restored after a restart that no longer does, and a SIGHUP that
turns it off. Each command writes a file when it runs, so "did not run" is seen
on disk, not assumed.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import wait_for
from daemonkit import Daemon, DaemonFactory
from registry.health.probes import EXEC_NOT_ALLOWED
from resolver.cli import main
from resolver.cli_common import EXIT_REFUSED
from resolver.config import ConfigError, load_config

TOKEN = "s3cret"
REFUSED_OUTPUT = EXEC_NOT_ALLOWED.format(source="api")


def exec_registration(ran: Path, instance_id: str = "job-1") -> dict[str, Any]:
    argv = [sys.executable, "-c", f"open({str(ran)!r}, 'a').write('ran\\n')"]
    return {"id": instance_id, "name": "job", "port": 9000, "checks": [{"exec": argv, "interval": "1s"}]}


def check_output(daemon: Daemon, instance_id: str = "job-1") -> str:
    instance = next(i for i in daemon.get("/v1/services/job?status=any") if i["id"] == instance_id)
    return str(instance["check_states"][0]["output"])


def assert_exec_refused(reply: Any) -> None:
    assert reply.status == 403, reply
    error = reply.body["error"]
    assert error["code"] == "exec_not_allowed" and error["field"] == "checks[0].exec"
    assert "health.exec_from_api: true" in error["message"] and "http.token" in error["message"]


@pytest.mark.parametrize("token", [None, TOKEN], ids=["no token", "token but no opt-in"])
def test_post_and_put_with_an_exec_check_are_refused_and_nothing_runs(
    start_daemon: DaemonFactory, tmp_path: Path, token: str | None
) -> None:
    daemon = start_daemon(token=token)
    ran = tmp_path / "ran"
    assert_exec_refused(daemon.write("POST", "/v1/services", exec_registration(ran)))
    assert daemon.request("GET", "/v1/services/job?status=any").status == 404
    # PUT: an instance registered without checks may not be given one either.
    assert daemon.write("POST", "/v1/services", {"id": "job-1", "name": "job", "port": 9000}).status == 201
    assert_exec_refused(daemon.write("PUT", "/v1/services/job-1", exec_registration(ran)))
    assert daemon.get("/v1/services/job")[0]["checks"] == []
    assert not ran.exists()


def test_pilotfish_register_shows_why_an_exec_check_is_refused(
    start_daemon: DaemonFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = start_daemon(token=TOKEN)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(exec_registration(tmp_path / "ran")))
    code = main(["--http", daemon.http_url, "--token", TOKEN, "register", str(path)])
    err = capsys.readouterr().err
    assert code == EXIT_REFUSED and "HTTP 403" in err and "health.exec_from_api" in err, err


def test_opted_in_exec_checks_run_until_a_reload_or_a_restart_turns_them_off(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    daemon = start_daemon(token=TOKEN, config={"health": {"exec_from_api": True}})
    reply = daemon.write("POST", "/v1/services", exec_registration(ran))
    assert reply.status == 201, reply
    wait_for(lambda: ran.exists(), 5, "the command run")
    wait_for(lambda: daemon.get("/v1/services/job"), 5, "job passing")

    # SIGHUP with the opt-in gone: the registration stays, its command no longer runs.
    config = yaml.safe_load(daemon.config_path.read_text())
    config["health"]["exec_from_api"] = False
    daemon.config_path.write_text(yaml.safe_dump(config))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: check_output(daemon) == REFUSED_OUTPUT, 5, "the check refused after the reload")
    runs = ran.read_text()
    assert daemon.get("/v1/services/job?status=critical")[0]["id"] == "job-1"
    assert_exec_refused(daemon.write("POST", "/v1/services", exec_registration(ran, "job-2")))

    # A restart restores the stored registration, and still does not run it.
    assert daemon.stop() == 0
    ran.unlink()
    daemon = start_daemon.restart(daemon)
    wait_for(lambda: check_output(daemon) == REFUSED_OUTPUT, 5, "the restored check refused")
    assert daemon.get("/v1/services/job?status=critical")[0]["id"] == "job-1"
    assert not ran.exists(), runs
    # Whoever may use the API can still remove it.
    assert daemon.write("DELETE", "/v1/services/job-1").status == 200


def test_exec_checks_from_files_run_without_any_opt_in(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    daemon = start_daemon(files={"job.yaml": yaml.safe_dump(exec_registration(ran))})
    wait_for(lambda: ran.exists(), 5, "the file's command run")
    wait_for(lambda: daemon.get("/v1/services/job"), 5, "job passing")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("health:\n  exec_from_api: true\n", ":2: health.exec_from_api: true needs http.token"),
        ("health:\n  exec_from_api: yes please\n", ":2: health.exec_from_api: must be true or false"),
        ("health:\n  exec_from_ap: true\n", ":2: health.exec_from_ap: unknown key (did you mean 'exec_from_api'?)"),
    ],
)
def test_config_refuses_exec_from_api_without_a_token(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pilotfish.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_config(str(path))
    assert message in str(refused.value)


def test_config_exec_from_api_with_a_token_and_the_default(tmp_path: Path) -> None:
    path = tmp_path / "pilotfish.yaml"
    path.write_text(f"http:\n  token: {TOKEN}\nhealth:\n  exec_from_api: true\n")
    assert load_config(str(path)).health.exec_from_api is True
    path.write_text("")
    assert load_config(str(path)).health.exec_from_api is False
