"""Names outside the zone: relayed to upstream resolvers, only for clients that may recurse.

Upstreams are real DnsServers (or a loud fake) on 127.0.0.1 port 0; see tests/dnskit.py.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rrset

from conftest import bound_socket, free_port
from dnskit import TIMEOUT, DnsLoop, instance, new_catalog, outside_address, records, serve
from resolver.dns.answers import BareNames


def test_recursors_forward_names_outside_the_zone(tmp_path: Path, loop_thread: DnsLoop) -> None:
    (tmp_path / "up").mkdir()
    upstream_catalog = new_catalog(tmp_path / "up", domain="upstream",
                                   instances=[instance("api-80", "api", "192.0.2.7", 80)])
    upstream = serve(loop_thread, upstream_catalog)
    catalog = new_catalog(tmp_path)
    # The first recursor is dead: the next one answers.
    dead_port = free_port(socket.SOCK_DGRAM)
    served = serve(loop_thread, catalog, recursors=(f"127.0.0.1:{dead_port}", f"127.0.0.1:{upstream.port}"))
    try:
        for ask in (served.udp, served.tcp):
            reply = ask("api.service.upstream", "A")
            assert reply.rcode() == dns.rcode.NOERROR
            assert records(reply.answer, "A") == ["192.0.2.7"]
            assert ask("nosuch.service.upstream", "A").rcode() == dns.rcode.NXDOMAIN
            # Our own zone is still answered by us, with recursion now available.
            own = ask("redis.service.internal", "A")
            assert records(own.answer, "A") == ["10.0.0.1", "10.0.0.2"] and own.flags & dns.flags.RA
        assert served.server.stats.queries[("A", "NXDOMAIN")] == 2
    finally:
        loop_thread.run(served.server.stop())
        loop_thread.run(upstream.server.stop())
        catalog.store.close()
        upstream_catalog.store.close()


def test_servfail_when_no_recursor_answers(tmp_path: Path, loop_thread: DnsLoop) -> None:
    dead_port = free_port(socket.SOCK_DGRAM)
    catalog = new_catalog(tmp_path)
    served = serve(loop_thread, catalog, recursors=(f"127.0.0.1:{dead_port}",))
    try:
        for ask in (served.udp, served.tcp):
            reply = ask("example.com", "A")
            assert reply.rcode() == dns.rcode.SERVFAIL and reply.flags & dns.flags.RA
        assert served.server.stats.queries[("A", "SERVFAIL")] == 2
    finally:
        loop_thread.run(served.server.stop())
        catalog.store.close()


def test_only_loopback_and_allowed_networks_may_recurse(tmp_path: Path, loop_thread: DnsLoop) -> None:
    """Issue 9, row 11: any client could have us forward; now loopback and `dns.recursion_allow` only."""
    here = outside_address()
    (tmp_path / "up").mkdir()
    upstream_catalog = new_catalog(tmp_path / "up", domain="upstream",
                                   instances=[instance("api-80", "api", "192.0.2.7", 80)])
    upstream = serve(loop_thread, upstream_catalog)
    catalog = new_catalog(tmp_path)
    recursors = (f"127.0.0.1:{upstream.port}",)
    closed = serve(loop_thread, catalog, listen=(f"{here}:0", "127.0.0.1:0"), recursors=recursors)
    allowing = serve(loop_thread, catalog, listen=(f"{here}:0",), recursors=recursors,
                     recursion_allow=[f"{here}/32"])
    try:
        outside, loopback = (b.port for b in closed.server.bound_udp)
        for send in (dns.query.udp, dns.query.tcp):
            def ask(name: str, port: int, source: str) -> dns.message.Message:
                return send(dns.message.make_query(name, "A"), source, port=port, timeout=TIMEOUT, source=source)

            refused = ask("api.service.upstream", outside, here)
            assert refused.rcode() == dns.rcode.REFUSED and refused.answer == []
            assert records(ask("redis.service.internal", outside, here).answer, "A") == ["10.0.0.1", "10.0.0.2"]
            assert records(ask("api.service.upstream", loopback, "127.0.0.1").answer, "A") == ["192.0.2.7"]
            allowed = allowing.server.bound_udp[0].port
            assert records(ask("api.service.upstream", allowed, here).answer, "A") == ["192.0.2.7"]
        assert closed.server.stats.recursion_refused == 2
    finally:
        for running in (closed, allowing, upstream):
            loop_thread.run(running.server.stop())
        catalog.store.close()
        upstream_catalog.store.close()


class LoudUpstream:
    """An upstream resolver that answers every UDP query with some 3,000 bytes (one big TXT)."""

    def __init__(self) -> None:
        self.sock = bound_socket(socket.SOCK_DGRAM)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="loud-upstream")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "TXT",
                                                    *[f'"{i:03} {"x" * 246}"' for i in range(12)]))
            self.sock.sendto(reply.to_wire(max_size=65535), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_forwarded_udp_replies_are_clamped_to_the_clients_size(tmp_path: Path, loop_thread: DnsLoop) -> None:
    """Issue 9, row 11: an upstream's large reply must not go out through us to a small-buffer client."""
    upstream = LoudUpstream()
    catalog = new_catalog(tmp_path)
    served = serve(loop_thread, catalog, recursors=(f"127.0.0.1:{upstream.port}",))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            cases: list[tuple[dict[str, Any], int]] = [({}, 512), ({"use_edns": 0, "payload": 4096}, 1232)]
            for kwargs, limit in cases:
                sock.sendto(dns.message.make_query("example.com", "TXT", **kwargs).to_wire(), (served.host, served.port))
                data = sock.recv(65535)
                assert len(data) <= limit
                reply = dns.message.from_wire(data)
                assert reply.flags & dns.flags.TC and reply.question[0].name.to_text() == "example.com."
    finally:
        loop_thread.run(served.server.stop())
        catalog.store.close()
        upstream.close()


