"""DNS counters that /metrics reads at scrape time; the hot path never calls into prometheus."""

from __future__ import annotations

import collections


class DnsStats:
    """Counters of queries by (qtype text, rcode text), and of malformed packets.

    Each (qtype, rcode) pair owns one slot of `counts`, a plain list the UDP hot path
    bumps by index (`counts[i] += 1`): the list is small and stays in the CPU cache,
    where a per-pair cell object would be one more cold memory load per query and a
    Counter update costs 200 ns and more. `queries` pairs the slots with their names
    when read, so /metrics sees plain counts at scrape time.
    """

    def __init__(self) -> None:
        self.malformed = 0  # packets dropped or answered FORMERR
        self.rate_limited = 0  # UDP answers dropped or sent as TC by dns.rate_limit
        self.recursion_refused = 0  # names outside the zone from clients not allowed to recurse
        self.forward_overflow = 0  # forwards refused (SERVFAIL) because too many were in flight
        self.tcp_evicted = 0  # TCP connections closed to make room under a connection cap
        self.counts: list[int] = []
        self._slots: dict[tuple[str, str], int] = {}

    @property
    def queries(self) -> collections.Counter[tuple[str, str]]:
        counts = self.counts
        return collections.Counter({key: counts[slot] for key, slot in self._slots.items() if counts[slot]})

    def slot(self, key: tuple[str, str]) -> int:
        found = self._slots.get(key)
        if found is None:
            found = self._slots[key] = len(self.counts)
            self.counts.append(0)
        return found

    def count(self, key: tuple[str, str]) -> None:
        self.counts[self.slot(key)] += 1
