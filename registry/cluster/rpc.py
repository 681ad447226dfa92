"""gRPC's errors read as etcd's answers: which status code, what detail, and whether anyone answered.

Shared by the client (registry.cluster.etcd) and its watches (registry.cluster.watch),
the only modules that know aetcd and gRPC.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc


def code_of(exc: BaseException) -> Any:
    """The gRPC status code behind an aetcd or gRPC error, if there is one."""
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, grpc.aio.AioRpcError):
            return candidate.code()
    return None


def details_of(exc: BaseException) -> str:
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, grpc.aio.AioRpcError):
            return str(candidate.details() or candidate.code().name)
    return str(exc) or type(exc).__name__


# Codes that mean "this endpoint did not answer" rather than "etcd said no"; gRPC
# reports some transport failures (a reset stream, a proxy in the way) as UNKNOWN or
# INTERNAL, and another endpoint may do better.
UNREACHED = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}


def closed_under_us() -> bool:
    """True when a CancelledError just caught was not meant for the running task.

    gRPC raises CancelledError in every call still open on a channel that is closed,
    and the client closes its channel to fail over while other calls (a watch, a
    keep-alive) are in flight on it. Those calls did not reach etcd; their tasks
    were not cancelled, and must not end as if they had been.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


def unreached(exc: BaseException) -> bool:
    code = code_of(exc)
    # aetcd errors without a gRPC cause come from a closed or half-built channel.
    return code is None or code in UNREACHED
