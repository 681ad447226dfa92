"""Fleet mode end to end: real daemons sharing one real etcd, answering for each other.

Each daemon is `pilotfish serve` as a user runs it, with its own node name and node
address (127.0.0.51, .52, .53: what it publishes; its listeners stay on 127.0.0.1
port 0). Leases are short so that what waits on them stays fast. Deadlines carry
slack for a shared, loaded machine; the figures themselves are bench/cluster.py's.
"""

from __future__ import annotations

import signal
import time
from typing import Any, Callable

import dns.rcode
import dns.rdatatype
import pytest
import yaml

from conftest import wait_for
from daemonkit import Daemon, DaemonFactory
from etcdkit import EtcdFactory, EtcdServer, TcpRelay

DOMAIN = "internal"
LEASE = 2  # seconds
# The machine is shared with other suites: what the design promises within 1 s gets this more.
SLACK = 4.0
WEB = "name: web\nport: 8080\nprotocol: http\n"


def fleet_config(node: str, n: int, endpoint: str, prefix: str, **extra: Any) -> dict[str, Any]:
    cluster = {"etcd": [endpoint], "prefix": prefix, "lease_ttl": f"{LEASE}s", **extra.pop("cluster", {})}
    return {"node": node, "address": f"127.0.0.{51 + n}", "cluster": cluster, **extra}


def start_fleet(start_daemon: DaemonFactory, endpoints: list[str], prefix: str = "/pilotfish/",
                **extra: Any) -> list[Daemon]:
    daemons = [
        start_daemon(config=fleet_config(name, n, endpoint, prefix, **extra), name=name, token="t")
        for n, (name, endpoint) in enumerate(zip("abc", endpoints))
    ]
    for daemon in daemons:
        wait_for(lambda: daemon.status()["cluster"]["state"] == "synced", 10, f"{daemon} to join")
    return daemons


def addresses(daemon: Daemon, name: str, rdtype: str = "A") -> list[str]:
    reply = daemon.query(name, rdtype)
    return sorted(rr.address for rrset in reply.answer for rr in rrset if rrset.rdtype == dns.rdatatype.from_text(rdtype))


def srv(daemon: Daemon, name: str) -> list[tuple[str, int]]:
    reply = daemon.query(name, "SRV")
    return sorted(
        (rr.target.to_text(), rr.port) for rrset in reply.answer for rr in rrset if rrset.rdtype == dns.rdatatype.SRV
    )


def within(seconds: float, probe: Callable[[], Any], what: str) -> float:
    """Wait for `probe`; how long it took."""
    started = time.monotonic()
    wait_for(probe, seconds, what)
    return time.monotonic() - started


def test_a_drop_on_one_daemon_is_answered_by_the_other_two(start_daemon: DaemonFactory, etcd: EtcdServer) -> None:
    a, b, c = start_fleet(start_daemon, [etcd.endpoint] * 3, "/t/drop/")
    (a.services_dir / "web.yaml").write_text(WEB)
    for other in (b, c):
        within(1 + SLACK, lambda: srv(other, "_web._tcp.service.internal") == [("a.node.internal.", 8080)],
               "the SRV answer elsewhere")
        assert addresses(other, "web.service.internal") == ["127.0.0.51"]
        assert addresses(other, "a.node.internal") == ["127.0.0.51"]  # the SRV target resolves
        (instance,) = other.get("/v1/services/web")
        assert (instance["node"], instance["source"], instance["status"]) == ("a", "cluster", "passing")
    # Each daemon answers for the whole fleet, and knows which is its own.
    (c.services_dir / "web.yaml").write_text("name: web\nport: 9090\n")
    wait_for(lambda: srv(b, "_web._tcp.service.internal") == [("a.node.internal.", 8080), ("c.node.internal.", 9090)],
             1 + SLACK, "both instances on b")
    assert b.status()["cluster"]["nodes"] == 2 and b.status()["cluster"]["instances"] == 2
    # Removing the file removes it everywhere.
    (a.services_dir / "web.yaml").unlink()
    wait_for(lambda: srv(b, "_web._tcp.service.internal") == [("c.node.internal.", 9090)], 1 + SLACK, "a's gone on b")


