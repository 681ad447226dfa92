"""The blocking client (`Discovery`) against real daemons: lookups, the fallback chain in
its order, recovery, the circuit breaker, watches, and deadlines against bad servers.

"DNS still answers while HTTP does not" is staged with two daemons: the client's HTTP
points at daemon A, which the test stops, and its DNS at daemon B, which stays up.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Iterator

import pytest

from clientkit import DripServer, elapsed, html_server, registration, restart_on_same_ports
from conftest import holds_for, wait_for
from daemonkit import Daemon, DaemonFactory
from resolver.client import ApiError, DaemonUnavailable, Discovery, Instances, NoInstance, Source

REDIS = "name: redis\nport: 6379\ntags: [primary]\nmeta: {team: platform}\n"
API = "services:\n  - {name: api, id: api-1, port: 9001, protocol: http, weight: 3}\n  - {name: api, id: api-2, port: 9002, protocol: http, weight: 1}\n"


@pytest.fixture
def daemon(start_daemon: DaemonFactory) -> Daemon:
    return start_daemon(files={"redis.yaml": REDIS, "api.yaml": API})


def test_lookups_read_typed_results_from_the_daemon(daemon: Daemon) -> None:
    client = Discovery(daemon.http_url, dns=daemon.dns)
    [redis] = client.instances("redis")
    assert (redis.id, redis.port, redis.protocol, redis.url) == ("redis-6379", 6379, "redis", "redis://127.0.0.1:6379")
    assert redis.tags == ("primary",) and dict(redis.meta) == {"team": "platform"} and redis.status == "passing"
    assert redis.registered_by.startswith("file:") and redis.node == "testnode"
    services = client.services()
    assert sorted(services) == ["api", "redis"] and services.source is Source.DAEMON and services.index
    assert {str(client.url("api")) for _ in range(4)} == {"http://127.0.0.1:9001", "http://127.0.0.1:9002"}
    assert [str(e) for e in client.endpoints("api")] == ["127.0.0.1:9001", "127.0.0.1:9002"]
    assert [i.id for i in client.instances("api", tags="nope")] == []
    # Strategies that need the daemon's state are asked of it every time.
    chosen = client.url("api", "least_conn")
    assert chosen.strategy == "least_conn" and chosen.instance.name == "api"


def test_unknown_service_is_empty_and_url_raises_no_instance(daemon: Daemon) -> None:
    client = Discovery(daemon.http_url)
    missing = client.instances("nothing")
    assert missing.source is Source.DAEMON and len(missing) == 0 and missing.index
    with pytest.raises(NoInstance) as caught:
        client.url("nothing")
    assert caught.value.name == "nothing"
    with pytest.raises(NoInstance):
        client.url("nothing", "local_first")


def test_a_refusal_is_an_api_error_not_a_fallback(daemon: Daemon) -> None:
    client = Discovery(daemon.http_url)
    with pytest.raises(ApiError) as caught:
        client.instances("redis", status="sleepy")
    assert (caught.value.status, caught.value.code) == (400, "invalid")
    assert client.stats().fallbacks["cache-stale"] == 0 and client.stats().breaker == "closed"


def test_cache_serves_within_its_ttl_and_counts(daemon: Daemon) -> None:
    client = Discovery(daemon.http_url, cache_ttl=60)
    first = client.instances("redis")
    registration(daemon.services_dir / "redis.yaml", REDIS.replace("6379", "6380"))
    wait_for(lambda: daemon.srv_ports("_redis._tcp") == [6380], what="the daemon to apply the change")
    again = client.instances("redis")
    assert [i.port for i in again] == [6379], "a fresh entry is served without asking"
    assert again.source is Source.DAEMON and again.age > 0 and again.index == first.index
    stats = client.stats()
    assert (stats.cache_hits, stats.cache_misses, stats.requests) == (1, 1, 1)
    assert stats.latency.count == 1 and 0 < stats.latency.max <= stats.latency.total
    assert stats.latency.buckets[-1] == (float("inf"), 1)


def test_the_cache_is_bounded_in_entries(daemon: Daemon) -> None:
    client = Discovery(daemon.http_url, cache_size=2)
    for name in ("redis", "api", "nothing", "other"):
        client.instances(name)
    assert client.stats().cache_entries == 2


def test_fallback_order_stale_then_dns_then_env_then_unavailable(start_daemon: DaemonFactory) -> None:
    a = start_daemon(name="a", files={"redis.yaml": REDIS})
    # B answers DNS for redis on another port (so a stale answer is told apart) and for web.
    b = start_daemon(name="b", files={"redis.yaml": "name: redis\nport: 7379\n", "web.yaml": "name: web\nport: 9100\n"})
    environ = {"PILOTFISH_WEB_URL": "http://from-env:1", "PILOTFISH_BILLING_API_URL": "https://billing.example:8443/v2"}
    client = Discovery(a.http_url, cache_ttl=0.05, dns=b.dns, environ=environ, breaker_failures=1000)
    assert [i.port for i in client.instances("redis")] == [6379]
    assert a.stop() == 0

    # 1. The last good answer, marked stale with its age, though DNS would answer.
    stale = wait_for(lambda: _if(client.instances("redis"), lambda r: r.source is Source.CACHE_STALE), what="stale")
    assert [i.port for i in stale] == [6379] and stale.age >= 0.05 and stale.index is not None
    # 2. DNS SRV + A at the configured address, before the environment variable.
    web = client.instances("web")
    assert web.source is Source.DNS and [(i.address, i.port, i.node) for i in web] == [("127.0.0.1", 9100, "testnode")]
    assert str(client.url("web")) == "tcp://127.0.0.1:9100"
    # 3. PILOTFISH_<NAME>_URL: upper-cased, '-' as '_'.
    billing = client.url("billing-api")
    assert billing.source is Source.ENV and billing.url == "https://billing.example:8443/v2"
    assert (billing.instance.address, billing.instance.port) == ("billing.example", 8443)
    # 4. Nothing anywhere.
    with pytest.raises(DaemonUnavailable) as caught:
        client.instances("nothing")
    error = caught.value
    assert error.url == a.http_url and error.name == "nothing" and "refused" in error.reason.lower()
    assert error.tried[-1] == "env: PILOTFISH_NOTHING_URL is not set"
    fallbacks = client.stats().fallbacks
    assert fallbacks["dns"] == 2 and fallbacks["env"] == 1 and fallbacks["unavailable"] == 1
    assert fallbacks["cache-stale"] >= 1

    # The same client, not recreated, is back on the daemon once it is.
    restart_on_same_ports(start_daemon, a)
    back = wait_for(lambda: _if(client.instances("redis"), lambda r: r.source is Source.DAEMON), what="recovery")
    assert [i.port for i in back] == [6379]
    assert client.instances("web").source is Source.DAEMON and len(client.instances("web")) == 0


def test_services_fall_back_to_the_stale_answer_only(daemon: Daemon) -> None:
    client = Discovery(daemon.http_url, cache_ttl=0)
    assert sorted(client.services()) == ["api", "redis"]
    assert daemon.stop() == 0
    stale = client.services()
    assert stale.source is Source.CACHE_STALE and sorted(stale) == ["api", "redis"]
    client.clear_cache()
    with pytest.raises(DaemonUnavailable):
        client.services()


def test_circuit_breaker_opens_and_closes_as_configured(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(files={"redis.yaml": REDIS})
    # A cool-down a loaded machine cannot outlast between the two looks at the open breaker.
    client = Discovery(daemon.http_url, cache_ttl=0, breaker_failures=2, breaker_cooldown=2.0)
    client.instances("redis")
    assert daemon.stop() == 0
    for _ in range(2):
        assert client.instances("redis").source is Source.CACHE_STALE
    stats = client.stats()
    assert (stats.breaker, stats.breaker_opened, stats.request_failures) == ("open", 1, 2)

    # Open: answers come from the fallback at once, and no request is made.
    started = time.monotonic()
    assert client.instances("redis").source is Source.CACHE_STALE
    assert client.stats().requests == stats.requests and elapsed(started) < 0.5

    # After the cool-down one probe goes out; it fails, so the breaker opens again.
    wait_for(lambda: client.stats().breaker == "half-open", what="the cool-down to end")
    client.instances("redis")
    stats = client.stats()
    assert (stats.breaker, stats.breaker_opened, stats.requests) == ("open", 2, 4)

    restart_on_same_ports(start_daemon, daemon)
    back = wait_for(lambda: _if(client.instances("redis"), lambda r: r.source is Source.DAEMON), what="a good probe")
    assert back.items[0].port == 6379 and client.stats().breaker == "closed"


def test_watch_sees_a_yaml_drop_within_a_second(daemon: Daemon) -> None:
    client = Discovery(daemon.http_url, cache_ttl=0.01)
    changes = client.watch("web", wait=10)
    first = next(changes)
    assert first.name == "web" and len(first) == 0, "a watch can start before the service exists"
    replies = _next_in_thread(changes)
    holds_for(replies.empty, 0.3, "nothing changed yet: the watch must still be waiting")
    dropped = time.monotonic()
    registration(daemon.services_dir / "web.yaml", "name: web\nport: 9100\n")
    second = replies.get(timeout=10)
    assert isinstance(second, Instances), second
    assert elapsed(dropped) < 1.0
    assert [i.port for i in second] == [9100]
    # The watch keeps the lookup's entry fresh beyond cache_ttl: no request for it.
    requests = client.stats().requests
    assert client.instances("web").source is Source.DAEMON and client.stats().requests == requests
    changes.close()


def test_watch_of_every_service_survives_a_restart(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(files={"redis.yaml": REDIS})
    client = Discovery(daemon.http_url)
    heard: list[Any] = []
    changes = client.watch(wait=10, on_connection=heard.append)
    assert sorted(next(changes)) == ["redis"]
    replies = _next_in_thread(changes)
    assert daemon.stop() == 0
    wait_for(lambda: heard, timeout=10, what="the watch to notice")
    daemon = restart_on_same_ports(start_daemon, daemon)
    registration(daemon.services_dir / "web.yaml", "name: web\nport: 9100\n")
    latest = replies.get(timeout=30)
    assert sorted(latest) == ["redis", "web"], latest
    assert heard[0].connected is False and heard[0].retry_in > 0 and heard[-1].connected is True
    changes.close()


def test_deadline_holds_against_a_server_that_drips() -> None:
    with DripServer() as server:
        client = Discovery(server.url, timeout=0.5, dns="127.0.0.1:9", dns_timeout=0.2, breaker_failures=1000)
        started = time.monotonic()
        with pytest.raises(DaemonUnavailable) as caught:
            client.instances("redis")
        assert elapsed(started) < 3 and "within 0.5s" in caught.value.reason


def test_a_web_server_that_is_not_pilotfish_is_no_answer() -> None:
    with html_server() as url:
        client = Discovery(url, dns="127.0.0.1:9", dns_timeout=0.2, environ={"PILOTFISH_REDIS_URL": "redis://r1:6379"})
        assert client.instances("redis").source is Source.ENV
        assert client.stats().request_failures == 1
        with pytest.raises(DaemonUnavailable) as caught:
            client.request("GET", "/v1/status")
        assert "not as a pilotfish daemon" in str(caught.value)


def test_a_wrong_path_prefix_is_a_refusal_not_an_empty_service(daemon: Daemon) -> None:
    # pilotfish's 404 for an unknown route carries the index too; only "no such service" is empty.
    client = Discovery(daemon.http_url + "/nowhere")
    with pytest.raises(ApiError) as caught:
        client.instances("redis")
    assert caught.value.status == 404


def _if(value: Any, test: Any) -> Any:
    return value if test(value) else None


def _next_in_thread(changes: Iterator[Any]) -> queue.Queue[Any]:
    """The iterator's next value, taken in a thread (or the exception it raised)."""
    replies: queue.Queue[Any] = queue.Queue()

    def take() -> None:
        try:
            replies.put(next(changes))
        except BaseException as exc:  # handed to the test, which fails on it
            replies.put(exc)

    threading.Thread(target=take, daemon=True).start()
    return replies
