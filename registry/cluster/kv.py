"""What etcd holds and says, as our own values: leases, writes, keys read, watch events.

Pure data, and the two pure helpers on raw keys; the client (registry.cluster.etcd)
makes these from aetcd's messages, so that no aetcd type leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass

# A key longer than this is refused unread (ours are well under 300 bytes).
MAX_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted lease: `ttl` is what etcd granted, which may exceed what was asked."""

    id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class Write:
    """One put of a batch; `lease` None writes a key that outlives this daemon."""

    key: str
    value: bytes
    lease: Lease | None = None


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A key as read; `lease` is the id of the lease it was written with (0: none)."""

    key: str
    value: bytes
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Put(KeyValue):
    """A key written, as a watch reports it; `lease` tells our own writes from anyone else's."""


@dataclass(frozen=True, slots=True)
class Delete:
    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """A key or value refused unread. `key` is printable even when etcd's was not UTF-8.

    A reader holding the key should drop it: whatever it held is no longer current.
    """

    key: str
    reason: str
    mod_revision: int


WatchEvent = Put | Delete | Skipped


@dataclass(frozen=True, slots=True)
class RangeResult:
    """Every key under a prefix as it was at `revision`; watch from `revision + 1`."""

    revision: int
    items: tuple[KeyValue, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """The events of one watch response, in order; `next_revision` resumes after them."""

    events: tuple[WatchEvent, ...]
    next_revision: int


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """Why a kept-alive lease ended; unless `stopped` (we ended it), its keys are gone."""

    lease_id: int
    reason: str
    stopped: bool = False


def decode_key(raw: bytes) -> tuple[str, str | None]:
    """The key as text, and why it is refused (None when it is fine)."""
    try:
        key = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw[:MAX_KEY_BYTES].decode("utf-8", "backslashreplace"), "key is not UTF-8"
    if len(raw) > MAX_KEY_BYTES:
        return key[:MAX_KEY_BYTES], f"key is {len(raw)} bytes, over {MAX_KEY_BYTES}"
    return key, None


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (etcd's range_end)."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"
