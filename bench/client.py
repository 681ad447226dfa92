"""Client library benchmark: what the cache saves, and what a fallback to DNS costs.

    python3 bench/client.py [--seconds 3]

Runs the real daemon (`python -m resolver.cli serve`) on ephemeral ports with one
service of three instances, then measures, with the blocking `Discovery`:

- cached `url()` calls per second (a fresh cache entry: no request), against
  uncached `url()` calls per second (cache_ttl=0: one HTTP lookup each, a new
  loopback connection per request), and the same pair for `AsyncDiscovery`;
- the latency of one lookup by each path: uncached from the daemon; falling back to
  DNS SRV when the HTTP port refuses (the attempt, then DNS); and falling back to
  DNS with the circuit breaker open (DNS only). "Added latency" is the fallback's
  median minus the uncached daemon lookup's median.

The client and the daemon share the machine's cores; the last line printed is one
JSON object for machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

# Before this script's directory leaves the import path (below).
from benchkit import REPO, start_daemon, stop_process

# bench/dns.py would shadow dnspython's `dns` package: drop this script's directory
# from the import path before importing anything that needs it.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
sys.path.insert(0, str(REPO))

from resolver.client import AsyncDiscovery, Discovery, Source  # noqa: E402

SERVICE = (
    "services:\n"
    "  - {name: api, id: api-1, port: 9001, protocol: http}\n"
    "  - {name: api, id: api-2, port: 9002, protocol: http}\n"
    "  - {name: api, id: api-3, port: 9003, protocol: http}\n"
)


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rate(call: Callable[[], object], seconds: float) -> float:
    """Calls per second of `call`, in batches, for about `seconds`."""
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            call()
        done += 100
    return done / elapsed


async def async_rate(client: AsyncDiscovery, seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            await client.url("api")
        done += 100
    return done / elapsed


def latencies_ms(call: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def measure(http_url: str, dns_address: str, seconds: float) -> dict[str, float]:
    cached = Discovery(http_url, cache_ttl=3600, dns=dns_address)
    uncached = Discovery(http_url, cache_ttl=0, dns=dns_address)
    assert cached.url("api").source is Source.DAEMON and uncached.url("api").source is Source.DAEMON
    figures = {"cached_url_per_s": rate(lambda: cached.url("api"), seconds),
               "uncached_url_per_s": rate(lambda: uncached.url("api"), seconds)}

    async def async_figures() -> tuple[float, float]:
        warm = AsyncDiscovery(http_url, cache_ttl=3600)
        cold = AsyncDiscovery(http_url, cache_ttl=0)
        await warm.url("api")
        return await async_rate(warm, seconds), await async_rate(cold, seconds)

    figures["async_cached_url_per_s"], figures["async_uncached_url_per_s"] = asyncio.run(async_figures())

    # Every call tries HTTP (refused at once) then asks DNS: a breaker that never opens.
    refused = Discovery(f"http://127.0.0.1:{dead_port()}", cache_ttl=0, dns=dns_address, breaker_failures=10**9)
    # The default breaker opens after 3 failures, and then DNS alone answers.
    broken = Discovery(f"http://127.0.0.1:{dead_port()}", cache_ttl=0, dns=dns_address, breaker_cooldown=3600)
    assert refused.url("api").source is Source.DNS and broken.url("api").source is Source.DNS
    for _ in range(3):
        broken.url("api")
    assert broken.stats().breaker == "open"
    count = 2000
    daemon_ms = latencies_ms(lambda: uncached.url("api"), count)
    refused_ms = latencies_ms(lambda: refused.url("api"), count)
    broken_ms = latencies_ms(lambda: broken.url("api"), count)
    for name, samples in (("daemon", daemon_ms), ("dns_after_refused", refused_ms), ("dns_breaker_open", broken_ms)):
        figures[f"{name}_p50_ms"] = percentile(samples, 0.5)
        figures[f"{name}_p99_ms"] = percentile(samples, 0.99)
    figures["ratio"] = figures["cached_url_per_s"] / figures["uncached_url_per_s"]
    figures["async_ratio"] = figures["async_cached_url_per_s"] / figures["async_uncached_url_per_s"]
    figures["dns_added_ms"] = figures["dns_after_refused_p50_ms"] - figures["daemon_p50_ms"]
    figures["dns_breaker_open_added_ms"] = figures["dns_breaker_open_p50_ms"] - figures["daemon_p50_ms"]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per calls-per-second figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pilotfish-bench-") as tmp:
        daemon = start_daemon(Path(tmp), "bench", {"api.yaml": SERVICE})
        try:
            f = measure(daemon.http_url, daemon.bound["dns_udp"][0], args.seconds)
        finally:
            stop_process(daemon.proc)
    print(f"url(), blocking: cached {f['cached_url_per_s']:,.0f}/s, uncached {f['uncached_url_per_s']:,.0f}/s, "
          f"ratio {f['ratio']:.0f}x (target >= 20x)")
    print(f"url(), asyncio:  cached {f['async_cached_url_per_s']:,.0f}/s, uncached {f['async_uncached_url_per_s']:,.0f}/s, "
          f"ratio {f['async_ratio']:.0f}x")
    for name, label in (("daemon", "uncached, from the daemon"), ("dns_after_refused", "DNS after a refused HTTP try"),
                        ("dns_breaker_open", "DNS, breaker open")):
        print(f"one lookup, {label}: p50 {f[name + '_p50_ms']:.3f} ms, p99 {f[name + '_p99_ms']:.3f} ms")
    print(f"added by falling back to DNS: {f['dns_added_ms']:+.3f} ms (breaker open: {f['dns_breaker_open_added_ms']:+.3f} ms)")
    print(json.dumps({"bench": "client", **{k: round(v, 3) for k, v in f.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
