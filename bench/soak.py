"""Soak: the real daemon under a steady mixed load for minutes, watched for drift.

    python3 bench/soak.py [--minutes 10] [--dns-qps N] [--http-rps 200] [--blocking 20]

Starts `pilotfish serve` pinned to CPU 0 over 100 services from YAML files, measures
its DNS peak with dnsperf for 5 s, then for `--minutes` runs all of this at once from
CPU 1:

- DNS at half that peak (`--dns-qps` overrides it): dnsperf, one run a minute, 50%
  SRV and 50% A questions; plus 20 probe queries a second whose latency is measured;
- HTTP lookups (`GET /v1/services/<name>`, some `/url`) at `--http-rps`;
- `--blocking` clients in blocking queries on a service that changes every second;
- 10 API registrations a second (updates of 100 ids, one in ten a delete);
- one YAML file rewritten every second (the service the blocking clients wait on).

Every minute it prints the daemon's RSS and open file descriptors, the p99 of the
DNS probes and the HTTP lookups, the counts of what was sent and of errors; the last
line is one JSON object. Targets: no errors, RSS growth under 10% from the end of the
first minute to the end, p99 flat. dnsperf is installed with apt-get if missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# Before this script's directory leaves the import path (below).
from benchkit import host_port, start_daemon

# bench/dns.py would shadow dnspython's `dns` package: drop this script's directory
# from the import path before importing it.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import aiohttp  # noqa: E402
import dns.asyncquery  # noqa: E402
import dns.message  # noqa: E402
import dns.rcode  # noqa: E402

SERVER_CPU, CLIENT_CPU = 0, 1
SERVICES = 100
DNS_PROBES_PER_SECOND = 20
REGISTRATIONS_PER_SECOND = 10
REGISTRATION_IDS = 100
PEAK_SECONDS = 5
BLOCKING_WAIT = "30s"
MINUTE = 60.0


@dataclass
class Minute:
    """What one minute of load saw."""

    http_ms: list[float] = field(default_factory=list)
    dns_ms: list[float] = field(default_factory=list)
    blocking_answers: int = 0
    registrations: int = 0
    yaml_changes: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.samples) < 5:
            self.samples.append(f"{kind}: {detail}")


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def service_yaml(name: str, port: int) -> str:
    return f"name: {name}\nport: {port}\nprotocol: http\ntags: [soak]\nmeta: {{team: bench}}\n"


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.rename(path)


def ensure_dnsperf() -> None:
    if shutil.which("dnsperf") is None:
        print("installing dnsperf with apt-get", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "dnsperf"], check=True, env=env, stdout=subprocess.DEVNULL)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def dnsperf_command(port: int, queries: Path, seconds: float, qps: float | None) -> list[str]:
    command = ["taskset", "-c", str(CLIENT_CPU), "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries),
               "-l", str(seconds), "-c", "4", "-q", "200", "-t", "2"]
    return command + (["-Q", str(int(qps))] if qps else [])


def dnsperf_figures(out: str) -> dict[str, float]:
    figures = {}
    for label, key in (("Queries sent", "sent"), ("Queries completed", "completed"), ("Queries lost", "lost"),
                       ("Queries per second", "qps")):
        match = re.search(rf"{label}:\s+([\d.]+)", out)
        figures[key] = float(match.group(1)) if match else float("nan")
    bad = re.findall(r"(SERVFAIL|REFUSED|FORMERR|NOTIMP) (\d+)", out)
    figures["bad_rcodes"] = float(sum(int(count) for _, count in bad))
    return figures


async def http_lookups(session: aiohttp.ClientSession, base: str, rps: float, minute: list[Minute], stop: float) -> None:
    loop = asyncio.get_running_loop()
    n = 0
    started = loop.time()

    async def one(path: str) -> None:
        sent = loop.time()
        try:
            async with session.get(base + path) as response:
                await response.read()
                if response.status != 200:
                    minute[-1].error("http_lookup", f"{path}: {response.status}")
                    return
        except Exception as exc:  # every failure is a finding of the soak, counted
            minute[-1].error("http_lookup", f"{path}: {exc!r}")
            return
        minute[-1].http_ms.append((loop.time() - sent) * 1000)

    pending: set[asyncio.Task[None]] = set()
    while loop.time() < stop:
        n += 1
        path = f"/v1/services/svc{n % SERVICES}" + ("/url?strategy=round_robin" if n % 10 == 0 else "")
        task = asyncio.create_task(one(path))
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(max(0.0, started + n / rps - loop.time()))
    await asyncio.gather(*pending)


async def blocking_client(session: aiohttp.ClientSession, base: str, minute: list[Minute], stop: float) -> None:
    loop = asyncio.get_running_loop()
    index = 0
    while loop.time() < stop:
        try:
            async with session.get(f"{base}/v1/services/churn?index={index}&wait={BLOCKING_WAIT}") as response:
                await response.read()
                if response.status != 200:
                    minute[-1].error("blocking", str(response.status))
                    await asyncio.sleep(1)
                    continue
                index = int(response.headers["X-Pilotfish-Index"])
                minute[-1].blocking_answers += 1
        except Exception as exc:  # counted, then the client carries on as a real one would
            minute[-1].error("blocking", repr(exc))
            await asyncio.sleep(1)


async def registrations(session: aiohttp.ClientSession, base: str, minute: list[Minute], stop: float) -> None:
    loop = asyncio.get_running_loop()
    n = 0
    started = loop.time()
    while loop.time() < stop:
        slot = n % REGISTRATION_IDS
        try:
            if n % 10 == 9:
                async with session.delete(f"{base}/v1/services/reg-{slot}") as response:
                    await response.read()
                    ok = response.status in (200, 404)  # 404: that id was deleted before and not yet back
            else:
                body = {"name": "reg", "id": f"reg-{slot}", "port": 20000 + slot, "meta": {"generation": str(n)}}
                async with session.post(f"{base}/v1/services", json=body) as response:
                    await response.read()
                    ok = response.status in (200, 201)
            if ok:
                minute[-1].registrations += 1
            else:
                minute[-1].error("registration", str(response.status))
        except Exception as exc:  # counted like any other failure
            minute[-1].error("registration", repr(exc))
        n += 1
        await asyncio.sleep(max(0.0, started + n / REGISTRATIONS_PER_SECOND - loop.time()))


async def yaml_changes(services: Path, minute: list[Minute], stop: float) -> None:
    loop = asyncio.get_running_loop()
    n = 0
    while loop.time() < stop:
        n += 1
        write_atomically(services / "churn.yaml", service_yaml("churn", 7000 + n % 2))
        minute[-1].yaml_changes += 1
        await asyncio.sleep(1)


async def dns_probes(address: tuple[str, int], minute: list[Minute], stop: float) -> None:
    loop = asyncio.get_running_loop()
    n = 0
    started = loop.time()
    while loop.time() < stop:
        n += 1
        question = dns.message.make_query(f"_svc{n % SERVICES}._tcp.service.internal", "SRV")
        sent = loop.time()
        try:
            reply = await dns.asyncquery.udp(question, address[0], port=address[1], timeout=1)
            if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
                minute[-1].error("dns_probe", dns.rcode.to_text(reply.rcode()))
            else:
                minute[-1].dns_ms.append((loop.time() - sent) * 1000)
        except Exception as exc:  # a lost or late answer is an error of the soak
            minute[-1].error("dns_probe", repr(exc))
        await asyncio.sleep(max(0.0, started + n / DNS_PROBES_PER_SECOND - loop.time()))


async def soak(args: argparse.Namespace, pid: int, bound: dict[str, list[str]], services: Path, queries: Path,
               qps: float) -> list[dict[str, object]]:
    loop = asyncio.get_running_loop()
    base = "http://" + bound["http"][0]
    dns_address = host_port(bound["dns_udp"][0])
    stop = loop.time() + args.minutes * MINUTE
    minutes = [Minute()]
    rows: list[dict[str, object]] = []
    connector = aiohttp.TCPConnector(limit=args.blocking + 64)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        load = [
            asyncio.create_task(http_lookups(session, base, args.http_rps, minutes, stop)),
            asyncio.create_task(registrations(session, base, minutes, stop)),
            asyncio.create_task(yaml_changes(services, minutes, stop)),
            asyncio.create_task(dns_probes(dns_address, minutes, stop)),
            *(asyncio.create_task(blocking_client(session, base, minutes, stop)) for _ in range(args.blocking)),
        ]
        for number in range(1, args.minutes + 1):
            dnsperf = await asyncio.create_subprocess_exec(
                *dnsperf_command(dns_address[1], queries, MINUTE, qps),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await dnsperf.communicate()
            done, minutes[-1] = minutes[-1], Minute()
            perf = dnsperf_figures(out.decode())
            if perf["lost"] or perf["bad_rcodes"]:
                done.error("dnsperf", f"lost {perf['lost']:.0f}, bad rcodes {perf['bad_rcodes']:.0f}")
            row = {
                "minute": number, "rss_mb": round(rss_mb(pid), 1), "fds": open_fds(pid),
                "dns_qps": round(perf["qps"]), "dns_lost": int(perf["lost"]),
                "dns_p99_ms": round(p99(done.dns_ms), 2), "http_p99_ms": round(p99(done.http_ms), 2),
                "http_lookups": len(done.http_ms), "blocking_answers": done.blocking_answers,
                "registrations": done.registrations, "yaml_changes": done.yaml_changes,
                "errors": sum(done.errors.values()),
            }
            rows.append(row)
            print(f"minute {number}: RSS {row['rss_mb']} MB, {row['fds']} fds; DNS {row['dns_qps']:,} q/s "
                  f"(lost {row['dns_lost']}), probe p99 {row['dns_p99_ms']} ms; HTTP {row['http_lookups']} lookups, "
                  f"p99 {row['http_p99_ms']} ms; {row['blocking_answers']} blocking answers, "
                  f"{row['registrations']} registrations, {row['yaml_changes']} YAML changes; "
                  f"errors {row['errors']} {done.errors or ''}", flush=True)
            for sample in done.samples:
                print(f"    {sample}", flush=True)
        await asyncio.gather(*load)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--dns-qps", type=float, default=None, help="DNS load (default: half the measured peak)")
    parser.add_argument("--http-rps", type=float, default=200, help="HTTP lookups per second")
    parser.add_argument("--blocking", type=int, default=20, help="clients in blocking queries")
    args = parser.parse_args()
    ensure_dnsperf()
    import uvloop

    os.sched_setaffinity(0, {CLIENT_CPU})
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        queries = home / "queries.txt"
        names = [f"svc{n}" for n in range(SERVICES)] + ["churn"]
        queries.write_text("".join(f"_{name}._tcp.service.internal SRV\n{name}.service.internal A\n" for name in names))
        files = {f"svc{n}.yaml": service_yaml(f"svc{n}", 8000 + n) for n in range(SERVICES)}
        files["churn.yaml"] = service_yaml("churn", 7000)
        # node_health at 100%: a busy CPU 0 must not turn the node degraded mid-soak.
        daemon = start_daemon(home, "soak", files, "node_health: {cpu: 100, memory: 100, disk: 100}\n",
                              ["taskset", "-c", str(SERVER_CPU)], within=60)
        proc, bound, services = daemon.proc, daemon.bound, daemon.services
        try:
            port = host_port(bound["dns_udp"][0])[1]
            peak_out = subprocess.run(dnsperf_command(port, queries, PEAK_SECONDS, None), check=True,
                                      capture_output=True, text=True).stdout
            peak = dnsperf_figures(peak_out)["qps"]
            qps = args.dns_qps or peak / 2
            print(f"DNS peak {peak:,.0f} q/s over {PEAK_SECONDS} s; soaking at {qps:,.0f} q/s for {args.minutes} min, "
                  f"{args.http_rps:g} HTTP lookups/s, {args.blocking} blocking clients, "
                  f"{REGISTRATIONS_PER_SECOND} registrations/s, 1 YAML change/s", flush=True)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                rows = runner.run(soak(args, proc.pid, bound, services, queries, qps))
            alive = proc.poll() is None
        finally:
            proc.terminate()
            proc.wait(20)
        log_errors = [line for line in (home / "pilotfish.log").read_text().splitlines()
                      if '"level":"error"' in line or "Traceback" in line]
    first, last = rows[0], rows[-1]
    growth = (float(last["rss_mb"]) - float(first["rss_mb"])) / float(first["rss_mb"])  # type: ignore[arg-type]
    errors = sum(int(row["errors"]) for row in rows) + len(log_errors) + (0 if alive else 1)  # type: ignore[call-overload]
    print(f"RSS {first['rss_mb']} -> {last['rss_mb']} MB ({growth:+.1%}, target < 10%); "
          f"fds {first['fds']} -> {last['fds']}; errors {errors} (target 0; {len(log_errors)} error lines in the "
          f"daemon's log); HTTP p99 by minute {[row['http_p99_ms'] for row in rows]} ms; "
          f"DNS p99 by minute {[row['dns_p99_ms'] for row in rows]} ms")
    for line in log_errors[:5]:
        print(f"    log: {line[:300]}")
    print(json.dumps({
        "bench": "soak", "minutes": args.minutes, "dns_peak_qps": round(peak), "dns_qps": round(qps),
        "http_rps": args.http_rps, "blocking": args.blocking, "errors": errors, "rss_growth": round(growth, 4),
        "rss_mb": [row["rss_mb"] for row in rows], "fds": [row["fds"] for row in rows],
        "dns_p99_ms": [row["dns_p99_ms"] for row in rows], "http_p99_ms": [row["http_p99_ms"] for row in rows],
    }))


if __name__ == "__main__":
    main()
