"""`pilotfish serve` end to end: a real daemon subprocess, real DNS and HTTP clients.

Hot reload (added, changed, broken, fixed, removed), conflicts through a file, SIGHUP,
SIGTERM, durability across `kill -9`, the token, and the bundled example config.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import dns.rcode
import yaml

from conftest import REPO, free_port, wait_for
from daemonkit import START_TIMEOUT, Daemon, DaemonFactory, launch, ready_line, write_config


def file_errors(daemon: Daemon) -> dict[str, list[dict[str, Any]]]:
    return {error["path"]: error["problems"] for error in daemon.status()["file_errors"]}


def test_yaml_file_added_changed_broken_fixed_removed(daemon: Daemon) -> None:
    path = daemon.services_dir / "web.yaml"
    path.write_text("name: web\nport: 8080\nprotocol: http\n")
    wait_for(lambda: daemon.srv_ports("_web._tcp.service.internal") == [8080], what="web added")

    path.write_text("name: web\nport: 8081\nprotocol: http\n")
    wait_for(lambda: daemon.srv_ports("_web._tcp.service.internal") == [8081], what="web changed")

    path.write_text("name: web\nport: 8082\nprotocol: http\nprot: oops\n")
    errors = wait_for(lambda: file_errors(daemon).get(str(path)), what="the broken file in /v1/status")
    assert errors[0]["line"] == 4 and errors[0]["field"] == "prot"
    assert daemon.srv_ports("_web._tcp.service.internal") == [8081], "the previous state stays"
    assert daemon.get("/v1/services/web")[0]["port"] == 8081

    path.write_text("name: web\nport: 8083\nprotocol: http\n")
    wait_for(lambda: daemon.srv_ports("_web._tcp.service.internal") == [8083], what="web fixed")
    assert file_errors(daemon) == {}

    path.unlink()
    wait_for(lambda: daemon.query("_web._tcp.service.internal").rcode() == dns.rcode.NXDOMAIN, what="web removed")
    assert daemon.request("GET", "/v1/services/web").status == 404


def test_file_refused_on_conflict_keeps_the_incumbent(daemon: Daemon) -> None:
    (daemon.services_dir / "a-redis.yaml").write_text("name: redis-server\nport: 6379\n")
    wait_for(lambda: daemon.srv_ports("_redis-server._tcp") == [6379], what="the incumbent")
    challenger = daemon.services_dir / "b-stack.yaml"
    challenger.write_text("name: redis-stack-server\nport: 6390\n")
    errors = wait_for(lambda: file_errors(daemon).get(str(challenger)), what="the refused file")
    assert "redis-server" in errors[0]["message"]
    assert daemon.query("_redis-stack-server._tcp.service.internal").rcode() == dns.rcode.NXDOMAIN
    assert daemon.srv_ports("_redis-server._tcp") == [6379]
    events = daemon.get("/v1/events?kind=rejection")["events"]
    assert any(e["subject"] == f"file:{challenger}" for e in events)


def rejected_lines(daemon: Daemon, path: Path) -> list[dict[str, Any]]:
    return [line for line in daemon.logs() if line["msg"].startswith("file rejected") and line["path"] == str(path)]


def test_a_file_refused_for_what_is_in_its_way_is_logged_with_why(daemon: Daemon) -> None:
    """Operators read the log first: a conflict's rule, reason and incumbent, a duplicate's holder."""
    incumbent = daemon.services_dir / "a-redis.yaml"
    incumbent.write_text("name: redis-server\nport: 6379\n")
    wait_for(lambda: daemon.srv_ports("_redis-server._tcp") == [6379], what="the incumbent")
    challenger = daemon.services_dir / "b-stack.yaml"
    challenger.write_text("name: redis-stack-server\nport: 6390\n")
    [line] = wait_for(lambda: rejected_lines(daemon, challenger), what="the conflict's log line")
    assert line["level"] == "error"
    assert line["rule"]["a"] == "redis-server" and line["rule"]["b"] == "redis-stack-server"
    assert line["rule"]["type"] == "port" and line["reason"] == line["rule"]["reason"] != ""
    assert line["incumbent"]["id"] == "redis-server-6379" and line["incumbent"]["source"] == f"file:{incumbent}"
    [problem] = line["problems"]
    assert "conflicts with redis-server (redis-server-6379)" in problem and line["reason"] in problem
    # The same id from another file: the holder is named.
    twin = daemon.services_dir / "c-twin.yaml"
    twin.write_text("name: redis-server\nport: 6379\n")
    [line] = wait_for(lambda: rejected_lines(daemon, twin), what="the duplicate's log line")
    assert line["id"] == "redis-server-6379" and line["file"] == str(incumbent)
    assert line["holder"] == f"file:{incumbent}" and "already registered by" in line["problems"][0]
    assert file_errors(daemon)[str(twin)][0]["message"] in line["problems"][0]


def test_sighup_rereads_config_and_rescans(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    daemon = start_daemon(files={"web.yaml": "name: web\nport: 8080\n"})
    other = tmp_path / "other.d"
    other.mkdir()
    (other / "db.yaml").write_text("name: db\nport: 5432\n")
    config = yaml.safe_load(daemon.config_path.read_text())
    config["services_dir"] = str(other)
    config["conflicts"] = [{"a": "cache", "b": "db", "type": "resource", "reason": "one of them per host"}]
    daemon.config_path.write_text(yaml.safe_dump(config))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: daemon.srv_ports("_db._tcp") == [5432], what="the new services_dir")
    assert daemon.query("_web._tcp.service.internal").rcode() == dns.rcode.NXDOMAIN
    rules = daemon.get("/v1/conflicts")["rules"]
    assert any(r["a"] == "cache" and r["b"] == "db" and r["source"] == "config" for r in rules)
    # The new directory is watched from now on.
    (other / "cache.yaml").write_text("name: cache\nport: 11211\n")
    wait_for(lambda: file_errors(daemon).get(str(other / "cache.yaml")), what="the rule applied to a new file")

    daemon.config_path.write_text("dns: {listen: nonsense}\n")
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: any(line["msg"].startswith("config reload refused") for line in daemon.logs()), what="refusal")
    assert daemon.srv_ports("_db._tcp") == [5432]
    assert daemon.proc.poll() is None


def test_an_unreachable_etcd_delays_nothing_and_restart_only_keys_wait(start_daemon: DaemonFactory) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    daemon = start_daemon(config={"cluster": {"etcd": [nobody], "prefix": "/fleet/"}},
                          files={"db.yaml": "name: db\nport: 5432\n"})
    # Ready, and serving its own host, while fleet mode is still trying to reach etcd.
    assert daemon.srv_ports("_db._tcp") == [5432]
    cluster = daemon.status()["cluster"]
    assert (cluster["state"], cluster["prefix"], cluster["endpoints"]) == ("connecting", "/fleet/", [nobody])
    assert "pilotfish_cluster_stale 1.0" in daemon.text("/metrics")
    config = yaml.safe_load(daemon.config_path.read_text())
    config["dns"]["ttl"] = "30s"
    daemon.config_path.write_text(yaml.safe_dump(config))
    daemon.signal(signal.SIGHUP)
    waiting = wait_for(lambda: [line for line in daemon.logs() if line["msg"].startswith("config keys changed")],
                       what="the restart-only warning")
    assert waiting[0]["keys"] == ["dns"]
    assert daemon.query("redis.service.internal", "A").rcode() == dns.rcode.NXDOMAIN  # still serving
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 8  # a dead etcd does not hold up SIGTERM (revoke gives up at 2 s; slack for load)


def test_fleet_mode_without_the_etcd_client_is_refused_with_the_way_out(tmp_path: Path) -> None:
    """`cluster.etcd` set where the `cluster` extra is not installed: one line saying what to install."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "aetcd.py").write_text("raise ImportError('No module named aetcd')\n")
    config_path, log_path = tmp_path / "pilotfish.yaml", tmp_path / "pilotfish.log"
    write_config(config_path, tmp_path / "services.d", tmp_path / "state", None,
                 {"cluster": {"etcd": [f"127.0.0.1:{free_port()}"]}})
    proc = launch(config_path, log_path, env={"PYTHONPATH": f"{shadow}:{REPO}"})
    assert proc.wait(START_TIMEOUT) == 1
    [refusal] = [line for line in log_path.read_text().splitlines() if '"cannot start"' in line]
    assert "pilotfish[cluster]" in refusal and "Traceback" not in log_path.read_text()


