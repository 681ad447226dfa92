"""What can go wrong talking to etcd, as types a caller can act on (retry, resync, give up).

No aetcd or gRPC type is in here: fleet mode catches these without importing the client.
"""

from __future__ import annotations

from registry.errors import RegistryError


class EtcdError(RegistryError):
    """Root of the errors this module raises."""


class BadEndpoint(EtcdError):
    """An endpoint in the config is not `host:port` or `http://host:port`."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"etcd endpoint {text!r}: {reason}")


class Unavailable(EtcdError):
    """No endpoint answered `operation` in time; `failures` says what each one tried did."""

    def __init__(self, operation: str, endpoints: tuple[str, ...], failures: tuple[str, ...]) -> None:
        self.operation = operation
        self.endpoints = endpoints
        self.failures = failures
        super().__init__(f"etcd unavailable for {operation} ({', '.join(endpoints)}): {'; '.join(failures)}")


class RequestRefused(EtcdError):
    """etcd answered and said no (too many operations, permission, a bad argument)."""

    def __init__(self, operation: str, code: str, detail: str) -> None:
        self.operation = operation
        self.code = code
        self.detail = detail
        super().__init__(f"etcd refused {operation}: {code}: {detail}")


class RangeTooLarge(EtcdError):
    """More keys under `prefix` than we agree to hold in memory."""

    def __init__(self, prefix: str, limit: int) -> None:
        self.prefix = prefix
        self.limit = limit
        super().__init__(f"more than {limit} keys under {prefix!r}")


class LeaseNotFound(EtcdError):
    """The lease expired or was revoked: keys written with it are gone."""

    def __init__(self, lease_id: int) -> None:
        self.lease_id = lease_id
        super().__init__(f"etcd lease {lease_id:x} not found (expired or revoked)")


class ValueTooLarge(EtcdError):
    """A write we were asked to make is larger than any node would accept to read."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        self.key = key
        self.size = size
        self.limit = limit
        super().__init__(f"value for {key!r} is {size} bytes, over the {limit}-byte limit")


class RevisionWentBack(EtcdError):
    """etcd is at `current`, before `expected`, a revision we already read: it lost history
    (restored from a backup, or another cluster behind the same address). What it holds
    of ours may be old, and watching from `expected` would wait for revisions that will
    never carry what happened in between: join again (republish, read, watch)."""

    def __init__(self, expected: int, current: int) -> None:
        self.expected = expected
        self.current = current
        super().__init__(f"etcd is at revision {current}, before {expected} that we already read")


class ResyncNeeded(EtcdError):
    """The watch cannot continue from where it is: read the prefix again, then watch."""


class Compacted(ResyncNeeded):
    """`requested` was compacted away; `revision` is the oldest left (None if etcd did not say)."""

    def __init__(self, requested: int, revision: int | None = None) -> None:
        self.requested = requested
        self.revision = revision
        oldest = f" (oldest is {revision})" if revision is not None else ""
        super().__init__(f"etcd revision {requested} was compacted{oldest}")


class WatchOverflow(ResyncNeeded):
    """One watch response was larger than we hold in memory (`size` None: gRPC refused it)."""

    def __init__(self, size: int | None, limit: int) -> None:
        self.size = size
        self.limit = limit
        told = f"of {size} bytes " if size is not None else ""
        super().__init__(f"a watch response {told}is over the {limit}-byte limit")
