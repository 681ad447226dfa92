"""Open DNS TCP connections, capped overall and per client address.

Every held connection costs a file descriptor and a task, and a client may open
thousands and send nothing (the idle timeout closes each after 10 s, but a client
reconnects faster than that). So there are two caps: `dns.tcp_connections` overall
(default 1000) and a sixteenth of it per client address (62 by default).

At a cap the connection that has been quiet the longest (of that client, or of all)
is closed to make room, rather than the new one refused: a client hoarding idle
connections then loses its own, while a resolver that asks now gets in. RFC 7766
(6.2.3) allows a server to close idle connections under pressure; clients reconnect.

Loopback clients count like any other: the per-client cap still leaves a local
resolver 62 connections at once, far more than its TCP fallback needs.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

DEFAULT_TOTAL = 1000
PER_CLIENT_SHARE = 16  # each client address may hold 1/16 of the total


class TcpConnections:
    def __init__(self, total: int = DEFAULT_TOTAL, per_client: int | None = None) -> None:
        self.total = max(1, total)
        self.per_client = per_client if per_client is not None else max(1, self.total // PER_CLIENT_SHARE)
        # Oldest activity first: moved to the end whenever a connection brings a query.
        self._all: OrderedDict[asyncio.BaseTransport, str] = OrderedDict()
        self._by_client: dict[str, OrderedDict[asyncio.BaseTransport, None]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def admit(self, transport: asyncio.BaseTransport, client: str) -> int:
        """Count a new connection from `client`, first closing the quietest ones in the way
        of a cap; how many were closed."""
        evicted = 0
        own = self._by_client.get(client)
        if own is not None and len(own) >= self.per_client:
            self._evict(next(iter(own)))
            evicted += 1
        if len(self._all) >= self.total:
            self._evict(next(iter(self._all)))
            evicted += 1
        self._all[transport] = client
        self._by_client.setdefault(client, OrderedDict())[transport] = None
        return evicted

    def active(self, transport: asyncio.BaseTransport) -> None:
        """`transport` brought a query: it is now the last to be closed for room."""
        client = self._all.get(transport)
        if client is not None:
            self._all.move_to_end(transport)
            self._by_client[client].move_to_end(transport)

    def remove(self, transport: asyncio.BaseTransport) -> None:
        """Forget a closed connection (again, if it was evicted: nothing happens)."""
        client = self._all.pop(transport, None)
        if client is None:
            return
        own = self._by_client[client]
        own.pop(transport, None)
        if not own:
            del self._by_client[client]

    def _evict(self, transport: asyncio.BaseTransport) -> None:
        self.remove(transport)
        # abort(): no graceful close waiting on a client that may not be reading.
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()
        else:
            transport.close()