def test_a_single_host_says_so(daemon: Daemon) -> None:
    assert daemon.status()["cluster"] == {"state": "off", "datacenter": "dc1"}
    assert "pilotfish_cluster" not in daemon.text("/metrics")


def park_blocking_query(daemon: Daemon) -> tuple[threading.Thread, list[object]]:
    """A client in a blocking query at the current index, in a thread.

    How its connection ends (answered or cut) is in the list once the thread ends.
    """
    with urllib.request.urlopen(daemon.http_url + "/v1/services", timeout=10) as response:
        index = int(response.headers["X-Pilotfish-Index"])
    outcome: list[object] = []

    def long_poll() -> None:
        try:
            outcome.append(daemon.request("GET", f"/v1/services?index={index}&wait=5m"))
        except OSError as exc:
            outcome.append(exc)

    blocked = threading.Thread(target=long_poll)
    blocked.start()
    return blocked, outcome


def test_sigterm_stops_cleanly(daemon: Daemon) -> None:
    host, port = daemon.bound["http"][0].rsplit(":", 1)
    # A client in a blocking query must not hold the daemon up.
    blocked, outcome = park_blocking_query(daemon)
    blocked.join(0.5)
    assert blocked.is_alive() and outcome == [], "the blocking query is parked"
    assert daemon.stop(timeout=5) == 0
    blocked.join(10)
    assert any(line["msg"] == "stopped" for line in daemon.logs())
    with socket.socket() as probe:
        assert probe.connect_ex((host, int(port))) != 0, "the HTTP listener is closed"