def test_bare_names_shadow_real_names_unless_dns_bare_names_says_otherwise(tmp_path: Path, loop_thread: DnsLoop) -> None:
    """`app` registered here answers bare `app` (all), or leaves it to the recursors (srv, off)."""
    (tmp_path / "up").mkdir()
    # The upstream answers the bare names `app` and `other` (it is a pilotfish too, bare_names: all).
    upstream_catalog = new_catalog(tmp_path / "up", domain="upstream", instances=[
        instance("app-80", "app", "192.0.2.7", 80), instance("other-80", "other", "192.0.2.8", 80),
    ])
    upstream = serve(loop_thread, upstream_catalog)
    catalog = new_catalog(tmp_path, instances=[instance("app-80", "app", "10.0.0.9", 80)])
    recursors = (f"127.0.0.1:{upstream.port}",)
    servers = {bare: serve(loop_thread, catalog, recursors=recursors, bare_names=bare) for bare in BareNames}
    alone = serve(loop_thread, catalog, bare_names=BareNames.OFF)
    try:
        for ask in ("udp", "tcp"):
            def addresses(bare: BareNames, name: str, rdtype: str = "A") -> list[str]:
                reply = getattr(servers[bare], ask)(name, rdtype)
                return records(reply.answer, rdtype)

            assert addresses(BareNames.ALL, "app") == ["10.0.0.9"]  # ours shadows the real `app`
            assert addresses(BareNames.SRV, "app") == ["192.0.2.7"]
            assert addresses(BareNames.OFF, "app") == ["192.0.2.7"]
            assert addresses(BareNames.SRV, "_app._tcp", "SRV") == ["1 100 80 0a000009.addr.internal."]
            assert addresses(BareNames.OFF, "_app._tcp", "SRV") == ["1 100 80 c0000207.addr.upstream."]
            # A bare name we do not serve was forwarded all along.
            for bare in BareNames:
                assert addresses(bare, "other") == ["192.0.2.8"]
            # Under the domain, every mode answers.
            assert addresses(BareNames.OFF, "app.service.internal") == ["10.0.0.9"]
            # Without recursors a bare name that is not ours is outside the zone: REFUSED.
            reply = getattr(alone, ask)("app", "A")
            assert reply.rcode() == dns.rcode.REFUSED and reply.answer == []
    finally:
        for served in [*servers.values(), alone, upstream]:
            loop_thread.run(served.server.stop())
        catalog.store.close()
        upstream_catalog.store.close()
