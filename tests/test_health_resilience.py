"""A check never stops checking: probe failures of every kind, a daemon out of descriptors, intervals too short.

The descriptor test runs the real daemon and takes its descriptors away with
prlimit (RLIMIT_NOFILE below the lowest free descriptor, so every socket, pipe
and accept fails with EMFILE exactly as when connections exhaust it), watches its
checks turn critical through a keep-alive HTTP connection opened before, and gives
the descriptors back.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import resource
import sys
from typing import Any, Iterator

import dns.rcode
import pytest

from conftest import NODE, bound_socket, eventually, run, started, status_of, wait_for
from daemonkit import DaemonFactory
from healthkit import SLACK
from registry.catalog import Catalog
from registry.health.runner import MIN_INTERVAL, HealthRunner
from registry.model import Instance, Status
from registry.schema import parse_registration

# A DNS label longer than 63 characters: getaddrinfo's IDNA encoding raises
# UnicodeError, which is not an OSError; the probe's own handling never sees it.
UNENCODABLE_HOST = "a" * 64 + ".example"


def with_check(body: dict[str, Any], **changes: Any) -> Instance:
    """`body` parsed as a registration, then its check changed as no schema would allow."""
    instance = parse_registration(body, NODE)
    check = dataclasses.replace(instance.checks[0], **changes)
    return dataclasses.replace(instance, checks=(check,))


def test_a_probe_that_raises_is_critical_with_the_error_and_keeps_running(catalog: Catalog) -> None:
    runs: list[float] = []

    async def scenario() -> None:
        async with started(HealthRunner(catalog, observer=lambda check_id, started, took: runs.append(started))) as runner:
            body = {"id": "odd", "name": "odd", "port": 80, "checks": [{"tcp": "127.0.0.1:80", "interval": "1s"}]}
            catalog.register(with_check(body, target=f"{UNENCODABLE_HOST}:80"))
            await eventually(lambda: len(runs) >= 2, MIN_INTERVAL + 1 + SLACK, "a second run after the failure")
            entry = catalog.current.entry("odd")
            assert entry is not None and entry.status is Status.CRITICAL
            assert entry.checks[0].output.startswith("tcp check odd:tcp failed: UnicodeError")
            assert runner.scheduled() == 1

    run(scenario())


def test_the_runner_never_runs_a_check_more_often_than_once_a_second(catalog: Catalog) -> None:
    runs: list[float] = []

    async def scenario() -> None:
        async with started(HealthRunner(catalog, observer=lambda check_id, started, took: runs.append(started))):
            body = {"id": "busy", "name": "busy", "port": 80, "checks": [{"tcp": "127.0.0.1:1", "interval": "1s"}]}
            catalog.register(with_check(body, interval=0.001, timeout=0.001))
            await eventually(lambda: len(runs) >= 2, MIN_INTERVAL + 1, "a second run")
            await eventually(lambda: len(runs) >= 3, MIN_INTERVAL + 1, "a third run")
        gaps = [later - earlier for earlier, later in zip(runs, runs[1:])]
        assert len(runs) <= 4 and min(gaps) >= MIN_INTERVAL - 0.01, gaps
        assert status_of(catalog, "busy") is Status.CRITICAL

    run(scenario())


class KeptConnection:
    """One HTTP/1.1 keep-alive connection to the daemon, opened while it still can accept."""

    def __init__(self, http_url: str) -> None:
        host, _, port = http_url.removeprefix("http://").rpartition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def get(self, path: str) -> Any:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        body = response.read()
        assert response.status == 200, body
        return json.loads(body)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def listener() -> Iterator[int]:
    with bound_socket() as sock:
        yield sock.getsockname()[1]


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="prlimit on another process is Linux-only")
def test_running_out_of_descriptors_turns_checks_critical_and_they_recover(
    start_daemon: DaemonFactory, listener: int
) -> None:
    timing = "    interval: 1s\n    timeout: 500ms\n"
    files = {
        "redis.yaml": f"name: redis\nport: {listener}\nchecks:\n  - tcp: 127.0.0.1:{listener}\n{timing}",
        "job.yaml": f"name: job\nport: 9000\nchecks:\n  - exec: [{sys.executable!r}, -c, pass]\n{timing}",
    }
    daemon = start_daemon(files=files)

    def statuses(read: Any) -> dict[str, tuple[str, str]]:
        found = {}
        for name in ("redis", "job"):
            for instance in read(f"/v1/services/{name}?status=any"):
                found[name] = (instance["status"], instance["check_states"][0]["output"])
        return found

    wait_for(lambda: {s for s, _ in statuses(daemon.get).values()} == {"passing"}, 10, "both passing")
    kept = KeptConnection(daemon.http_url)
    limits = resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE)
    try:
        assert kept.get("/v1/node")
        # 0, 1 and 2 are open (stdin, stdout, the log): no new descriptor fits under 3.
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE, (3, limits[1]))
        def all_critical() -> dict[str, tuple[str, str]] | None:
            found = statuses(kept.get)
            return found if {status for status, _ in found.values()} == {"critical"} else None

        down = wait_for(all_critical, MIN_INTERVAL + 2, "both critical while out of descriptors")
        assert "cannot open a socket: Too many open files" in down["redis"][1]
        assert "Too many open files" in down["job"][1]
        reply = daemon.query("redis.service.internal", "A")  # UDP needs no new descriptor: DNS still answers
        assert reply.rcode() == dns.rcode.NOERROR
    finally:
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE, limits)
        kept.close()
    wait_for(lambda: {s for s, _ in statuses(daemon.get).values()} == {"passing"}, MIN_INTERVAL + 2, "both passing again")
    assert daemon.proc.poll() is None
    assert daemon.srv_ports("_redis._tcp") == [listener]
