"""DNS fuzzing against the real daemon: mutated packets over UDP and TCP, a correct query after every batch.

    python3 bench/fuzz.py [--packets 200000] [--batch 500] [--tcp-share 0.2] [--seed 9]

Runs `pilotfish serve` on ephemeral ports over a services.d with a few services (one
of 60 instances, one with long TXT meta, one on IPv6), then sends `--packets`
packets in batches of `--batch`: real queries (many names, types, EDNS sizes and
options, random 0x20 case) mutated by byte flips, cuts, insertions, repeats and
forged section counts, plus pure noise and oversized packets. A `--tcp-share` of the
batches goes over TCP, pipelined on one connection per batch, some with length
prefixes that lie. After every batch one correct query must get the correct answer
(60 SRV records over TCP, alternately over UDP the 25 A records of another service);
the run fails at the first one that does not.

It prints the daemon's RSS before (after a warm-up batch) and after, what came back
(replies by rcode, TC, packets with no reply), the daemon's WARNING-or-worse log lines,
and as its last line one JSON object for machines. Exit code 0 when every correct
query was answered correctly, the daemon is still running and nothing on the DNS
side logged a warning or a traceback, else 1.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Before this script's directory leaves the import path (below).
from benchkit import start_daemon, stop_process

# bench/dns.py and bench/http.py would shadow dnspython's `dns` and the standard
# library's `http`: drop this script's directory first.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import urllib.request  # noqa: E402

import dns.edns  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402
import psutil  # noqa: E402

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

SERVICES = {
    "big.yaml": "services:\n" + "".join(
        f"  - {{name: big, id: big-{i}, port: {9000 + i}, address: 10.1.0.{i + 1}, tags: [t{i % 3}]}}\n"
        for i in range(60)
    ),
    "mid.yaml": "services:\n" + "".join(
        f"  - {{name: mid, id: mid-{i}, port: {7000 + i}, address: 10.2.0.{i + 1}}}\n" for i in range(25)
    ),
    "meta.yaml": "name: meta\nport: 80\naddress: 10.3.0.1\nmeta: {"
    + ", ".join(f"k{i}: {'v' * 120}" for i in range(12)) + "}\n",
    "v6.yaml": "name: web\nport: 443\naddress: 'fd00::443'\n",
}
NAMES = [
    "_big._tcp.service.internal", "_big._t1.service.internal", "big.service.internal", "t2.big.service.internal",
    "mid.service.internal", "_mid._udp.service.internal", "meta.service.internal", "web.service.internal",
    "fuzz.node.internal", "0a010001.addr.internal", "internal", "service.internal", "_tcp.service.internal",
    "nosuch.service.internal", "big", "_big._tcp", "example.com", "a.b.c.d.e.f.g.internal",
]
TYPES = ["A", "AAAA", "SRV", "TXT", "SOA", "NS", "ANY", "MX", "AXFR", "CAA"]


def real_query(rng: random.Random) -> bytes:
    name = "".join(c.upper() if rng.random() < 0.3 else c for c in rng.choice(NAMES))
    kwargs: dict[str, Any] = {}
    if rng.random() < 0.6:
        kwargs = {"use_edns": 0, "payload": rng.choice([0, 512, 1232, 1400, 4096, rng.randrange(65536)]),
                  "want_dnssec": rng.random() < 0.3}
        if rng.random() < 0.2:
            kwargs["options"] = [dns.edns.GenericOption(rng.choice([10, 12, 65001]), rng.randbytes(rng.randrange(60)))]
    return dns.message.make_query(name, rng.choice(TYPES), id=rng.randrange(65536), **kwargs).to_wire()


def mutate(rng: random.Random, packet: bytes) -> bytes:
    data = bytearray(packet)
    for _ in range(rng.randrange(1, 5)):
        kind = rng.randrange(6)
        at = rng.randrange(len(data) + 1)
        if kind == 0 and at < len(data):
            data[at] = rng.randrange(256)
        elif kind == 1:
            del data[at : at + rng.randrange(1, 30)]
        elif kind == 2:
            data[at:at] = rng.randbytes(rng.randrange(1, 30))
        elif kind == 3:
            data += data[at:]
        elif kind == 4 and len(data) >= 12:
            count_at = rng.choice([4, 6, 8, 10])
            data[count_at : count_at + 2] = rng.randrange(65536).to_bytes(2, "big")
        elif len(data) >= 4:
            data[2] ^= 1 << rng.randrange(8)  # header flags: opcode, QR, RD ...
    return bytes(data)


def hostile(rng: random.Random, seeds: list[bytes]) -> bytes:
    roll = rng.random()
    if roll < 0.80:
        return mutate(rng, rng.choice(seeds))
    if roll < 0.90:
        return rng.randbytes(rng.randrange(0, 600))  # noise, some of it shorter than a header
    if roll < 0.95:
        return real_query(rng)  # well-formed, odd combinations
    return rng.randbytes(rng.randrange(4000, 9000))  # oversized


def fuzz_udp(server: tuple[str, int], packets: list[bytes], counts: collections.Counter[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sent = replies = 0
        for packet in packets:
            try:
                sock.sendto(packet, server)
            except OSError:
                counts["udp_not_sent"] += 1  # larger than a datagram may be
                continue
            sent += 1
        sock.settimeout(0.15)
        while True:
            try:
                data = sock.recv(65535)
            except TimeoutError:
                break
            replies += 1
            tally(data, counts, "udp")
        counts["udp_sent"] += sent
        counts["udp_no_reply"] += sent - replies


def fuzz_tcp(server: tuple[str, int], packets: list[bytes], rng: random.Random, counts: collections.Counter[str]) -> None:
    """Every packet pipelined on a connection, a few with a length prefix that lies.

    The server answers queries in order and closes the connection at the first packet
    it cannot answer (the framing can no longer be trusted), so after `k` replies the
    rest go out again on a new connection from packet `k + 1`: every packet is read.
    """
    framed = []
    for packet in packets:
        length = len(packet) if rng.random() > 0.02 else rng.randrange(65536)
        framed.append(struct.pack("!H", min(length, 65535)) + packet[:65535])
    counts["tcp_sent"] += len(packets)
    first = 0
    while first < len(framed):
        counts["tcp_connections"] += 1
        replies = converse(server, b"".join(framed[first:]), counts)
        counts["tcp_closed_by_server"] += first + replies < len(framed)
        first += replies + 1


def converse(server: tuple[str, int], stream: bytes, counts: collections.Counter[str]) -> int:
    """Send `stream` on a new connection and read replies until the server closes it; how many."""
    replies = 0
    with socket.create_connection(server, timeout=5) as conn:
        try:
            conn.sendall(stream)
            # The end of what we send: a length prefix that lied past it ends the connection at once.
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # closed early by the server: the rest is read on the next connection
        buffer = b""
        conn.settimeout(1.0)
        while True:
            try:
                chunk = conn.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
                size = int.from_bytes(buffer[:2], "big")
                tally(buffer[2 : 2 + size], counts, "tcp")
                buffer = buffer[2 + size :]
                replies += 1
    return replies


def tally(reply: bytes, counts: collections.Counter[str], path: str) -> None:
    counts[f"{path}_answered"] += 1
    if len(reply) < 12:
        counts[f"{path}_short_reply"] += 1
        return
    counts[f"rcode_{RCODES.get(reply[3] & 0xF, str(reply[3] & 0xF))}"] += 1
    if reply[2] & 0x02:
        counts["tc"] += 1


def server_malformed(http_url: str) -> int:
    """The daemon's own count of packets it dropped or answered FORMERR (/metrics)."""
    with urllib.request.urlopen(f"{http_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return int(float(next(line.split()[1] for line in text.splitlines()
                          if line.startswith("pilotfish_dns_malformed_total"))))


