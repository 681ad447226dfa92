"""Room for every socket the config allows: the soft open-file limit raised at start.

The daemon may hold dns.tcp_connections DNS TCP connections, http.max_connections HTTP
connections, a socket or pipe per health probe running and per query forwarded, all
at once. Linux starts most processes with a soft RLIMIT_NOFILE of 1024, below the
defaults' sum: the accept that goes past it fails, and the caps the operator set
never come into play. The soft limit may be raised up to the hard one without
privileges, so the daemon does, once at start, before anything listens.

It never lowers a limit, and stops at FD_CEILING: a hard limit of millions (or
unlimited) is no reason to claim it. When the caps still do not fit, one WARNING says
which caps and what limit; the daemon serves anyway, as the caps are ceilings, not
expectations.
"""

from __future__ import annotations

import logging
import resource

from resolver.config import Config

log = logging.getLogger("pilotfish.daemon")

FD_CEILING = 65536
# The database and its journal, the listening sockets, the directory watcher, the
# log, the event loop's own descriptors, an etcd connection: a few dozen at most.
BASE_FDS = 64
# A health probe holds a socket, or an exec check its pipe (both ends while the command starts).
FDS_PER_PROBE = 2


def descriptors_needed(config: Config, health_concurrency: int, forwards_in_flight: int) -> int:
    """The open files the config's caps allow at once, with the daemon's own."""
    forwards = forwards_in_flight if config.dns.recursors else 0
    return (
        config.dns.tcp_connections
        + config.http.max_connections
        + health_concurrency * FDS_PER_PROBE
        + forwards
        + BASE_FDS
    )


def raise_open_files_limit(config: Config, health_concurrency: int, forwards_in_flight: int) -> int:
    """Raise the soft RLIMIT_NOFILE toward the hard one (at most FD_CEILING); the soft limit now.

    Logs one WARNING when the configured caps still need more.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_CEILING if hard == resource.RLIM_INFINITY else min(hard, FD_CEILING)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            # A sandbox may refuse what the hard limit allows: keep the limit there is.
            log.info("open-file limit not raised", extra={"limit": soft, "wanted": target, "error": str(error)})
    needed = descriptors_needed(config, health_concurrency, forwards_in_flight)
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "open-file limit is below what dns.tcp_connections and http.max_connections allow: connections past "
            "it are refused; raise the hard limit (LimitNOFILE= under systemd, ulimit -Hn) or lower the caps",
            extra={
                "limit": soft,
                "hard_limit": "unlimited" if hard == resource.RLIM_INFINITY else hard,
                "needed": needed,
                "dns.tcp_connections": config.dns.tcp_connections,
                "http.max_connections": config.http.max_connections,
                "health_probes": health_concurrency,
                "forwards_in_flight": forwards_in_flight if config.dns.recursors else 0,
            },
        )
    return soft