def test_a_killed_daemon_vanishes_with_its_lease_and_a_stopped_one_at_once(
    start_daemon: DaemonFactory, etcd: EtcdServer
) -> None:
    a, b, c = start_fleet(start_daemon, [etcd.endpoint] * 3, "/t/kill/")
    (a.services_dir / "web.yaml").write_text(WEB)
    (b.services_dir / "web.yaml").write_text("name: web\nport: 8081\n")
    wait_for(lambda: len(srv(c, "_web._tcp.service.internal")) == 2, 1 + SLACK, "both on c")
    a.signal(signal.SIGKILL)
    took = within(LEASE + 1 + SLACK, lambda: srv(c, "_web._tcp.service.internal") == [("b.node.internal.", 8081)],
                  "a's instances gone after its lease")
    assert took > LEASE / 2  # they went with the lease, not at once: nobody revoked it
    wait_for(lambda: addresses(c, "a.node.internal") == [], 1, "a's node record gone")
    b.stop()
    took = within(1 + SLACK, lambda: c.query("_web._tcp.service.internal", "SRV").rcode() == dns.rcode.NXDOMAIN,
                  "b's instances gone at once")
    assert took < LEASE  # the lease was revoked: nothing waited for it to run out


def test_etcd_down_longer_than_the_lease_then_back(start_daemon: DaemonFactory, start_etcd: EtcdFactory) -> None:
    server = start_etcd()
    a, b, c = start_fleet(start_daemon, [server.endpoint] * 3)
    (a.services_dir / "web.yaml").write_text(WEB)
    (b.services_dir / "old.yaml").write_text("name: old\nport: 7000\n")
    wait_for(lambda: srv(c, "_web._tcp.service.internal") and srv(c, "_old._tcp.service.internal"), 1 + SLACK, "c")
    server.kill()
    for daemon in (a, b, c):
        wait_for(lambda: daemon.status()["cluster"]["state"] == "stale", 1 + SLACK, "stale")
    time.sleep(LEASE + 1)  # past the lease: every keep-alive has given up by now
    for daemon in (a, b, c):
        status = daemon.status()["cluster"]
        assert status["state"] == "stale" and status["since"] < time.time() and status["revision"] > 0
        metrics = daemon.text("/metrics")
        assert "pilotfish_cluster_stale 1.0" in metrics and "pilotfish_cluster_foreign_writes_total 0.0" in metrics
    # Every daemon still answers what it had, its own and the fleet's.
    assert srv(c, "_web._tcp.service.internal") == [("a.node.internal.", 8080)]
    assert srv(a, "_old._tcp.service.internal") == [("b.node.internal.", 7000)]
    # Local changes go on: a drop on c answers on c at once, and b's removal is b's own business.
    (c.services_dir / "new.yaml").write_text("name: new\nport: 7001\n")
    (b.services_dir / "old.yaml").unlink()
    wait_for(lambda: srv(c, "_new._tcp.service.internal") == [("c.node.internal.", 7001)], 1 + SLACK, "local drop on c")
    wait_for(lambda: not srv(b, "_old._tcp.service.internal"), 1 + SLACK, "local removal on b")
    server.start()
    restarted = time.monotonic()

    def converged() -> bool:
        return all(
            srv(d, "_new._tcp.service.internal") == [("c.node.internal.", 7001)]
            and not srv(d, "_old._tcp.service.internal")
            and srv(d, "_web._tcp.service.internal") == [("a.node.internal.", 8080)]
            and d.status()["cluster"]["state"] == "synced"
            for d in (a, b, c)
        )

    wait_for(converged, 5 + SLACK, "the fleet to converge")
    assert time.monotonic() - restarted < 5 + SLACK
    assert "pilotfish_cluster_stale 0.0" in a.text("/metrics")


