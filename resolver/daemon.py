"""`pilotfish serve`: start every part in order, reload on SIGHUP, stop cleanly.

Start-up order is the data flow's: config -> store -> catalog (API registrations
restored, then the maintenance windows applied) -> the directory watcher, then every
file of services_dir in one snapshot -> fleet mode (when `cluster.etcd` is set) -> DNS
and HTTP listeners -> health checks, node monitor, the maintenance scheduler's clock
and the event log's pruning. The watcher starts before the scan so that a file written
during start-up is caught by one or the other, and the listeners start after it so
that the first query they answer already sees the whole local registry. Fleet mode
joins in the background: etcd being down delays nothing here (the fleet view is then
`connecting`, and fills in when etcd answers). Stopping runs the other way, fleet
mode first, so that our instances leave every other node before we stop answering.

The daemon owns lifecycles only: it never answers a query, parses a registration or
touches SQLite beyond opening and closing the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import time
from typing import Awaitable, Callable

from registry.background import cancel_and_wait
from registry.catalog import Catalog
from registry.endpoints import Endpoint
from registry.errors import StorageError
from registry.health.orphans import become_subreaper
from registry.health.runner import HealthRunner
from registry.maintenance import MaintenanceScheduler
from registry.nodestate import NodeMonitor
from registry.prune import EventPruner
from registry.ratelog import RateLimitedLog
from registry.remote import RemoteBatch
from registry.schema import parse_registration
from registry.store import Store
from registry.watcher import DirectoryWatcher, FileOutcome, FileResult, rescan
from resolver.config import ClusterSettings, Config, ConfigError, load_config, restart_only_changes, with_running_values
from resolver.dns.relay import FORWARDS_IN_FLIGHT
from resolver.dns.server import DnsServer, DnsStats
from resolver.http.app import build_app
from resolver.http.server import HttpServer
from resolver.metrics import REGISTRATIONS, REJECTIONS, RELOAD_SECONDS
from resolver.notify import notify
from resolver.openfiles import raise_open_files_limit
from resolver.state import VERSION, DaemonState

log = logging.getLogger("pilotfish.daemon")

HEALTH_CONCURRENCY = 64
NODE_INTERVAL = 5.0
# How often instances registered with a `ttl` are checked for expiry.
EXPIRY_INTERVAL = 0.5
_expiry_log = RateLimitedLog(log, logging.ERROR, "expiring instances refused by the database; retrying")


class StartupError(Exception):
    """The daemon cannot run with this config (refused before anything listens)."""


class Daemon:
    """One running pilotfish: `start()`, then `reload()` any number of times, then `stop()`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.state: DaemonState | None = None
        self._store: Store | None = None
        self._dns: DnsServer | None = None
        self._http: HttpServer | None = None
        self._health: HealthRunner | None = None
        self._node_monitor: NodeMonitor | None = None
        self._scheduler: MaintenanceScheduler | None = None
        self._pruner: EventPruner | None = None
        self._watcher: DirectoryWatcher | None = None
        self._stopping = asyncio.Event()
        self._reloading: asyncio.Task[None] | None = None
        self._expiry: asyncio.Task[None] | None = None

    async def start(self) -> DaemonState:
        config = self.config
        if config.http.writes_open:
            raise StartupError(f"http.listen {config.http.listen} is not loopback and http.token is not set")
        # Before anything listens: a socket past the soft limit would fail to open.
        raise_open_files_limit(config, HEALTH_CONCURRENCY, FORWARDS_IN_FLIGHT)
        os.makedirs(config.state_dir, exist_ok=True)
        self._store = store = Store(os.path.join(config.state_dir, "pilotfish.db"), config.limits.database_size)
        if store.read_only:
            log.error(
                "database is read-only: lookups are served, every write answers 503 until it is writable and the "
                "daemon restarted",
                extra={"file": store.path},
            )
        identity = config.identity
        catalog = Catalog(store, identity, config.domain, config.conflicts, config.dns.answer_warning)
        for failure in catalog.load_api_registrations(lambda body: parse_registration(body, identity)):
            log.warning("stored registration no longer loads", extra={"detail": failure})
        state = DaemonState(config=config, catalog=catalog, store=store, identity=identity)
        state.extra.update(version=VERSION, config_path=config.source, services_dir=config.services_dir)
        self.state = state
        # Windows apply before anything is served: a node left in maintenance is never answered.
        self._scheduler = state.maintenance = MaintenanceScheduler(catalog)
        self._scheduler.load()
        # Watch first, then scan: a file written in between is seen by one or the other.
        await self._start_watcher()
        self._rescan("start")
        await self._start_cluster(config.cluster)

        state.dns_stats = DnsStats()
        self._dns = DnsServer(
            lambda: catalog.current, config.dns.listen, config.dns.ttl, config.dns.recursors, state.dns_stats,
            recursion_allow=config.dns.recursion_allow, rate_limit=config.dns.rate_limit,
            tcp_connections=config.dns.tcp_connections, bare_names=config.dns.bare_names,
            prefer_local=config.dns.prefer_local,
        )
        await self._dns.start()
        state.bound["dns_udp"] = [str(endpoint) for endpoint in self._dns.bound_udp]
        state.bound["dns_tcp"] = [str(endpoint) for endpoint in self._dns.bound_tcp]

        self._http = HttpServer(build_app(state))
        await self._http.start(config.http.listen.host, config.http.listen.port)
        state.bound["http"] = [str(Endpoint(host, port)) for host, port in self._http.addresses]

        # A child subreaper: what an exec check detaches is re-parented here, not to
        # PID 1, so the runner can kill and reap it instead of letting it pile up.
        subreaper = become_subreaper()
        if not subreaper:
            log.info("not a child subreaper (Linux only): processes that exec checks detach are not reaped")
        self._health = state.health = HealthRunner(
            catalog, concurrency=HEALTH_CONCURRENCY, exec_from_api=config.health.exec_from_api, reap_orphans=subreaper
        )
        await self._health.start()
        self._node_monitor = state.node_monitor = NodeMonitor(catalog, config.node_health, interval=NODE_INTERVAL)
        await self._node_monitor.start()
        await self._scheduler.start()
        self._pruner = EventPruner(store, config.events)
        if not store.read_only:
            await self._pruner.start()
        self._expiry = asyncio.create_task(self._expire_instances(catalog), name="pilotfish-expiry")
        log.info(
            "ready",
            extra={"bound": state.bound, "node": config.node, "index": catalog.current.index, "version": VERSION},
        )
        return state

    async def _start_cluster(self, settings: ClusterSettings) -> None:
        """Join the fleet when `cluster.etcd` is set; the etcd client is imported only then."""
        assert self.state is not None
        if not settings.enabled:
            return
        try:
            from registry.cluster.settings import FleetSettings
            from registry.cluster.sync import ClusterSync
        except ImportError as exc:
            raise StartupError(f"cluster.etcd is set, but the etcd client is not installed ({exc}): "
                               "pip install 'pilotfish[cluster]'") from None

        fleet = FleetSettings(settings.etcd, settings.prefix, settings.lease_ttl, settings.datacenter)
        self.state.cluster = ClusterSync(self.state.catalog, fleet, VERSION)
        await self.state.cluster.start()
        log.info("fleet mode: joining", extra={"etcd": [str(e) for e in settings.etcd], "prefix": settings.prefix,
                                               "lease_ttl": settings.lease_ttl, "datacenter": settings.datacenter})

    async def _stop_cluster(self) -> None:
        """Leave the fleet (the lease is revoked) and forget its view."""
        assert self.state is not None
        cluster, self.state.cluster = self.state.cluster, None
        if cluster is None:
            return
        await cluster.stop()
        self.state.catalog.apply_remote(RemoteBatch(replace=True))

    async def _reload_cluster(self, old: ClusterSettings, new: ClusterSettings) -> None:
        """A changed `cluster` section: leave and join again (the datacenter alone is only a label)."""
        assert self.state is not None
        if dataclasses.replace(old, datacenter=new.datacenter) == new:
            if self.state.cluster is not None:
                self.state.cluster.settings = dataclasses.replace(self.state.cluster.settings, datacenter=new.datacenter)
            return
        log.info("cluster settings changed: leaving the fleet and joining again")
        await self._stop_cluster()
        await self._start_cluster(new)

    async def _expire_instances(self, catalog: Catalog) -> None:
        """Remove instances whose `ttl` ran out without a re-registration."""
        while True:
            await asyncio.sleep(EXPIRY_INTERVAL)
            try:
                expired = catalog.expire_due()
            except StorageError as exc:  # a full disk must not end expiry for good, nor flood the log
                _expiry_log.note(error=str(exc), fault=exc.fault.value)
                continue
            except Exception:  # nor must a bug
                log.exception("expiring instances failed; retrying")
                continue
            for instance in expired:
                log.info("instance expired", extra={"id": instance.id, "name": instance.name, "ttl": instance.ttl})

    async def _start_watcher(self) -> None:
        directory = self.config.services_dir
        if not os.path.isdir(directory):
            log.warning("services_dir does not exist; not watching it (SIGHUP rescans)", extra={"services_dir": directory})
            return
        assert self.state is not None
        self._watcher = DirectoryWatcher(
            self.state.catalog, directory, self._on_file_results, max_bytes=self.config.limits.file_size
        )
        await self._watcher.start()

    def _rescan(self, reason: str) -> None:
        assert self.state is not None
        started = time.perf_counter()
        blocked = self._watcher.blocked if self._watcher is not None else None
        results = rescan(self.state.catalog, self.config.services_dir, blocked, self.config.limits.file_size)
        self._on_file_results(results, time.perf_counter() - started)
        self.state.extra["last_reload"] = time.time()
        log.info(
            "services_dir loaded",
            extra={"reason": reason, "services_dir": self.config.services_dir, "files": len(results),
                   "index": self.state.catalog.current.index},
        )

    def _on_file_results(self, results: list[FileResult], seconds: float) -> None:
        RELOAD_SECONDS.observe(seconds)
        for result in results:
            if result.outcome is FileOutcome.APPLIED:
                REGISTRATIONS.labels(source="file").inc(result.instances)
                log.info("file applied", extra={"path": result.path, "instances": result.instances})
            elif result.outcome is FileOutcome.REJECTED:
                REJECTIONS.labels(source="file").inc()
                # A refusal's rule, reason and incumbent (or id and holder) are fields of
                # their own, so that an operator reading the log needs nothing else.
                log.error(
                    "file rejected; what it registered before stays",
                    extra={"path": result.path, "problems": [str(p) for p in result.problems], **(result.refusal or {})},
                )
            else:
                log.info("file removed", extra={"path": result.path})

    async def reload(self) -> None:
        """SIGHUP: re-read the config file, apply what can change live, rescan services_dir.

        An invalid file is refused whole and the running config stays.
        """
        assert self.state is not None
        old = self.config
        try:
            new = load_config(old.source)
        except ConfigError as exc:
            log.error("config reload refused; keeping the running config",
                      extra={"problems": [str(p) for p in exc.problems]})
            new = old
        pending = restart_only_changes(old, new)
        if pending:
            log.warning("config keys changed that need a restart; keeping their running values", extra={"keys": pending})
        live = with_running_values(old, new)
        if live.http.writes_open:
            # The listener stays where it is until a restart: it must keep its token.
            log.error("config reload refused: http.token removed while HTTP listens beyond loopback")
            live = dataclasses.replace(live, http=old.http)
        self.config = self.state.config = live
        if live.conflicts != old.conflicts:
            self.state.catalog.set_config_rules(live.conflicts)
        if live.cluster != old.cluster:
            await self._reload_cluster(old.cluster, live.cluster)
        if live.limits.check_interval != old.limits.check_interval:
            # Applies to what is read from now on; what is registered stays.
            identity = dataclasses.replace(self.state.identity, min_check_interval=live.limits.check_interval)
            self.state.catalog.identity = self.state.identity = identity
        if live.limits.database_size != old.limits.database_size:
            self.state.store.limit_size(live.limits.database_size)
        if live.node_health != old.node_health and self._node_monitor is not None:
            self._node_monitor.thresholds = live.node_health
        if live.events != old.events and self._pruner is not None and not self.state.store.read_only:
            self._pruner.set_retention(live.events)
        if self._health is not None:
            # Turned off: the API's exec checks already registered stop running at their next run.
            self._health.exec_from_api = live.health.exec_from_api
        if self._watcher is not None:
            # Always a fresh watch: inotify follows the directory it was given, so after
            # `mv services.d.new services.d` the old watch would see the old directory.
            # The rescan below covers anything changed while no watch runs.
            await self._watcher.stop()
            self._watcher = None
        self.state.extra["services_dir"] = live.services_dir
        if self._watcher is None:
            await self._start_watcher()
        self._rescan("sighup")

    def request_reload(self) -> None:
        # Reloads run one at a time; a SIGHUP during a reload waits for it, then rescans again.
        previous = self._reloading

        async def run() -> None:
            if previous is not None:
                await previous
            try:
                await self.reload()
            except Exception:  # a failed reload must leave the daemon serving what it had
                log.exception("reload failed")

        self._reloading = asyncio.create_task(run(), name="pilotfish-reload")

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        """Stop in reverse order; safe on a partly started daemon."""
        if self._reloading is not None:
            await asyncio.gather(self._reloading, return_exceptions=True)
        await cancel_and_wait(self._expiry)
        self._expiry = None
        steps: list[tuple[str, Callable[[], Awaitable[None]] | None]] = [
            ("cluster", self._stop_cluster if self.state is not None and self.state.cluster else None),
            ("watcher", self._watcher.stop if self._watcher else None),
            ("event pruner", self._pruner.stop if self._pruner else None),
            ("maintenance scheduler", self._scheduler.stop if self._scheduler else None),
            ("node monitor", self._node_monitor.stop if self._node_monitor else None),
            ("health", self._health.stop if self._health else None),
            ("http", self._http.stop if self._http else None),
            ("dns", self._dns.stop if self._dns else None),
        ]
        for name, step in steps:
            if step is None:
                continue
            try:
                await asyncio.wait_for(step(), timeout=5)
            except Exception:  # keep stopping the rest: the store must still be closed
                log.exception("stopping failed", extra={"part": name})
        self._watcher = self._node_monitor = self._health = self._http = self._dns = None
        self._scheduler, self._pruner = None, None
        if self._store is None:
            return  # refused before the store opened: that refusal is the whole story
        self._store.close()
        self._store = None
        log.info("stopped")