def test_fifty_api_registrations_survive_kill_9(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    for n in range(50):
        reply = daemon.write("POST", "/v1/services", {"name": "worker", "id": f"worker-{n}", "port": 9000 + n})
        assert reply.status == 201, reply
    daemon.proc.kill()
    daemon.proc.wait(10)
    again = start_daemon.restart(daemon)
    instances = again.get("/v1/services/worker?status=any")
    assert sorted(i["id"] for i in instances) == sorted(f"worker-{n}" for n in range(50))
    assert len(again.srv_ports("_worker._tcp", tcp=True)) == 50


def test_token_guards_writes_end_to_end(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(token="s3cret")
    body = {"name": "web", "port": 8080}
    assert daemon.request("POST", "/v1/services", body).status == 401
    assert daemon.request("POST", "/v1/services", body, token="wrong").status == 401
    assert daemon.request("POST", "/v1/services", body, token="s3cret").status == 201
    assert daemon.request("GET", "/v1/services/web").status == 200
    assert daemon.request("DELETE", "/v1/services/web-8080").status == 401
    # A new token applies on SIGHUP, without a restart.
    config = yaml.safe_load(daemon.config_path.read_text())
    config["http"]["token"] = "n3w"
    daemon.config_path.write_text(yaml.safe_dump(config))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: daemon.request("DELETE", "/v1/services/web-8080", token="n3w").status == 200, what="new token")
    assert daemon.request("POST", "/v1/services", body, token="s3cret").status == 401


def test_refuses_non_loopback_http_without_token(tmp_path: Path) -> None:
    config = tmp_path / "pilotfish.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nhttp: {{listen: '0.0.0.0:0'}}\ndns: {{listen: ['127.0.0.1:0']}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "resolver.cli", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=30, cwd=REPO,
    )
    assert done.returncode == 1
    assert "http.token" in done.stderr and f"{config}:2" in done.stderr


def test_examples_config_answers_srv_redis(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    # The bundled config, moved onto ephemeral ports and a private state directory.
    config = yaml.safe_load((REPO / "examples" / "pilotfish.yaml").read_text())
    config["services_dir"] = str(REPO / "examples" / "services.d")
    config["state_dir"] = str(tmp_path / "state")
    config["dns"]["listen"] = ["127.0.0.1:0"]
    config["http"]["listen"] = "127.0.0.1:0"
    path = tmp_path / "pilotfish.yaml"
    path.write_text(yaml.safe_dump(config))
    daemon = start_daemon.run(path, REPO / "examples" / "services.d", tmp_path / "state", None)
    assert daemon.srv_ports("_redis._tcp") == [6379, 6380]
    assert daemon.status()["file_errors"] == []
    assert "redis" in daemon.get("/v1/services")


def test_metrics_count_file_reloads(daemon: Daemon) -> None:
    (daemon.services_dir / "web.yaml").write_text("name: web\nport: 8080\n")
    wait_for(lambda: daemon.srv_ports("_web._tcp") == [8080], what="web added")
    text = daemon.text("/metrics")
    assert 'pilotfish_registrations_total{source="file"} 1.0' in text
    assert "pilotfish_reload_seconds_count" in text


def test_request_metrics_count_methods_the_api_does_not_serve_as_other(daemon: Daemon) -> None:
    """The method label holds the API's methods only (aiohttp's pure-Python parser
    would accept any token a client invents as a method)."""
    for method in ("PROPFIND", "MKCOL", "LOCK"):
        daemon.request(method, "/v1/services")
    text = daemon.text("/metrics")
    assert "PROPFIND" not in text and "MKCOL" not in text
    assert 'method="OTHER",route="unmatched",status="405"' in text


def test_missing_services_dir_is_picked_up_on_sighup(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    later = tmp_path / "later.d"
    daemon = start_daemon(config={"services_dir": str(later)})
    assert any(line["msg"].startswith("services_dir does not exist") for line in daemon.logs())
    later.mkdir()
    (later / "web.yaml").write_text("name: web\nport: 8080\n")
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: daemon.srv_ports("_web._tcp") == [8080], what="the rescan")
    (later / "web.yaml").write_text("name: web\nport: 8081\n")
    wait_for(lambda: daemon.srv_ports("_web._tcp") == [8081], what="the watcher started by SIGHUP")


def test_sighup_watches_a_services_dir_that_was_replaced(daemon: Daemon) -> None:
    # Deploy tools swap a whole directory in (`mv services.d.new services.d`); inotify
    # keeps watching the old one, so SIGHUP must watch the directory now at the path.
    (daemon.services_dir / "web.yaml").write_text("name: web\nport: 8080\n")
    wait_for(lambda: daemon.srv_ports("_web._tcp") == [8080], what="web added")
    fresh = daemon.services_dir.with_name("services.d.new")
    fresh.mkdir()
    (fresh / "web.yaml").write_text("name: web\nport: 8081\n")
    daemon.services_dir.rename(daemon.services_dir.with_name("services.d.old"))
    fresh.rename(daemon.services_dir)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: daemon.srv_ports("_web._tcp") == [8081], what="the rescan of the new directory")
    (daemon.services_dir / "web.yaml").write_text("name: web\nport: 8082\n")
    wait_for(lambda: daemon.srv_ports("_web._tcp") == [8082], what="a change in the new directory")


