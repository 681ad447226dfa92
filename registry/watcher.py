"""The services directory: a full scan at start and on SIGHUP, then hot reload.

A change to a registration file reaches the catalog within tens of milliseconds:
watchfiles (inotify on Linux) reports it, `sync_file` re-reads that one file and the
catalog applies it as a whole or rejects it as a whole. A rejected file keeps what it
registered before (the catalog guarantees that); its problems stay visible in the
snapshot's `file_errors` until the file is fixed or removed.

One file never hurts another: whatever goes wrong while reading, parsing, validating
or applying one file (a FIFO or a device behind the name, a size past the limit, an
alias bomb, or a bug of ours) is that file's rejection, logged with its path, and
the rest of the batch is applied. A name that exists in any form is read or
reported, never skipped in silence; only a name that is gone removes what it held.

This module never decides what a file means (that is `registry.schema`) and never
writes to SQLite itself; it only turns file-system events into catalog calls.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from watchfiles import Change, awatch

from registry.catalog import Catalog
from registry.errors import ConflictError, DuplicateIdError, Problem, ValidationError, refusal_problem
from registry.schema import is_registration_file, load_file
from registry.textfile import DEFAULT_MAX_BYTES
from registry.yamldoc import unclean

log = logging.getLogger("pilotfish.watcher")

# watchfiles' Rust loop sleeps `step` ms, looks at what inotify gathered, and yields
# once a whole step has passed with nothing new, or `debounce` ms after the first
# event: a change waits between one and two steps, two when it lands just after a
# look. Its defaults (50 / 1600) would put 1.6 s between a busy directory and its
# answer; 20 ms put 40 ms. At 5 ms a write reaches DNS in about 15 ms (p99 under 25,
# bench/propagation.py), for about 0.4% of a core spent looking while idle. An
# editor's write-then-rename is one event on the file, whatever the step; a burst
# written back to back (a config-management run) still lands in a handful of
# snapshots, and 200 ms caps one that never pauses.
STEP_MS = 5
DEBOUNCE_MS = 200
# A registration file that is gone or empty when its batch arrives may be halfway
# through a save: vim renames the old file away before it writes the new one, a shell
# redirect truncates before it writes. Applied at once, that would drop the file's
# instances from DNS for a moment, so such a batch is held this long, joined by
# whatever arrives meanwhile, and applied as one. Changes that leave every file in
# place (the common edit) never wait.
SETTLE_MS = 50
# Kubernetes mounts a ConfigMap as `name.yaml -> ..data/name.yaml` and updates it by
# pointing the `..data` symlink at a new directory in one rename: the visible files
# never change, so that rename is watched too, and answered with a full rescan.
ATOMIC_SWAP_LINK = "..data"


class FileOutcome(str, enum.Enum):
    APPLIED = "applied"
    REJECTED = "rejected"
    REMOVED = "removed"


@dataclass(frozen=True)
class FileResult:
    """What one file did to the catalog; the daemon logs it and counts it."""

    path: str
    outcome: FileOutcome
    problems: tuple[Problem, ...] = ()
    instances: int = 0
    # Rejected only because another registration holds its id or is in its way:
    # worth retrying once that other registration goes.
    blocked: bool = False
    # What is in the way, for the log: the rule, the reason and the incumbent of a
    # conflict (ConflictError.to_dict), or the id and its holder (DuplicateIdError).
    refusal: Mapping[str, object] | None = None


class RegistrationFilter:
    """watchfiles filter: registration files directly inside one directory.

    Editor swap files, dotfiles and anything in a subdirectory are ignored, using the
    same rule as the loader so that what is watched is exactly what is loaded; the
    one dotfile watched is ATOMIC_SWAP_LINK.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = os.path.realpath(directory)

    def __call__(self, change: Change, path: str) -> bool:
        if os.path.dirname(path) != self.directory:
            return False
        if os.path.basename(path) == ATOMIC_SWAP_LINK:
            return True
        return is_registration_file(path) and clean_name(path)


