"""The open-file limit at start: raised toward the hard limit, one WARNING when the caps still do not fit.

Each daemon is a real `pilotfish serve` started under a low RLIMIT_NOFILE, as
`ulimit -n 256` would start it; the limit it then runs with is read from the kernel.
"""

from __future__ import annotations

import resource
from typing import Any

import psutil
import pytest

from daemonkit import Daemon, DaemonFactory
from resolver.openfiles import FD_CEILING

LOW = 256
REDIS = "name: redis\nport: 6379\n"
# The default caps: 1000 DNS TCP + 512 HTTP connections, and the daemon's own.
DEFAULT_NEED = 1000 + 512


def limit_warnings(daemon: Daemon) -> list[dict[str, Any]]:
    return [line for line in daemon.logs() if line.get("level") == "warning" and "open-file limit" in line["msg"]]


def running_limit(daemon: Daemon) -> tuple[int, int]:
    soft, hard = psutil.Process(daemon.proc.pid).rlimit(psutil.RLIMIT_NOFILE)
    return int(soft), int(hard)


def serves(daemon: Daemon) -> bool:
    return daemon.srv_ports("_redis._tcp.service.internal") == [6379] and daemon.get("/v1/services/redis")[0]["port"] == 6379


def test_a_low_soft_limit_is_raised_to_the_hard_one(start_daemon: DaemonFactory) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2 * DEFAULT_NEED:
        pytest.skip(f"the hard open-file limit here ({hard}) is too low to raise toward")
    daemon = start_daemon(files={"redis.yaml": REDIS}, open_files=(LOW, hard))
    expected = FD_CEILING if hard == resource.RLIM_INFINITY else min(hard, FD_CEILING)
    assert running_limit(daemon)[0] == expected
    assert limit_warnings(daemon) == []
    assert serves(daemon)


def test_caps_beyond_the_hard_limit_are_one_warning_and_the_daemon_serves(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(files={"redis.yaml": REDIS}, open_files=(LOW, LOW),
                          config={"dns": {"tcp_connections": 300}, "http": {"max_connections": 100}})
    assert running_limit(daemon) == (LOW, LOW)
    [warning] = limit_warnings(daemon)
    assert warning["limit"] == LOW and warning["needed"] > LOW
    assert warning["dns.tcp_connections"] == 300 and warning["http.max_connections"] == 100
    assert serves(daemon)


def test_caps_that_fit_the_limit_say_nothing(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(files={"redis.yaml": REDIS}, open_files=(LOW, LOW),
                          config={"dns": {"tcp_connections": 20}, "http": {"max_connections": 20}})
    assert limit_warnings(daemon) == []
    assert serves(daemon)
