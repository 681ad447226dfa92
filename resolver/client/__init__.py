"""pilotfish's client library: service lookups with a cache and a fallback chain.

Imports only the standard library and dnspython, so that an application asking
pilotfish for its services does not load the daemon (aiohttp, the registry, YAML).
tests/test_client_imports.py holds it to that.

    from resolver.client import Discovery, AsyncDiscovery

Layout: core.py is the one sans-I/O core (plans over steps.py's calls; query.py,
cache.py, breaker.py, stats.py, selection.py, answers.py, http_wire.py,
dns_fallback.py and env_fallback.py are its parts); sync.py and aio.py are the two
thin flavours that carry the I/O out (base.py holds what they share);
environment.py and settings.py decide where the daemon is.
"""

from resolver.client.aio import AsyncDiscovery
from resolver.client.env_fallback import env_variable
from resolver.client.query import quote
from resolver.client.environment import Environment, Kind, detect
from resolver.client.errors import ApiError, ClientError, DaemonUnavailable, NoInstance
from resolver.client.results import Endpoint, Endpoints, Instance, Instances, Services, ServiceUrl, Source
from resolver.client.selection import Strategy
from resolver.client.stats import ClientStats, Latency
from resolver.client.sync import Discovery
from resolver.client.watch import ConnectionChange

__all__ = [
    "ApiError", "AsyncDiscovery", "ClientError", "ClientStats", "ConnectionChange", "DaemonUnavailable",
    "Discovery", "Endpoint", "Endpoints", "Environment", "Instance", "Instances", "Kind", "Latency",
    "NoInstance", "ServiceUrl", "Services", "Source", "Strategy", "detect", "env_variable", "quote",
]