def clean_name(path: str) -> bool:
    """Whether a file's name can be a registration's source; a warning names any that cannot.

    A name that is not UTF-8 (os.listdir hands it over with lone surrogates) or holds
    a control character could be neither stored in the event log nor shown safely,
    so such a file is never read; the warning names it escaped.
    """
    name = os.path.basename(path)
    if unclean(name) is None:
        return True
    log.warning("ignoring a file whose name is not clean UTF-8 text; rename it", extra={"file": ascii(name)})
    return False


def _unsettled(path: str) -> bool:
    """Gone or empty: what a file looks like halfway through an editor's save (see SETTLE_MS)."""
    if os.path.basename(path) == ATOMIC_SWAP_LINK:
        return False
    try:
        return os.lstat(path).st_size == 0
    except FileNotFoundError:
        return True
    except OSError:
        return False  # reading it will say what is wrong


def registration_files(directory: str | Path) -> list[str]:
    """Every registration name in `directory`, sorted: the order decides incumbents at start.

    Whatever each name is (a FIFO, a directory, a dangling symlink) is listed: the
    loader reports what it cannot read rather than have it vanish from view. A name
    that is not clean text is left out, with a warning.
    """
    root = os.path.realpath(directory)
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [os.path.join(root, name) for name in names if is_registration_file(name) and clean_name(name)]


def _failed(catalog: Catalog, path: str, step: str, exc: Exception) -> FileResult:
    """An unexpected error on one file: logged with its path, and the file rejected."""
    log.exception("%s a registration file failed", step, extra={"path": path})
    problem = Problem(path, None, "(file)", f"{step} it failed: {type(exc).__name__}: {exc}")
    catalog.reject_file(path, [problem])
    return FileResult(path, FileOutcome.REJECTED, (problem,))


