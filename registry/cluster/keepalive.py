"""A lease kept alive: refreshed every third of its TTL until stopped, and how it ended.

Whoever holds the lease waits on `lost()`: it resolves on every end (etcd dropped the
lease, etcd unreachable for a whole TTL, or `stop`), so nobody waits forever.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from registry.cluster.errors import EtcdError, LeaseNotFound
from registry.cluster.kv import Lease, LeaseLost


class KeepAlive:
    """Refreshes one lease every third of its TTL until stopped or lost.

    `lost()` returns why the lease ended: etcd says it is gone, or etcd could not be
    reached for a whole TTL (then etcd has dropped it too, or will any moment), or
    `stop` ended the refreshing (`stopped`), so that nobody waits on it forever.
    """

    def __init__(self, lease: Lease, refresh: Callable[[Lease], Awaitable[int]], on_end: Callable[[KeepAlive], None]) -> None:
        self.lease = lease
        self._refresh = refresh
        self._on_end = on_end
        self._lost: asyncio.Future[LeaseLost] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name=f"etcd-keepalive-{lease.id:x}")

    @property
    def loss(self) -> LeaseLost | None:
        """Why the lease was lost, or None while it is held."""
        return self._lost.result() if self._lost.done() else None

    async def lost(self) -> LeaseLost:
        return await asyncio.shield(self._lost)

    async def stop(self) -> None:
        self._on_end(self)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        if not self._lost.done():
            self._lost.set_result(LeaseLost(self.lease.id, "keep-alive stopped", stopped=True))

    async def _run(self) -> None:
        try:
            await self._refresh_until_lost()
        except Exception as exc:  # the owner waits on `lost()`: it must hear of any end
            self._end(f"keep-alive failed: {exc!r}")

    async def _refresh_until_lost(self) -> None:
        deadline = time.monotonic() + self.lease.ttl
        delay = self.lease.ttl / 3
        while True:
            await asyncio.sleep(delay)
            sent = time.monotonic()
            try:
                ttl = await self._refresh(self.lease)
            except LeaseNotFound:
                self._end("etcd no longer has the lease (expired or revoked)")
                return
            except EtcdError as exc:
                if time.monotonic() >= deadline:
                    self._end(f"etcd unreachable for the whole TTL ({self.lease.ttl}s): {exc}")
                    return
                # Try again soon, but not in a busy loop while etcd is down.
                delay = min(max(self.lease.ttl / 10, 0.1), max(deadline - time.monotonic(), 0.1))
                continue
            deadline = sent + ttl
            delay = ttl / 3

    def _end(self, reason: str) -> None:
        self._on_end(self)
        if not self._lost.done():
            self._lost.set_result(LeaseLost(self.lease.id, reason))
