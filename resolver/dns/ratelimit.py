"""Per-client response rate limiting for UDP, as BIND's RRL does it: a budget per network, then slip.

UDP answers go to whatever source address a packet claims, so a forged flood can aim
our answers at a victim. With `dns.rate_limit` set, each client network (a /24 for
IPv4, a /56 for IPv6, as BIND groups them) may get that many answers a second, with
a second's worth as a burst. Past its budget, every `SLIP`-th answer goes out as a
tiny truncated reply (TC, the question, nothing else), so a real client behind a
limited network retries over TCP, which a forger cannot; the rest are dropped.

State is a fixed-size table indexed by a hash of the network: a flood from random
networks overwrites slots but never grows memory. A network whose slot was taken
starts again with a full budget, so a collision can only let a limited client through
sooner, never limit an innocent one. Python's hash of bytes is salted per process, so
a client cannot pick networks that collide on purpose.

The UDP reader calls `verdict` once per datagram only when a limit is configured;
with none the hot loop does not know this module exists.
"""

from __future__ import annotations

ANSWER = 0
DROP = 1
SLIP = 2

SLIP_EVERY = 2  # BIND's default: every second limited answer is a TC reply
TABLE_SIZE = 1 << 14  # networks tracked at once (~1 MB of lists)
IPV4_PREFIX = 3  # bytes of the address that name the client's network: /24
IPV6_PREFIX = 7  # /56


class RateLimiter:
    """Answers a second per client network, with slip; `verdict(network, now)` per datagram."""

    def __init__(self, rate: float, slip: int = SLIP_EVERY, size: int = TABLE_SIZE) -> None:
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self._rate = rate
        self._burst = max(rate, 1.0)
        self._slip = slip
        self._mask = size - 1
        assert size & self._mask == 0, "the table size is a power of two"
        self._networks: list[bytes | None] = [None] * size
        self._tokens = [0.0] * size
        self._stamps = [0.0] * size
        self._limited = [0] * size

    def verdict(self, network: bytes, now: float) -> int:
        """ANSWER, DROP or SLIP for one more answer to `network` at time `now` (seconds)."""
        slot = hash(network) & self._mask
        if self._networks[slot] != network:
            self._networks[slot] = network
            self._tokens[slot] = self._burst - 1
            self._stamps[slot] = now
            self._limited[slot] = 0
            return ANSWER
        tokens = min(self._burst, self._tokens[slot] + (now - self._stamps[slot]) * self._rate)
        self._stamps[slot] = now
        if tokens >= 1:
            self._tokens[slot] = tokens - 1
            return ANSWER
        self._tokens[slot] = tokens
        limited = self._limited[slot] = self._limited[slot] + 1
        return SLIP if limited % self._slip == 0 else DROP


def network_of(address: bytes) -> bytes | None:
    """The network a packed IPv4 or IPv6 address is limited as, or None for loopback.

    Loopback clients are never limited: they are this host's own programs, often a
    local resolver (dnsmasq, systemd-resolved) that carries every query of the host,
    and a forged loopback source cannot arrive from the network (the kernel drops it).
    """
    if len(address) == 4:
        return None if address[0] == 127 else address[:IPV4_PREFIX]
    if address == b"\x00" * 15 + b"\x01":
        return None
    return address[:IPV6_PREFIX]