def sync_file(catalog: Catalog, path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> FileResult:
    """Make the catalog reflect `path` as it is on disk now (present, broken or gone)."""
    if not os.path.lexists(path):
        catalog.remove_file(path)
        return FileResult(path, FileOutcome.REMOVED)
    try:
        instances = load_file(path, catalog.identity, max_bytes)
    except ValidationError as exc:
        catalog.reject_file(path, exc.problems)
        return FileResult(path, FileOutcome.REJECTED, tuple(exc.problems))
    except Exception as exc:  # a bug of ours on one file must not cost the others theirs
        return _failed(catalog, path, "reading", exc)
    try:
        catalog.apply_file(path, instances)
    except (ConflictError, DuplicateIdError) as exc:
        # The catalog has already recorded the rejection (and kept the old state). Its
        # snapshot is not published until the batch ends, so the problem is read from
        # the error itself, as the catalog recorded it.
        return FileResult(path, FileOutcome.REJECTED, (refusal_problem(path, exc),), blocked=True, refusal=exc.to_dict())
    except Exception as exc:
        return _failed(catalog, path, "applying", exc)
    return FileResult(path, FileOutcome.APPLIED, instances=len(instances))


def sync_files(
    catalog: Catalog, paths: list[str], blocked: set[str], max_bytes: int = DEFAULT_MAX_BYTES
) -> list[FileResult]:
    """Apply a batch of changed paths, removals first, then retry what they unblocked.

    Removals go first so that `mv a.yaml b.yaml` never finds b's instances still held
    by a. A file refused because another file or API registration held its id or
    socket (`blocked`, kept by the caller across batches) is tried again whenever a
    batch removed or replaced something: the operator fixed it by removing the other.
    """
    known = set(catalog.files())
    gone = [path for path in paths if not os.path.lexists(path)]
    results = [sync_file(catalog, path, max_bytes) for path in gone]
    results += [sync_file(catalog, path, max_bytes) for path in paths if path not in gone]
    blocked.difference_update(paths)
    # Something was freed when a file went away or an existing file changed what it holds.
    freed = any(
        result.outcome is FileOutcome.REMOVED or (result.outcome is FileOutcome.APPLIED and result.path in known)
        for result in results
    )
    if freed:
        for path in sorted(blocked):
            if os.path.lexists(path):
                results.append(sync_file(catalog, path, max_bytes))
        blocked.clear()
    blocked.update(result.path for result in results if result.blocked)
    return results


def rescan(
    catalog: Catalog, directory: str | Path, blocked: set[str] | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[FileResult]:
    """Load every file of `directory` and forget every other file, as one snapshot.

    A directory that cannot be listed (permissions, not a directory) changes
    nothing: forgetting every file because of it would empty the registry.
    """
    try:
        present = registration_files(directory)
    except OSError as exc:
        log.error("cannot list services_dir; keeping what is registered", extra={"services_dir": str(directory), "error": str(exc)})
        return []
    blocked = set() if blocked is None else blocked
    results = []
    with catalog.batch():
        # Gone, or left behind in a previous services_dir: either way no longer
        # registered (and no longer worth a retry), removed before anything is added.
        for path in sorted(set(catalog.files()) - set(present)):
            catalog.remove_file(path)
            blocked.discard(path)
            results.append(FileResult(path, FileOutcome.REMOVED))
        return results + sync_files(catalog, present, blocked, max_bytes)


class DirectoryWatcher:
    """Applies changes in `directory` as they happen; `on_results(results, seconds)` after each batch."""

    def __init__(
        self,
        catalog: Catalog,
        directory: str | Path,
        on_results: Callable[[list[FileResult], float], None],
        step_ms: int = STEP_MS,
        debounce_ms: int = DEBOUNCE_MS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        settle_ms: int = SETTLE_MS,
    ) -> None:
        self.catalog = catalog
        self.max_bytes = max_bytes
        self.directory = os.path.realpath(directory)
        self.on_results = on_results
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        self.settle_ms = settle_ms
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.blocked: set[str] = set()
        # A batch held to settle (see SETTLE_MS), and the timer that applies it.
        self._held: set[str] = set()
        self._release: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Watch from now on: a change made after this returns is reported.

        awatch sets up inotify synchronously on the task's first step, before its first
        await; yielding once lets that step run. A caller that rescans after `start()`
        therefore misses nothing: older changes are in the scan, newer ones come here.
        """
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="pilotfish-watcher")
        await asyncio.sleep(0)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop watching; a batch still held to settle is dropped (every start is followed by a rescan)."""
        self._stop.set()
        if self._task is not None:
            # The watch thread notices the stop event within one step.
            await asyncio.wait_for(self._task, timeout=5)
            self._task = None
        if self._release is not None:
            self._release.cancel()
            self._release = None
        self._held.clear()

    async def _run(self) -> None:
        changes_seen = awatch(
            self.directory,
            watch_filter=RegistrationFilter(self.directory),
            step=self.step_ms,
            debounce=self.debounce_ms,
            stop_event=self._stop,
            recursive=False,
        )
        try:
            async for changes in changes_seen:
                self._received({path for _, path in changes})
        except Exception:  # the directory itself went away, or inotify ran out of watches
            log.exception("watching stopped; a SIGHUP rescans", extra={"services_dir": self.directory})

    def _received(self, paths: set[str]) -> None:
        """Apply a batch now, or hold it to settle when a file in it may be halfway through a save."""
        if self._release is None and not any(map(_unsettled, paths)):
            self._apply(sorted(paths))
            return
        self._held.update(paths)
        if self._release is None:
            self._release = asyncio.get_running_loop().call_later(self.settle_ms / 1000, self._apply_held)

    def _apply_held(self) -> None:
        self._release = None
        paths, self._held = sorted(self._held), set()
        self._apply(paths)

    def _apply(self, paths: list[str]) -> None:
        started = time.perf_counter()
        try:
            if any(os.path.basename(path) == ATOMIC_SWAP_LINK for path in paths):
                results = rescan(self.catalog, self.directory, self.blocked, self.max_bytes)
            else:
                with self.catalog.batch():
                    results = sync_files(self.catalog, paths, self.blocked, self.max_bytes)
        except Exception:  # one bad batch must not end hot reload for the daemon's lifetime
            log.exception("applying file changes failed", extra={"paths": paths})
            return
        self.on_results(results, time.perf_counter() - started)