def check(server: tuple[str, int], round_number: int) -> str | None:
    """The correct query after a batch; None when answered correctly, else what was wrong."""
    try:
        if round_number % 2:
            reply = dns.query.tcp(dns.message.make_query("_big._tcp.service.internal", "SRV"), server[0],
                                  port=server[1], timeout=5)
            want = 60
        else:
            reply = dns.query.udp(dns.message.make_query("Mid.Service.Internal", "A"), server[0],
                                  port=server[1], timeout=5)
            want = 25
    except Exception as error:  # noqa: BLE001 - any failure of the check is the finding
        return repr(error)
    got = sum(len(rrset) for rrset in reply.answer)
    if reply.rcode() != dns.rcode.NOERROR or got != want:
        return f"rcode {dns.rcode.to_text(reply.rcode())}, {got} records instead of {want}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--tcp-share", type=float, default=0.2, help="share of the batches sent over TCP")
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    seeds = [real_query(rng) for _ in range(300)]
    counts: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pilotfish-fuzz-") as tmp:
        started_daemon = start_daemon(Path(tmp), "fuzz", SERVICES)
        proc, server, http_url, log_path = started_daemon.proc, started_daemon.dns, started_daemon.http_url, started_daemon.log_path
        daemon = psutil.Process(proc.pid)
        try:
            fuzz_udp(server, [hostile(rng, seeds) for _ in range(args.batch)], collections.Counter())  # warm-up
            rss_before = daemon.memory_info().rss
            malformed_before = server_malformed(http_url)
            started = time.monotonic()
            batches = (args.packets + args.batch - 1) // args.batch
            for number in range(batches):
                packets = [hostile(rng, seeds) for _ in range(min(args.batch, args.packets - number * args.batch))]
                if rng.random() < args.tcp_share:
                    fuzz_tcp(server, packets, rng, counts)
                else:
                    fuzz_udp(server, packets, counts)
                problem = check(server, number)
                counts["checks"] += 1
                if problem is not None:
                    failures.append(f"batch {number}: {problem}")
                    break
                if number % 50 == 49:
                    print(f"{(number + 1) * args.batch} packets, {time.monotonic() - started:.0f} s, "
                          f"RSS {daemon.memory_info().rss / 2**20:.1f} MiB", flush=True)
            elapsed = time.monotonic() - started
            rss_after = daemon.memory_info().rss
            malformed = server_malformed(http_url) - malformed_before
            alive = proc.poll() is None
        finally:
            stop_process(proc)
        complaints = [line for line in log_path.read_text().splitlines()
                      if '"level":"info"' not in line and '"level":"debug"' not in line]
    # The node monitor may report the host's CPU, which the fuzzing itself keeps busy;
    # what counts is anything from the DNS side or the event loop, and any traceback.
    dns_complaints = [line for line in complaints
                      if '"logger":"resolver.dns' in line or '"logger":"asyncio"' in line or '"exc"' in line]
    sent = counts["udp_sent"] + counts["tcp_sent"]
    print(f"sent {sent} packets ({counts['udp_sent']} UDP, {counts['tcp_sent']} TCP on "
          f"{counts['tcp_connections']} connections) in {elapsed:.0f} s; "
          f"answered {counts['udp_answered']} UDP, {counts['tcp_answered']} TCP; "
          f"no reply {counts['udp_no_reply']} UDP")
    dropped = malformed - counts["rcode_FORMERR"]
    print(f"the daemon counted {malformed} malformed packets: {counts['rcode_FORMERR']} answered FORMERR, "
          f"{dropped} dropped unanswered (shorter than a header, responses, over 4 KiB; over TCP each "
          f"also ends its connection)")
    print("replies by rcode: " + ", ".join(f"{k[6:]} {v}" for k, v in sorted(counts.items()) if k.startswith("rcode_"))
          + f"; TC {counts['tc']}")
    print(f"correct queries answered correctly: {counts['checks'] - len(failures)} of {counts['checks']}")
    print(f"daemon RSS before {rss_before / 2**20:.1f} MiB, after {rss_after / 2**20:.1f} MiB "
          f"({(rss_after / rss_before - 1) * 100:+.1f}%); still running: {alive}; "
          f"log lines above info: {len(complaints)}, from DNS or with a traceback: {len(dns_complaints)}")
    for line in failures + complaints[:5]:
        print("  " + line[:300])
    print(json.dumps({
        "bench": "fuzz", "sent": sent, "counts": dict(sorted(counts.items())), "seconds": round(elapsed, 1),
        "server_malformed": malformed, "server_dropped": dropped,
        "rss_before_mib": round(rss_before / 2**20, 1), "rss_after_mib": round(rss_after / 2**20, 1),
        "checks": counts["checks"], "check_failures": failures, "log_complaints": len(complaints),
        "dns_log_complaints": len(dns_complaints), "alive": alive,
    }))
    return 0 if alive and not failures and not dns_complaints else 1


if __name__ == "__main__":
    sys.exit(main())
