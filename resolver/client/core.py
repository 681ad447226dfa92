"""The client's one core: what to ask, how to read it, when to fall back (no I/O).

Each public lookup is a plan (see steps.py): look in the cache; if the entry is not
fresh and the breaker lets a call through, ask the daemon; if the daemon gives no
answer, walk the fallback chain in its fixed order (the last good answer marked
stale, then DNS SRV, then `PILOTFISH_<NAME>_URL`) and raise `DaemonUnavailable` only
when every link came up empty. The shared state (cache, breaker, counters, round-
robin cursors) is behind one lock, held only between steps and never across I/O,
so one `Discovery` can serve many threads.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from typing import Any, Callable, Hashable, TypeVar

import dns.message
import dns.rdatatype

from resolver.client import dns_fallback
from resolver.client.env_fallback import env_variable, instance_from_url
from resolver.client.answers import NOT_JSON, NOT_PILOTFISH, Answer, api_error, classify, raw_answer
from resolver.client.breaker import Breaker
from resolver.client.cache import AnswerCache
from resolver.client.errors import ClientError, DaemonUnavailable, NoInstance
from resolver.client.http_wire import HttpResponse, encode_request
from resolver.client.results import (
    BadAnswer, Endpoints, Instances, Services, ServiceUrl, Source,
    endpoints_of, instance_list_from_json, service_url_from_json, services_from_json,
)
from resolver.client.selection import CHOSEN_HERE, Picker, Strategy
from resolver.client.settings import Settings
from resolver.client.stats import UNAVAILABLE, ClientStats, Counters
from resolver.client.query import Params, Query, quote
from resolver.client.steps import DnsCall, Failure, HttpCall, Plan

T = TypeVar("T")
BREAKER_OPEN = "the circuit breaker is open after repeated failures"
SERVICES_KEY = ("services",)


def read_services(answer: Answer) -> Services:
    if answer.status != 200:
        raise api_error(answer.status, answer.body)
    return services_from_json(answer.body, answer.index)


def _names_a_service(body: Any) -> bool:
    """A 404 saying the service is unknown (an empty answer), not that the route is (a refusal)."""
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and error.get("code") == "not_found" and error.get("what") == "service"


class Core:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._cache = AnswerCache(settings.cache_size)
        self._breaker = Breaker(settings.breaker_failures, settings.breaker_cooldown)
        self._counters = Counters()
        self._picker = Picker()

    # -- the public lookups --------------------------------------------------

    def services(self) -> Plan[Services]:
        fresh, reason = yield from self._from_daemon(SERVICES_KEY, lambda: self.get("/v1/services", []), read_services)
        if fresh is not None:
            return fresh
        stale = self._stale(SERVICES_KEY)
        if stale is not None:
            return stale  # type: ignore[no-any-return]
        self._count_fallback(UNAVAILABLE)
        raise DaemonUnavailable(str(self.settings.base), reason, "every service", ("no earlier answer to serve",))

    def instances(self, query: Query) -> Plan[Instances]:
        fresh, reason = yield from self._from_daemon(
            query.key, lambda: self.instances_call(query), self.read_instances(query)
        )
        if fresh is not None:
            return fresh
        return (yield from self._fallback(query, reason))

    def url(self, query: Query, strategy: Strategy) -> Plan[ServiceUrl]:
        if strategy in CHOSEN_HERE:
            found = yield from self.instances(query)
            return self._choose(query, found, strategy)
        reason = BREAKER_OPEN
        if self._allowed():
            call = self.get(f"/v1/services/{quote(query.name)}/url", query.params() + [("strategy", strategy.value)])
            chosen = yield from self.ask(call, lambda answer: self._read_url(query, strategy, answer))
            if not isinstance(chosen, Failure):
                return chosen
            reason = chosen.reason
        found = yield from self._fallback(query, reason)
        return self._choose(query, found, Strategy.ROUND_ROBIN)

    def endpoints(self, query: Query) -> Plan[Endpoints]:
        return endpoints_of((yield from self.instances(query)))

    def request(self, method: str, path: str, body: bytes | None, params: Params) -> Plan[Any]:
        """Whatever the API answers, as JSON: no cache, no fallback (the CLI's verbs)."""
        started = self.clock()
        reply = yield self.call(method, path, body, params, self.settings.timeout)
        if isinstance(reply, Failure) or not isinstance(reply, HttpResponse):
            self._record(started, failed=True)
            raise DaemonUnavailable(str(self.settings.base), reply.reason if isinstance(reply, Failure) else "no reply")
        self._record(started, failed=False)
        value = raw_answer(reply)
        if value is NOT_JSON:
            raise DaemonUnavailable(str(self.settings.base), f"{NOT_PILOTFISH} (not JSON)")
        return value

    def stats(self) -> ClientStats:
        with self._lock:
            state = self._breaker.state(self.clock()).value
            return self._counters.snapshot(len(self._cache), state, self._breaker.opened)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- building and making calls ---------------------------------------------

    def call(self, method: str, path: str, body: bytes | None, params: Params, timeout: float) -> HttpCall:
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        payload = encode_request(self.settings.base, method, target, body, self.settings.token)
        return HttpCall(self.settings.base, payload, timeout, self.settings.max_response)

    def get(self, path: str, params: Params) -> HttpCall:
        return self.call("GET", path, None, params, self.settings.timeout)

    def instances_call(self, query: Query) -> HttpCall:
        return self.get(f"/v1/services/{quote(query.name)}", query.params())

    def ask(self, call: HttpCall, read: Callable[[Answer], T]) -> Plan[T | Failure]:
        """Send `call` and read the answer; a refusal `read` raises goes to the caller,
        counted as an answer; no answer (or one `read` cannot make sense of) is a Failure."""
        started = self.clock()
        outcome = classify((yield call))
        if isinstance(outcome, Answer):
            try:
                value = read(outcome)
            except BadAnswer as exc:
                outcome = Failure(f"{NOT_PILOTFISH} ({exc})")
            except ClientError:
                self._record(started, failed=False)
                raise
            else:
                self._record(started, failed=False)
                return value
        self._record(started, failed=True)
        return outcome

    def read_instances(self, query: Query) -> Callable[[Answer], Instances]:
        def read(answer: Answer) -> Instances:
            if answer.status == 404 and _names_a_service(answer.body):
                return Instances(query.name, (), Source.DAEMON, 0.0, answer.index)
            if answer.status != 200:
                raise api_error(answer.status, answer.body)
            return Instances(query.name, instance_list_from_json(answer.body), Source.DAEMON, 0.0, answer.index)

        return read

    def _read_url(self, query: Query, strategy: Strategy, answer: Answer) -> ServiceUrl:
        if answer.code in ("not_found", "no_instance"):
            message = answer.body["error"].get("message", answer.code)
            raise NoInstance(query.name, str(message), Source.DAEMON.value)
        if answer.status != 200:
            raise api_error(answer.status, answer.body)
        return service_url_from_json(answer.body, strategy.value)

    def _from_daemon(
        self, key: Hashable, make_call: Callable[[], HttpCall], read: Callable[[Answer], T]
    ) -> Plan[tuple[T | None, str]]:
        """(fresh answer, "") from the cache or the daemon, else (None, why the daemon gave none)."""
        now = self.clock()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry.fresh(now):
                self._counters.cache_hits += 1
                value: Instances | Services = entry.value
                return value.served(Source.DAEMON, now - entry.stored_at), ""  # type: ignore[return-value]
            self._counters.cache_misses += 1
            allowed = self._breaker.allow(now)
        if not allowed:
            return None, BREAKER_OPEN
        outcome = yield from self.ask(make_call(), read)
        if isinstance(outcome, Failure):
            return None, outcome.reason
        self.remember(key, outcome, self.settings.cache_ttl)
        return outcome, ""

    # -- the fallback chain ------------------------------------------------------

    def _fallback(self, query: Query, reason: str) -> Plan[Instances]:
        stale = self._stale(query.key)
        if stale is not None:
            return stale  # type: ignore[no-any-return]
        tried = ["no earlier answer to serve"]
        from_dns = yield from self._dns_instances(query)
        if isinstance(from_dns, Instances):
            self._count_fallback(Source.DNS.value)
            return from_dns
        tried.append(f"dns: {from_dns}")
        variable = env_variable(query.name)
        value = self.settings.environ.get(variable) if variable else None
        instance = instance_from_url(query.name, value) if value else None
        if instance is not None:
            self._count_fallback(Source.ENV.value)
            return Instances(query.name, (instance,), Source.ENV)
        if variable is None:
            tried.append("env: no variable can be named after this service")
        else:
            tried.append(f"env: {variable} is {'not a URL' if value else 'not set'}")
        self._count_fallback(UNAVAILABLE)
        raise DaemonUnavailable(str(self.settings.base), reason, query.name, tuple(tried))

    def _stale(self, key: Hashable) -> Any:
        now = self.clock()
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            self._counters.fallbacks[Source.CACHE_STALE.value] += 1
        value: Instances | Services = entry.value
        return value.served(Source.CACHE_STALE, now - entry.stored_at)

    def _dns_instances(self, query: Query) -> Plan[Instances | str]:
        """Instances from DNS SRV (+A), or why DNS had none."""
        where, domain = self.settings.dns, self.settings.domain
        if where is None:
            return "no DNS address (pass dns= or set PILOTFISH_DNS)"
        if not query.dns_can_answer:
            return "DNS cannot filter by version, node, status or more than one tag"
        owner = dns_fallback.srv_name(query.name, query.dns_tag, domain)
        if owner is None:
            return "the name (or tag) is not a DNS label"
        host, port = where
        timeout = self.settings.dns_timeout
        reply = yield DnsCall(dns_fallback.query(owner, dns.rdatatype.SRV), host, port, timeout)
        if isinstance(reply, Failure):
            return f"{reply.reason} asking {host}:{port}"
        if not isinstance(reply, dns.message.Message):
            return "a DNS call got no DNS reply"
        problem = dns_fallback.failure_of(reply)
        if problem is not None:
            return problem
        records, addresses = dns_fallback.read_srv(reply)
        for target in dns_fallback.unresolved(records, addresses):
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                answer = yield DnsCall(dns_fallback.query(target + ".", rdtype), host, port, timeout)
                if not isinstance(answer, dns.message.Message):
                    # The server stopped answering: asking about the other targets would
                    # cost a timeout each. Serve what resolved so far.
                    return self._dns_result(query, records, addresses, owner)
                found = dns_fallback.read_addresses(answer).get(target)
                if found and dns_fallback.failure_of(answer) is None:
                    addresses[target] = found
                    break
        return self._dns_result(query, records, addresses, owner)

    def _dns_result(
        self, query: Query, records: list[dns_fallback.SrvRecord], addresses: dict[str, list[str]], owner: str
    ) -> Instances | str:
        items = dns_fallback.instances_from_srv(query.name, records, addresses, self.settings.domain)
        if not items:
            return f"no SRV records with addresses for {owner}"
        return Instances(query.name, items, Source.DNS)

    # -- shared state ------------------------------------------------------------

    def remember(self, key: Hashable, value: Any, fresh_for: float) -> None:
        now = self.clock()
        with self._lock:
            self._cache.put(key, value, now, now + fresh_for)

    def expire(self, key: Hashable) -> None:
        with self._lock:
            self._cache.expire(key, self.clock())

    def _allowed(self) -> bool:
        with self._lock:
            return self._breaker.allow(self.clock())

    def _record(self, started: float, failed: bool) -> None:
        now = self.clock()
        with self._lock:
            self._counters.request(now - started, failed)
            if failed:
                self._breaker.failed(now)
            else:
                self._breaker.succeeded()

    def _count_fallback(self, kind: str) -> None:
        with self._lock:
            self._counters.fallbacks[kind] += 1

    def _choose(self, query: Query, found: Instances, strategy: Strategy) -> ServiceUrl:
        if not found.items:
            raise NoInstance(query.name, "no instance matches (check status and filters)", found.source.value)
        with self._lock:
            instance = self._picker.pick(query.key, found.items, strategy)
        return ServiceUrl(instance.url, query.name, instance, strategy.value, found.source, found.age)

