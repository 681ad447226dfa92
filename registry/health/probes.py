"""One run of one check's probe: bounded by its timeout, and every way it can fail a critical outcome.

The runner (registry.health.runner) decides when a check runs and what its result
means after rise/fall; this module only runs the probe of its kind (tcp, http, exec,
systemd) and turns whatever happens into an `Outcome`. EMFILE, a bug, a probe's own
timeout: each is that run's critical result, logged once per episode, never the end
of the check. Exec checks run only from a source allowed to run commands.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from typing import Awaitable

from registry.health.exec import probe_exec
from registry.health.http import HttpProber
from registry.health.orphans import OrphanReaper
from registry.health.outcome import Outcome, truncate
from registry.health.systemd import probe_systemd
from registry.health.tcp import probe_tcp
from registry.model import CheckKind, CheckSpec, Instance, SourceKind, Status

log = logging.getLogger(__name__)

# The output of an exec check that did not come from a file, while the config does not allow it.
EXEC_NOT_ALLOWED = (
    "exec check not run: exec checks run from files in services_dir, and from the API only with "
    "health.exec_from_api: true and http.token; this one came from {source}"
)


class Prober:
    """Runs probes; owns the HTTP client they share and, in the daemon, the orphan reaper.

    `exec_from_api` may change at any time (a config reload): it is read at every run.
    """

    def __init__(self, concurrency: int, exec_from_api: bool, reaper: OrphanReaper | None) -> None:
        self.exec_from_api = exec_from_api
        self._http = HttpProber(concurrency)
        self._reaper = reaper

    async def open(self) -> None:
        await self._http.open()
        if self._reaper is not None:
            self._reaper.start()

    async def close(self) -> None:
        await self._http.close()
        if self._reaper is not None:
            await self._reaper.stop()

    async def run(self, instance: Instance, spec: CheckSpec, failing: bool) -> tuple[Outcome, bool]:
        """One probe run and whether the probe itself is failing now.

        `failing` says it was failing at the last run: a new failure is logged only
        when an episode starts (a daemon out of descriptors fails every check every run).
        """
        if spec.kind is CheckKind.EXEC and not self.may_exec(instance):
            return Outcome(Status.CRITICAL, EXEC_NOT_ALLOWED.format(source=instance.source)), failing
        try:
            async with asyncio.timeout(spec.timeout) as deadline:
                outcome = await self._probe(spec)
        except TimeoutError as exc:
            if not deadline.expired():
                return self._failed(spec, exc, failing), True  # the probe's own timeout, not the check's
            return Outcome(Status.CRITICAL, f"{spec.kind.value} check {spec.id}: timed out after {spec.timeout:g}s"), failing
        except Exception as exc:  # EMFILE, ENOMEM, a bug: this run's result, never the end of the check
            return self._failed(spec, exc, failing), True
        finally:
            if self._reaper is not None and spec.kind in (CheckKind.EXEC, CheckKind.SYSTEMD):
                self._reaper.nudge()
        return outcome, False

    def may_exec(self, instance: Instance) -> bool:
        """Files always; the API only while allowed; any other source (the cluster) never.

        Checked at every run rather than at registration, so that registrations
        restored from SQLite and a reload that withdraws the permission are covered.
        """
        if instance.source.kind is SourceKind.FILE:
            return True
        return instance.source.kind is SourceKind.API and self.exec_from_api

    @staticmethod
    def _failed(spec: CheckSpec, exc: Exception, failing: bool) -> Outcome:
        if not failing:
            log.warning(
                "health probe failed; the check is critical and goes on",
                extra={"check": spec.id, "kind": spec.kind.value, "error": describe_error(exc)},
                exc_info=not isinstance(exc, OSError),
            )
        return Outcome(Status.CRITICAL, truncate(f"{spec.kind.value} check {spec.id} failed: {describe_error(exc)}"))

    def _probe(self, spec: CheckSpec) -> Awaitable[Outcome]:
        if spec.kind is CheckKind.TCP:
            return probe_tcp(spec)
        if spec.kind is CheckKind.HTTP:
            return self._http.probe(spec)
        if spec.kind is CheckKind.EXEC:
            return probe_exec(spec)
        return probe_systemd(spec)


def describe_error(exc: BaseException) -> str:
    """`Too many open files (EMFILE)` for an OSError, `ValueError: ...` for anything else."""
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{exc.strerror or os.strerror(exc.errno)} ({name})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
