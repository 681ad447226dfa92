"""Names outside the zone: whether a client's query is relayed upstream, and what it gets back.

The responder says a query is for an upstream (`Forward`); this decides whether this
client may recurse (RecursionPolicy), whether a slot is free, and turns the
upstream's reply, or its silence, into the answer the client gets: SERVFAIL when no
upstream answered, the header with TC set when the reply is larger than the client
takes over UDP. Every outcome is counted by query type and rcode like any answer.
"""

from __future__ import annotations

import logging

from registry.ratelog import LogThrottle
from resolver.dns import wire
from resolver.dns.forward import Forwarder, RecursionPolicy
from resolver.dns.stats import DnsStats

log = logging.getLogger(__name__)

# Queries waiting on upstreams at once, each holding a socket for up to 2 s per
# upstream; past this they are answered SERVFAIL at once. A black-holed upstream then
# costs at most this many sockets, whatever the rate of names outside the zone.
FORWARDS_IN_FLIGHT = 256


class Relay:
    """Relays queries for names outside the zone, FORWARDS_IN_FLIGHT at a time."""

    def __init__(self, forwarder: Forwarder, policy: RecursionPolicy, stats: DnsStats) -> None:
        self._forwarder = forwarder
        self._policy = policy
        self._stats = stats
        self._in_flight = 0
        self._complaints = LogThrottle(log)

    def refusal(self, data: bytes, query: wire.Query, client: str) -> bytes | None:
        """None when `client` may have `query` relayed now (and a slot is taken for it),
        else the reply it gets instead: REFUSED if it may not recurse, SERVFAIL when too
        many queries are in flight."""
        edns = query.edns_payload is not None
        qtype = wire.qtype_text(query.qtype)
        if not self._policy.allows(client):
            self._stats.recursion_refused += 1
            self._stats.count((qtype, "REFUSED"))
            return wire.error_reply(data, wire.RCODE_REFUSED, query.question, edns, do=query.edns_do)
        if self._in_flight >= FORWARDS_IN_FLIGHT:
            self._stats.forward_overflow += 1
            self._stats.count((qtype, "SERVFAIL"))
            self._complaints.log("forward-overflow", logging.WARNING,
                                 "dns: %d forwarded queries in flight; answering SERVFAIL to more", self._in_flight)
            return wire.error_reply(data, wire.RCODE_SERVFAIL, query.question, edns, True, query.edns_do)
        self._in_flight += 1
        return None

    async def relay(self, data: bytes, query: wire.Query, tcp: bool) -> bytes:
        """The reply for a query that holds a slot (`refusal` said None); the slot is released here."""
        qtype = wire.qtype_text(query.qtype)
        edns = query.edns_payload is not None
        try:
            reply = await self._forwarder.forward(data, query.question, tcp)
        finally:
            self._in_flight -= 1
        if reply is None or len(reply) < 12:
            self._stats.count((qtype, "SERVFAIL"))
            return wire.error_reply(data, wire.RCODE_SERVFAIL, query.question, edns, True, query.edns_do)
        rcode = reply[3] & 0xF
        self._stats.count((qtype, wire.rcode_text(rcode)))
        if not tcp and len(reply) > query.udp_limit():
            # The upstream may answer in more than this client takes (or than we send
            # anyone over UDP): its header with TC set, and the client asks over TCP.
            return wire.error_reply(data, rcode, query.question, edns, True, query.edns_do, tc=True)
        return reply
