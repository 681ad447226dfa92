"""The I/O a plan asks of its transport, and what comes back.

The core is written as generators ("plans") that yield an `HttpCall` or a `DnsCall`
and are sent the reply; the sync and asyncio flavours differ only in how they carry
a step out (a blocking socket, or an awaited stream) before sending its reply back.
Everything else (what to ask, how to read it, the cache, the fallback chain, the
breaker) exists once. A transport never raises: any trouble on the wire comes back
as a `Failure` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, TypeVar, Union

import dns.message

from resolver.client.http_wire import BaseUrl, HttpResponse

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HttpCall:
    base: BaseUrl
    payload: bytes  # the whole request, as http_wire.encode_request built it
    timeout: float  # for the whole exchange, from connect to the last byte
    max_body: int


@dataclass(frozen=True, slots=True)
class DnsCall:
    message: dns.message.Message
    host: str
    port: int
    timeout: float  # per attempt: UDP, then TCP when the UDP answer was truncated


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str


Step = Union[HttpCall, DnsCall]
Reply = Union[HttpResponse, dns.message.Message, Failure]
Plan = Generator[Step, Reply, T]