async def run(config: Config, hangups: list[int]) -> int:
    """Start, serve until SIGTERM/SIGINT, stop; the process exit code.

    `hangups` collects SIGHUPs that arrive before the daemon can reload (the CLI's
    handler fills it from the start of `pilotfish serve`): they are replayed as one
    reload once started, because the config they announce may be newer than the
    one read.
    """
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.request_stop)
    loop.add_signal_handler(signal.SIGHUP, hangups.append, signal.SIGHUP)
    try:
        try:
            await daemon.start()
        except StorageError as exc:
            # One line naming the file and what to do: a traceback would bury both.
            log.error("cannot start", extra={"error": str(exc), "file": exc.path, "fault": exc.fault.value})
            return 1
        except (StartupError, OSError) as exc:
            log.error("cannot start", extra={"error": str(exc)})
            return 1
        loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
        if hangups:
            log.info("SIGHUP received while starting; reloading now")
            daemon.request_reload()
        notify("READY=1")
        await daemon.wait()
        notify("STOPPING=1")
        # From here on SIGHUP (a reload racing a stop) is ignored: a reload must not
        # start into parts being stopped, and once the loop is closed the default
        # action would kill the process instead of letting it exit 0.
        loop.remove_signal_handler(signal.SIGHUP)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        log.info("stopping")
        return 0
    finally:
        await daemon.stop()


def serve(config_path: str | None, hangups: list[int]) -> int:
    """Load the config and run until SIGTERM/SIGINT; the process exit code."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        log.error("config refused", extra={"problems": [str(p) for p in exc.problems]})
        return 1
    try:
        import uvloop  # the DNS throughput goal wants it; plain asyncio still works without

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        return runner.run(run(config, hangups))
