"""The asyncio client (`AsyncDiscovery`) against real daemons: the same core as the
blocking one, so these follow the paths where its transport differs: HTTP over
asyncio streams, DNS through dnspython's asyncio queries, watches as async iterators."""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar

import pytest

from clientkit import DripServer, elapsed, registration, restart_on_same_ports
from conftest import eventually, run
from daemonkit import DaemonFactory
from resolver.client import AsyncDiscovery, DaemonUnavailable, NoInstance, Source

T = TypeVar("T")
REDIS = "name: redis\nport: 6379\ntags: [primary]\n"


def test_async_fallback_order_and_recovery(start_daemon: DaemonFactory) -> None:
    a = start_daemon(name="a", files={"redis.yaml": REDIS})
    b = start_daemon(name="b", files={"redis.yaml": "name: redis\nport: 7379\n", "web.yaml": "name: web\nport: 9100\n"})
    environ = {"PILOTFISH_BILLING_URL": "http://billing:8080"}
    client = AsyncDiscovery(a.http_url, cache_ttl=0.05, dns=b.dns, environ=environ, breaker_failures=1000)

    async def before() -> None:
        found = await client.instances("redis")
        assert found.source is Source.DAEMON and [i.port for i in found] == [6379]
        chosen = await client.url("redis", "local_first")
        assert chosen.url == "redis://127.0.0.1:6379" and chosen.source is Source.DAEMON

    async def stopped() -> None:
        async def stale() -> Any:
            found = await client.instances("redis")
            return found if found.source is Source.CACHE_STALE else None

        found = await eventually(stale, 5, "a stale answer")
        assert [i.port for i in found] == [6379] and found.age >= 0.05
        web = await client.endpoints("web")
        assert web.source is Source.DNS and [str(e) for e in web] == ["127.0.0.1:9100"]
        assert (await client.url("billing")).source is Source.ENV
        with pytest.raises(DaemonUnavailable) as caught:
            await client.instances("nothing")
        assert caught.value.name == "nothing"
        # A daemon-side strategy falls back the same way (and picks among what it found).
        assert (await client.url("redis", "least_conn")).source is Source.CACHE_STALE

    async def recovered() -> None:
        async def daemon_again() -> Any:
            found = await client.instances("redis")
            return found if found.source is Source.DAEMON else None

        await eventually(daemon_again, 10, "recovery")

    run(before())
    assert a.stop() == 0
    run(stopped())
    restart_on_same_ports(start_daemon, a)
    run(recovered())


def test_async_watch_sees_a_yaml_drop_within_a_second(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    client = AsyncDiscovery(daemon.http_url)

    async def scenario() -> None:
        changes = client.watch("web", wait=10)
        first = await anext(changes)
        assert len(first) == 0 and first.source is Source.DAEMON
        pending = asyncio.ensure_future(anext(changes))
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            assert not pending.done(), "nothing changed yet: the watch must still be waiting"
            await asyncio.sleep(0.02)
        dropped = time.monotonic()
        registration(daemon.services_dir / "web.yaml", "name: web\nport: 9100\n")
        second = await asyncio.wait_for(pending, 10)
        assert elapsed(dropped) < 1.0
        assert [i.port for i in second] == [9100]
        assert (await client.url("web")).url == "tcp://127.0.0.1:9100"
        await changes.aclose()

    run(scenario())


def test_async_url_of_unknown_service_is_no_instance(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    client = AsyncDiscovery(daemon.http_url)
    with pytest.raises(NoInstance):
        run(client.url("nothing"))


def test_async_deadline_holds_against_a_server_that_drips() -> None:
    with DripServer() as server:
        client = AsyncDiscovery(server.url, timeout=0.5, dns="127.0.0.1:9", dns_timeout=0.2)
        started = time.monotonic()
        with pytest.raises(DaemonUnavailable) as caught:
            run(client.instances("redis"))
        assert elapsed(started) < 3 and "within 0.5s" in caught.value.reason