def test_a_rule_added_on_one_daemon_refuses_a_registration_on_another(
    start_daemon: DaemonFactory, etcd: EtcdServer
) -> None:
    a, b = start_fleet(start_daemon, [etcd.endpoint] * 2, "/t/rules/")
    added = a.write("POST", "/v1/conflicts", {"a": "memcached", "b": "varnish", "type": "port", "reason": "both 11211"})
    assert added.status == 201 and added.body["id"] == "memcached+varnish" and added.body["source"] == "cluster"
    wait_for(lambda: any(r["id"] == "memcached+varnish" for r in b.get("/v1/conflicts")["rules"]), 1 + SLACK, "on b")
    assert b.write("POST", "/v1/services", {"name": "memcached", "port": 11211}).status == 201
    refused = b.write("POST", "/v1/services", {"name": "varnish", "port": 6081})
    assert refused.status == 409 and refused.body["error"]["rule"]["id"] == "memcached+varnish"
    # Rules still judge one node: a's varnish is fine next to b's memcached.
    assert a.write("POST", "/v1/services", {"name": "varnish", "port": 6081}).status == 201
    # Deleted on b (either order names it), gone on a.
    assert b.write("DELETE", "/v1/conflicts/varnish+memcached").status == 200
    wait_for(lambda: all(r["id"] != "memcached+varnish" for r in a.get("/v1/conflicts")["rules"]), 1 + SLACK, "gone")
    assert a.write("DELETE", "/v1/conflicts/memcached+varnish").status == 404
    # Config: global on a, per node on b, each read anywhere with the node -> global fallback.
    assert a.write("PUT", "/v1/config/pool", {"value": "8", "value_type": "int"}).status == 200
    assert b.write("PUT", "/v1/nodes/a/config/pool", {"value": "16", "value_type": "int"}).status == 200

    def value(daemon: Daemon, path: str) -> Any:
        reply = daemon.request("GET", path)
        return (reply.body["value"], reply.body["scope"]) if reply.status == 200 else None

    wait_for(lambda: value(b, "/v1/nodes/b/config/pool") == (8, "global"), 1 + SLACK, "the global value on b")
    wait_for(lambda: value(a, "/v1/nodes/a/config/pool") == (16, "node"), 1 + SLACK, "a's own value on a")
    assert a.get("/v1/nodes/a/config")["config"]["pool"]["value"] == 16
    assert b.write("DELETE", "/v1/nodes/a/config/pool").status == 200
    wait_for(lambda: value(a, "/v1/nodes/a/config/pool") == (8, "global"), 1 + SLACK, "back to the global value")
    # Names etcd cannot hold are refused before anything is written.
    assert a.write("PUT", "/v1/config/bad,key", {"value": "x"}).status == 400


def test_a_compaction_while_a_daemon_is_cut_off_forces_a_full_resync(
    start_daemon: DaemonFactory, start_etcd: EtcdFactory, etcd_relay: Callable[[EtcdServer], TcpRelay]
) -> None:
    server = start_etcd()
    relay = etcd_relay(server)
    # b reaches etcd through a relay the test cuts; its lease outlives the cut.
    a, b = start_fleet(start_daemon, [server.endpoint, relay.endpoint], cluster={"lease_ttl": "10s"})
    (a.services_dir / "web.yaml").write_text(WEB)
    (a.services_dir / "db.yaml").write_text("name: db\nport: 5432\n")
    wait_for(lambda: srv(b, "_web._tcp.service.internal") and srv(b, "_db._tcp.service.internal"), 1 + SLACK, "on b")
    relay.cut()
    wait_for(lambda: b.status()["cluster"]["state"] == "stale", 2 + SLACK, "b stale")
    (a.services_dir / "web.yaml").unlink()
    wait_for(lambda: not srv(a, "_web._tcp.service.internal"), 1 + SLACK, "web gone on a")
    revision = a.status()["cluster"]["revision"]
    compact(server, revision)
    relay.restore()
    wait_for(lambda: not srv(b, "_web._tcp.service.internal"), 5 + SLACK, "web dropped on b by the resync")
    status = b.status()["cluster"]
    assert status["resyncs"] >= 1 and status["state"] == "synced"
    assert srv(b, "_db._tcp.service.internal") == [("a.node.internal.", 5432)]


def compact(server: EtcdServer, revision: int) -> None:
    import asyncio

    from etcdkit import other_node

    async def main() -> None:
        client = other_node(server)
        await client.connect()
        try:
            await client.compact(revision, physical=True)
        finally:
            await client.close()

    asyncio.run(main())


@pytest.mark.parametrize("prefer_local", [True, False])
def test_prefer_local_puts_this_nodes_instances_first(
    start_daemon: DaemonFactory, etcd: EtcdServer, prefer_local: bool
) -> None:
    a, b = start_fleet(start_daemon, [etcd.endpoint] * 2, f"/t/prefer-{prefer_local}/",
                       dns={"prefer_local": prefer_local})
    (a.services_dir / "web.yaml").write_text("services:\n" + "".join(
        f"  - {{name: web, id: web{n}, port: {8000 + n}, address: 10.0.1.{n}}}\n" for n in range(4)))
    (b.services_dir / "web.yaml").write_text("name: web\nport: 8080\n")
    wait_for(lambda: len(addresses(b, "web.service.internal")) == 5, 1 + SLACK, "every instance on b")
    firsts = set()
    for _ in range(16):
        reply = b.query("web.service.internal", "A")
        firsts.add([rr.address for rrset in reply.answer for rr in rrset][0])
        reply = b.query("_web._tcp.service.internal", "SRV")
        if prefer_local:
            assert [rr.target.to_text() for rrset in reply.answer for rr in rrset][0] == "b.node.internal."
    assert (firsts == {"127.0.0.52"}) is prefer_local


