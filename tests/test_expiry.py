"""Instances registered with a `ttl` disappear from DNS and HTTP unless re-registered."""

from __future__ import annotations

import time

from conftest import wait_for
from daemonkit import DaemonFactory


def test_instance_ttl_expires_end_to_end(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    # Each step has well over a second to spare on a loaded machine: the renewal at 1.5 s
    # must land before the first deadline (3 s), the look at 3.1 s before the second (4.5 s).
    body = {"name": "batch", "port": 7100, "ttl": "3s"}
    assert daemon.write("POST", "/v1/services", body).status == 201
    assert daemon.write("POST", "/v1/services", {"name": "batch", "port": 7101}).status == 201
    assert daemon.srv_ports("_batch._tcp.service.internal") == [7100, 7101]
    # Re-registering before the TTL runs out keeps it alive past its first deadline.
    started = time.monotonic()
    time.sleep(1.5)
    assert daemon.write("POST", "/v1/services", body).status == 200
    wait_for(lambda: time.monotonic() - started > 3.1, timeout=4, what="the first deadline to pass")
    assert daemon.srv_ports("_batch._tcp.service.internal") == [7100, 7101]
    wait_for(lambda: daemon.srv_ports("_batch._tcp.service.internal") == [7101], timeout=8, what="expiry")
    assert [i["id"] for i in daemon.get("/v1/services/batch")] == ["batch-7101"]
    events = daemon.get("/v1/events?kind=deregistration")
    assert any(e["subject"] == "api:batch-7100" and e["detail"]["reason"] == "ttl expired" for e in events["events"])