def test_sighup_while_stopping_is_ignored(daemon: Daemon) -> None:
    # A blocking query keeps shutdown busy for a moment; a reload then would start a new
    # watcher and rescan into a store being closed.
    blocked, _ = park_blocking_query(daemon)
    daemon.signal(signal.SIGTERM)
    wait_for(lambda: any(line["msg"] == "stopping" for line in daemon.logs()), what="shutdown to begin")
    daemon.signal(signal.SIGHUP)
    assert daemon.proc.wait(10) == 0
    blocked.join(10)
    messages = [line["msg"] for line in daemon.logs()]
    after = messages[messages.index("stopping"):]
    assert "services_dir loaded" not in after and "reload failed" not in after, after


def sighup_handled(pid: int) -> bool:
    """Whether the process catches SIGHUP yet (bit 0 of SigCgt).

    Not SigIgn: a daemon started under `nohup` (or by anything ignoring SIGHUP) inherits
    that, and a SIGHUP sent then is lost before the CLI installs its handler.
    """
    fields = dict(line.split(":\t") for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
    return bool(int(fields["SigCgt"], 16) & 1)


def test_notifies_systemd_and_survives_a_sighup_while_starting(tmp_path: Path) -> None:
    config_path, log_path = tmp_path / "pilotfish.yaml", tmp_path / "pilotfish.log"
    (tmp_path / "services.d").mkdir()
    (tmp_path / "services.d" / "web.yaml").write_text("name: web\nport: 8080\n")
    write_config(config_path, tmp_path / "services.d", tmp_path / "state", None, {})
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(tmp_path / "notify.sock"))
        manager.settimeout(START_TIMEOUT)
        proc = launch(config_path, log_path, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
        try:
            # `systemctl reload` right after start: the SIGHUP lands while the daemon loads
            # (about half a second), where its default action used to end the process.
            wait_for(lambda: proc.poll() is not None or sighup_handled(proc.pid), what="the CLI to catch SIGHUP")
            proc.send_signal(signal.SIGHUP)
            assert manager.recv(64) == b"READY=1"
            # READY means serving: DNS and HTTP answer at once.
            bound = ready_line(log_path, proc, 0)["bound"]
            host, _, port = bound["dns_udp"][0].rpartition(":")
            daemon = Daemon(proc, config_path, tmp_path / "services.d", tmp_path / "state", log_path,
                            http_url=f"http://{bound['http'][0]}", dns=(host, int(port)), bound=bound)
            assert daemon.srv_ports("_web._tcp") == [8080]
            assert daemon.status()["node"]
            # The early SIGHUP was not lost: it became a reload.
            try:
                wait_for(lambda: any(line.get("reason") == "sighup" for line in daemon.logs()), 15, "the replayed reload")
            except AssertionError:
                raise AssertionError("no replayed reload; the daemon's log:\n" + log_path.read_text()[-6000:]) from None
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            assert manager.recv(64) == b"STOPPING=1"
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def test_blocking_query_stays_parked_while_nothing_changes(daemon: Daemon) -> None:
    def read(path: str) -> int:
        with urllib.request.urlopen(daemon.http_url + path, timeout=10) as response:
            return int(response.headers["X-Pilotfish-Index"])

    index = read("/v1/services")
    started = time.monotonic()
    assert read(f"/v1/services?index={index}&wait=2s") == index, "released without a change"
    assert time.monotonic() - started > 1.8  # jitter shortens a wait by at most 1/16