def test_sighup_moves_a_daemon_to_another_prefix(start_daemon: DaemonFactory, etcd: EtcdServer) -> None:
    a, b = start_fleet(start_daemon, [etcd.endpoint] * 2, "/t/hup-old/")
    (a.services_dir / "web.yaml").write_text(WEB)
    wait_for(lambda: srv(b, "_web._tcp.service.internal"), 1 + SLACK, "web on b")
    config = yaml.safe_load(a.config_path.read_text())
    config["cluster"]["prefix"] = "/t/hup-new/"
    a.config_path.write_text(yaml.safe_dump(config))
    a.signal(signal.SIGHUP)
    # a left the old fleet (its lease revoked: gone from b at once) and joined the new one, alone.
    # (Within the lease even if the revoke were slow; staying in the old fleet, a would stay on b.)
    wait_for(lambda: not srv(b, "_web._tcp.service.internal"), LEASE + 1 + SLACK, "a gone from b's fleet")
    wait_for(lambda: a.status()["cluster"]["prefix"] == "/t/hup-new/" and a.status()["cluster"]["state"] == "synced",
             2 + SLACK, "a in its new fleet")
    assert a.status()["cluster"]["nodes"] == 0 and srv(a, "_web._tcp.service.internal")  # its own still served
    assert not any(line["msg"].startswith("config keys changed") for line in a.logs())


def test_a_fleet_write_etcd_does_not_take_is_refused_and_changes_nothing(
    start_daemon: DaemonFactory, start_etcd: EtcdFactory
) -> None:
    server = start_etcd()
    (a,) = start_fleet(start_daemon, [server.endpoint])
    server.kill()
    refused = a.write("POST", "/v1/conflicts", {"a": "x", "b": "y", "type": "port", "reason": "r"})
    assert refused.status == 503 and refused.body["error"]["code"] == "cluster_unavailable"
    assert all(rule["a"] != "x" for rule in a.get("/v1/conflicts")["rules"])
    assert a.write("PUT", "/v1/config/pool", {"value": "8"}).status == 503
    assert a.request("GET", "/v1/config/pool").status == 404
    # Registrations are this node's own business: they go on.
    assert a.write("POST", "/v1/services", {"name": "web", "port": 80}).status == 201


def node_record(server: EtcdServer, prefix: str, node: str) -> dict[str, Any]:
    import asyncio
    import json

    from etcdkit import other_node

    async def main() -> dict[str, Any]:
        client = other_node(server)
        await client.connect()
        try:
            got = await client.get(f"{prefix}nodes/{node}".encode())
            return dict(json.loads(got.value)) if got is not None else {}
        finally:
            await client.close()

    return asyncio.run(main())


def test_a_draining_node_leaves_dns_elsewhere_and_its_windows_are_in_its_record(
    start_daemon: DaemonFactory, etcd: EtcdServer
) -> None:
    a, b = start_fleet(start_daemon, [etcd.endpoint] * 2, "/t/maint/")
    (a.services_dir / "web.yaml").write_text(WEB)
    wait_for(lambda: srv(b, "_web._tcp.service.internal") == [("a.node.internal.", 8080)], 1 + SLACK, "web on b")
    planned = a.write("PUT", "/v1/services/web-8080/maintenance",
                      {"enable": True, "kind": "planned", "start": "+2h", "end": "+3h", "reason": "disk"})
    assert planned.status == 200, planned.body
    drained = a.write("PUT", "/v1/node/maintenance",
                      {"enable": True, "kind": "draining", "drain_timeout": "10m", "reason": "kernel"})
    assert drained.status == 200, drained.body
    # b drops a's instance from DNS and healthy lookups, and says why.
    wait_for(lambda: srv(b, "_web._tcp.service.internal") == [], 1 + SLACK, "web gone from b's DNS")
    (instance,) = b.get("/v1/services/web?status=maintenance")
    assert (instance["status"], instance["maintenance_state"]) == ("maintenance", "draining")
    assert instance["maintenance_until"] is not None
    assert b.request("GET", "/v1/services/web/url").status == 503
    # The node record other daemons read holds the state and both windows, soonest first.
    record = node_record(etcd, "/t/maint/", "a")
    assert (record["state"], record["reason"]) == ("draining", "kernel")
    assert [(w["instance"], w["kind"]) for w in record["windows"]] == [("", "draining"), ("web-8080", "planned")]
    # Done: offline now, then back; b serves it again once a's checks (none) allow.
    assert a.write("PUT", "/v1/node/maintenance", {"enable": False}).status == 200
    wait_for(lambda: srv(b, "_web._tcp.service.internal") == [("a.node.internal.", 8080)], 1 + SLACK, "web back on b")
    assert [w["kind"] for w in node_record(etcd, "/t/maint/", "a")["windows"]] == ["planned"]
