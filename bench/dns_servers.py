"""The two Python servers of the DNS benchmark, each run in its own pinned process.

    python3 bench/dns_servers.py pilotfish PORT [INSTANCES]  # DnsServer over a real Catalog + Store
    python3 bench/dns_servers.py dnslib PORT                 # a plain dnslib DNSServer resolver

Each prints "ready" once it answers, then serves until killed. The zone is
`bench/dns_zone.py`'s, so both serve the same records as NSD and dnsmasq; pilotfish
given INSTANCES serves the fleet zone of that many instances instead.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import threading
from pathlib import Path

# The script's own folder holds bench/registry.py, which would shadow the registry package:
# the repository root goes first, bench/ last (for dns_zone only).
sys.path[0] = str(Path(__file__).resolve().parent.parent)
sys.path.append(str(Path(__file__).resolve().parent))

import dns_zone  # noqa: E402


def serve_pilotfish(port: int, fleet: int = 0) -> None:
    from registry.catalog import Catalog
    from registry.endpoints import Endpoint
    from registry.model import Instance, NodeIdentity, Source
    from registry.store import Store
    from resolver.dns.server import DnsServer

    async def main() -> None:
        with tempfile.TemporaryDirectory() as state:
            store = Store(Path(state) / "pilotfish.db")
            catalog = Catalog(store, NodeIdentity(dns_zone.NS_NODE, dns_zone.NS_ADDRESS), dns_zone.DOMAIN)
            registered = [
                Instance(id=f"{i.service}-{i.port}", name=i.service, node=dns_zone.NS_NODE, address=i.address,
                         port=i.port, source=Source.file("bench.yaml"))
                for i in dns_zone.instances()
            ] if not fleet else [
                Instance(id=f"{i.service}-{i.port}", name=i.service, node=f"node{i.node}", address=i.address,
                         port=i.port, address_is_node=True, source=Source.file("bench.yaml"))
                for i in dns_zone.fleet_instances(fleet)
            ]
            catalog.apply_file("bench.yaml", registered)
            server = DnsServer(lambda: catalog.current, [Endpoint("127.0.0.1", port)], ttl=dns_zone.TTL)
            await server.start()
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            print("ready", flush=True)
            await stop.wait()
            await server.stop()
            store.close()

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


def serve_dnslib(port: int) -> None:
    from dnslib import QTYPE, RCODE, RR, SOA, SRV, A, DNSRecord
    from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

    records: dict[tuple[str, int], list[RR]] = {}
    additional: dict[str, list[RR]] = {}
    for inst in dns_zone.instances():
        name = f"{inst.service}.service.{dns_zone.DOMAIN}."
        srv_name = f"_{inst.service}._tcp.service.{dns_zone.DOMAIN}."
        records.setdefault((name, QTYPE.A), []).append(RR(name, QTYPE.A, rdata=A(inst.address), ttl=dns_zone.TTL))
        records.setdefault((srv_name, QTYPE.SRV), []).append(
            RR(srv_name, QTYPE.SRV, rdata=SRV(1, dns_zone.SRV_WEIGHT, inst.port, inst.target + "."), ttl=dns_zone.TTL)
        )
        additional.setdefault(srv_name, []).append(
            RR(inst.target + ".", QTYPE.A, rdata=A(inst.address), ttl=dns_zone.TTL)
        )
    soa = RR(f"{dns_zone.DOMAIN}.", QTYPE.SOA, ttl=dns_zone.TTL, rdata=SOA(
        f"{dns_zone.NS_NODE}.node.{dns_zone.DOMAIN}.", f"hostmaster.{dns_zone.DOMAIN}.",
        (dns_zone.SERIAL, 3600, 600, 86400, dns_zone.TTL)))
    names = {name for name, _ in records}

    class ZoneResolver(BaseResolver):  # type: ignore[misc]
        def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
            reply = request.reply()
            qname = str(request.q.qname).lower()
            found = records.get((qname, request.q.qtype))
            if found:
                reply.rr.extend(found)
                reply.ar.extend(additional.get(qname, []))
            else:
                reply.header.rcode = RCODE.NOERROR if qname in names else RCODE.NXDOMAIN
                reply.add_auth(soa)
            return reply

    server = DNSServer(ZoneResolver(), port=port, address="127.0.0.1",
                       logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    server.start_thread()
    print("ready", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    server.stop()


if __name__ == "__main__":
    kind, port_text, *fleet = sys.argv[1:]
    if kind == "pilotfish":
        serve_pilotfish(int(port_text), *map(int, fleet))
    else:
        serve_dnslib(int(port_text))
