"""The client library's pure parts, as tables: HTTP framing, the breaker, the cache,
environment detection, settings, the DNS fallback's reading, and the core's plans
stepped by hand where a real daemon cannot stage the case (a watch's pacing)."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rrset
import pytest

from resolver.client import Instance, Instances, Kind, Source, detect, env_variable
from resolver.client.breaker import Breaker
from resolver.client.cache import AnswerCache
from resolver.client.core import Core
from resolver.client.dns_fallback import instances_from_srv, read_srv, srv_name, unresolved
from resolver.client.env_fallback import instance_from_url
from resolver.client.environment import default_gateway
from resolver.client.http_wire import BaseUrl, HttpResponse, MalformedResponse, ResponseReader, encode_request
from resolver.client.query import Query
from resolver.client.settings import build_settings, parse_dns_address
from resolver.client.steps import Failure, HttpCall
from resolver.client.watch import BACKOFF_MAX, UNMOVED_PAUSE, Watch
from resolver.watchlines import WatchLines

# -- HTTP framing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "chunks, status, body",
    [
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"], 200, b"{}"),
        ([b"HTTP/1.0 404 Not Found\r\nX-A: 1\r\n", b"\r\n[1,", b"2]"], 404, b"[1,2]"),  # no length: to EOF
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}trailing"], 200, b"{}"),
    ],
)
def test_response_reader_reads(chunks: list[bytes], status: int, body: bytes) -> None:
    reader = ResponseReader(1024)
    for chunk in chunks:
        reader.feed(chunk)
    response = reader.finish()
    assert (response.status, response.body) == (status, body)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "closed before the response headers ended"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP response"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed response header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "ended after 2 of 10 bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 999999\r\n\r\n", "larger than 1024"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "is not a number"),
        (b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 2000, "larger than 1024"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000, "headers longer than"),
    ],
)
def test_response_reader_refuses(data: bytes, message: str) -> None:
    reader = ResponseReader(1024)
    with pytest.raises(MalformedResponse, match=message):
        reader.feed(data)
        reader.finish()


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("http://127.0.0.1:8500", ("http", "127.0.0.1", 8500, "")),
        ("http://localhost:8500/", ("http", "localhost", 8500, "")),
        ("https://pilotfish.example/api/", ("https", "pilotfish.example", 443, "/api")),
        ("http://[::1]:8500", ("http", "::1", 8500, "")),
    ],
)
def test_base_url_parses(text: str, parsed: tuple[str, str, int, str]) -> None:
    base = BaseUrl.parse(text)
    assert (base.scheme, base.host, base.port, base.prefix) == parsed


@pytest.mark.parametrize("text", ["localhost:8500", "ftp://h", "http://:80", "http://h:99999", "http://h/?q=1"])
def test_base_url_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        BaseUrl.parse(text)


def test_request_bytes() -> None:
    base = BaseUrl.parse("http://[::1]:8500/pf")
    data = encode_request(base, "POST", "/v1/services?a=1", b"{}", "t0ken")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"POST /pf/v1/services?a=1 HTTP/1.0", b"Host: [::1]:8500", b"Accept: application/json",
        b"User-Agent: pilotfish-client", b"Authorization: Bearer t0ken", b"Content-Type: application/json",
        b"Content-Length: 2",
    ]
    assert body == b"{}"


# -- breaker and cache ----------------------------------------------------------


def test_breaker_opens_after_failures_in_a_row_and_probes_once() -> None:
    breaker = Breaker(failures=3, cooldown=10)
    breaker.failed(0)
    breaker.failed(1)
    breaker.succeeded()  # a success in between: the count starts again
    for t in (2, 3):
        breaker.failed(t)
        assert breaker.allow(t)
    breaker.failed(4)
    assert breaker.state(4).value == "open" and not breaker.allow(13.9) and breaker.opened == 1
    assert breaker.allow(14) and not breaker.allow(14.5), "half open: one probe at a time"
    breaker.failed(15)
    assert breaker.state(15).value == "open" and breaker.opened == 2 and not breaker.allow(24)
    assert breaker.allow(25)
    assert not breaker.allow(26)
    assert breaker.allow(35), "a probe that never reported back frees its slot after a cool-down"
    breaker.succeeded()
    assert breaker.state(35).value == "closed" and breaker.allow(35)


def test_cache_is_lru_bounded_and_keeps_expired_entries_as_stale() -> None:
    cache = AnswerCache(2)
    cache.put("a", 1, 0, 10)
    cache.put("b", 2, 0, 10)
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", 3, 0, 10)
    assert cache.get("b") is None and len(cache) == 2
    cache.expire("a", 5)
    entry = cache.get("a")
    assert entry is not None and entry.value == 1 and not entry.fresh(5)
    with pytest.raises(ValueError):
        AnswerCache(0)


# -- environment and settings ------------------------------------------------------

ROUTE = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    "eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
)


@pytest.mark.parametrize(
    "files, environ, kind, url",
    [
        ({}, {}, Kind.LOCAL, "http://127.0.0.1:8500"),
        ({}, {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, Kind.KUBERNETES, "http://127.0.0.1:8500"),
        ({"proc/1/cgroup": "0::/kubepods/burstable/pod1/abc\n"}, {}, Kind.KUBERNETES, "http://127.0.0.1:8500"),
        ({".dockerenv": "", "proc/net/route": ROUTE}, {}, Kind.DOCKER, "http://172.17.0.1:8500"),
        ({"proc/1/cgroup": "12:cpu:/docker/0123abcd\n", "proc/net/route": ROUTE}, {}, Kind.DOCKER, "http://172.17.0.1:8500"),
        ({".dockerenv": ""}, {}, Kind.DOCKER, "http://host.docker.internal:8500"),
        ({".dockerenv": ""}, {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, Kind.KUBERNETES, "http://127.0.0.1:8500"),
    ],
)
def test_environment_detection(tmp_path: Path, files: dict[str, str], environ: dict[str, str], kind: Kind, url: str) -> None:
    root = tmp_path
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    found = detect(root, environ)
    assert (found.kind, found.http_url) == (kind, url), found.evidence
    settings = build_settings(None, 5, dns=None, domain=None, token=None, timeout=1, dns_timeout=1, cache_size=8,
                              breaker_failures=1, breaker_cooldown=1, max_response=1024, environ=environ, root=root)
    assert str(settings.base) == url.removesuffix(":80")
    overridden = build_settings(None, 5, dns=None, domain=None, token=None, timeout=1, dns_timeout=1, cache_size=8,
                                breaker_failures=1, breaker_cooldown=1, max_response=1024,
                                environ={**environ, "PILOTFISH_HTTP": "http://10.1.2.3:9500"}, root=root)
    assert str(overridden.base) == "http://10.1.2.3:9500" and overridden.dns == ("10.1.2.3", 8600)


def test_default_gateway_ignores_other_routes() -> None:
    assert default_gateway(ROUTE) == "172.17.0.1"
    assert default_gateway(ROUTE.splitlines()[0] + "\neth0\t000011AC\t00000000\t0001\n") is None
    assert default_gateway("garbage") is None


@pytest.mark.parametrize(
    "text, address",
    [("127.0.0.1", ("127.0.0.1", 8600)), ("10.0.0.2:53", ("10.0.0.2", 53)), ("[::1]:8600", ("::1", 8600)),
     ("::1", ("::1", 8600))],
)
def test_dns_address(text: str, address: tuple[str, int]) -> None:
    assert parse_dns_address(text) == address


@pytest.mark.parametrize("text", ["localhost:8600", "10.0.0.2:0", "10.0.0.2:dns"])
def test_dns_address_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_dns_address(text)


@pytest.mark.parametrize("token", ["two words", "line\r\nX-Evil: 1", ""])
def test_token_cannot_inject_headers(token: str) -> None:
    with pytest.raises(ValueError):
        build_settings("http://127.0.0.1:1", 5, dns=None, domain=None, token=token, timeout=1, dns_timeout=1,
                       cache_size=8, breaker_failures=1, breaker_cooldown=1, max_response=1024, environ={}, root="/")


# -- names, filters and the environment fallback ------------------------------------------


@pytest.mark.parametrize(
    "name, variable", [("redis", "PILOTFISH_REDIS_URL"), ("billing-api", "PILOTFISH_BILLING_API_URL"), ("a b", None)]
)
def test_env_variable(name: str, variable: str | None) -> None:
    assert env_variable(name) == variable


@pytest.mark.parametrize(
    "value, address, port, protocol",
    [("postgres://db.internal/app", "db.internal", 5432, "postgres"), ("http://[::1]:81/x", "::1", 81, "http"),
     ("tcp://10.0.0.9:7000", "10.0.0.9", 7000, "tcp")],
)
def test_instance_from_url(value: str, address: str, port: int, protocol: str) -> None:
    instance = instance_from_url("svc", value)
    assert instance is not None and (instance.address, instance.port, instance.protocol) == (address, port, protocol)
    assert instance.url == value


@pytest.mark.parametrize("value", ["not a url", "http://", "http://h:99999"])
def test_instance_from_url_refuses(value: str) -> None:
    assert instance_from_url("svc", value) is None


def test_query_normalizes_filters_for_one_cache_entry() -> None:
    assert Query.build("api", ["b", "a", "a"]).key == Query.build("api", ("a", "b")).key
    assert Query.build("api", "blue").tags == ("blue",)
    assert Query.build("api", status=["passing", "warning"]).status == "passing,warning"
    assert Query.build("api", "blue").dns_can_answer and not Query.build("api", ["a", "b"]).dns_can_answer
    assert not Query.build("api", version="2").dns_can_answer and not Query.build("api", status="any").dns_can_answer
    for bad in ("", "a\nb", "x" * 256):
        with pytest.raises(ValueError):
            Query.build(bad)


# -- the DNS fallback's reading ----------------------------------------------------


def test_srv_answers_become_instances() -> None:
    assert srv_name("redis", None, "internal") == "_redis._tcp.service.internal."
    assert srv_name("redis", "primary", "internal") == "_redis._primary.service.internal."
    assert srv_name("bad name", None, "internal") is None
    query = dns.message.make_query("_redis._tcp.service.internal.", "SRV")
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(
        "_redis._tcp.service.internal.", 5, "IN", "SRV",
        "1 20 6380 0a000006.addr.internal.", "1 80 6379 web1.node.internal.", "2 100 7000 other.node.internal.",
    ))
    reply.additional.append(dns.rrset.from_text("web1.node.internal.", 5, "IN", "A", "10.0.0.5"))
    reply.additional.append(dns.rrset.from_text("0A000006.addr.internal.", 5, "IN", "A", "10.0.0.6"))
    records, addresses = read_srv(reply)
    assert unresolved(records, addresses) == ["other.node.internal"]
    found = instances_from_srv("redis", records, addresses, "internal")
    assert [(i.address, i.port, i.node, i.weight) for i in found] == [("10.0.0.5", 6379, "web1", 80), ("10.0.0.6", 6380, "", 20)]
    assert found[0].url == "tcp://10.0.0.5:6379" and found[0].registered_by == "dns"


# -- a watch's pacing, stepped by hand ------------------------------------------------


def _core() -> Core:
    settings = build_settings("http://127.0.0.1:1", 5, dns=None, domain=None, token=None, timeout=1, dns_timeout=1,
                              cache_size=8, breaker_failures=3, breaker_cooldown=1, max_response=1 << 20,
                              environ={}, root="/")
    return Core(settings)


def _step(watch: Watch, reply: HttpResponse | Failure) -> object:
    plan = watch.step()
    call = next(plan)
    assert isinstance(call, HttpCall)
    try:
        plan.send(reply)
    except StopIteration as done:
        return done.value
    raise AssertionError("a watch step makes one call")


def _answer(index: int, body: bytes = b"[]") -> HttpResponse:
    return HttpResponse(200, "OK", {"x-pilotfish-index": str(index)}, body)


def test_watch_backs_off_when_lost_and_pauses_when_the_index_does_not_move() -> None:
    watch = Watch(_core(), Query.build("web"), wait=30)
    first = _step(watch, _answer(5))
    assert first.value is not None and first.pause == 0 and first.connection is None  # type: ignore[attr-defined]
    same = _step(watch, _answer(5))
    assert same.value is None and same.pause == UNMOVED_PAUSE  # type: ignore[attr-defined]
    pauses = [_step(watch, Failure("refused")).pause for _ in range(8)]  # type: ignore[attr-defined]
    assert pauses[:3] == [0.25, 0.5, 1.0] and pauses[-1] == BACKOFF_MAX
    back = _step(watch, _answer(2))  # a restarted daemon: a lower index, the same content
    assert back.value is None and back.connection.connected and back.pause == 0  # type: ignore[attr-defined]


def test_watch_refuses_waits_the_daemon_would_not_honour() -> None:
    for wait in (0, -1, 601):
        with pytest.raises(ValueError):
            Watch(_core(), None, wait)


# -- what `pilotfish watch` prints ------------------------------------------------------


def _instance(id: str, status: str = "passing", tags: tuple[str, ...] = ()) -> Instance:
    return Instance(id=id, name="redis", node="n1", address="10.0.0.5", port=6379, protocol="redis",
                    url="redis://10.0.0.5:6379", status=status, tags=tags)


def test_watch_lines_tell_what_changed() -> None:
    lines = WatchLines("redis", as_json=False)
    stamp = 0.0
    first = lines.lines(Instances("redis", (_instance("r1"),), Source.DAEMON, 0, 7), stamp)
    assert [line.split(" ", 1)[1] for line in first] == [
        "watching redis at index 7: 1 instance", "+ redis r1@n1 redis://10.0.0.5:6379 passing -",
    ]
    second = lines.lines(Instances("redis", (_instance("r1", "critical", ("a",)), _instance("r2")), Source.DAEMON, 0, 9), stamp)
    assert [line.split(" ", 1)[1] for line in second] == [
        "~ redis r1@n1 status passing -> critical, tags - -> a", "+ redis r2@n1 redis://10.0.0.5:6379 passing -",
    ]
    third = lines.lines(Instances("redis", (), Source.DAEMON, 0, 10), stamp)
    assert [line.split(" ", 1)[1] for line in third] == ["- redis r1@n1 redis://10.0.0.5:6379", "- redis r2@n1 redis://10.0.0.5:6379"]


# -- the core's plans against replies that no daemon would give ---------------------------


def test_json_nested_too_deep_is_no_answer_not_a_crash() -> None:
    from resolver.client.answers import classify

    body = b"[" * 100_000 + b"]" * 100_000
    outcome = classify(HttpResponse(200, "OK", {"x-pilotfish-index": "3"}, body))
    assert isinstance(outcome, Failure) and "not JSON" in outcome.reason


def test_dns_fallback_stops_asking_once_the_server_stops_answering() -> None:
    # SRV names three targets without addresses; the first A query times out. Each
    # further query would cost another timeout: the fallback must give up instead.
    from resolver.client import DaemonUnavailable
    from resolver.client.steps import DnsCall

    settings = build_settings("http://127.0.0.1:1", 5, dns="127.0.0.1:8600", domain=None, token=None, timeout=1,
                              dns_timeout=1, cache_size=8, breaker_failures=3, breaker_cooldown=1,
                              max_response=1 << 20, environ={}, root="/")
    plan = Core(settings).instances(Query.build("redis"))
    assert isinstance(next(plan), HttpCall)
    srv = plan.send(Failure("refused"))
    assert isinstance(srv, DnsCall)
    reply = dns.message.make_response(srv.message)
    reply.answer.append(dns.rrset.from_text(
        "_redis._tcp.service.internal.", 5, "IN", "SRV", *(f"1 1 {6379 + n} n{n}.node.internal." for n in range(3))
    ))
    dns_calls = 1
    step = plan.send(reply)
    with pytest.raises(DaemonUnavailable) as caught:
        while True:
            assert isinstance(step, DnsCall)
            dns_calls += 1
            step = plan.send(Failure("no DNS answer within 1s"))
    assert dns_calls == 2
    assert "no SRV records with addresses" in caught.value.tried[1]
