"""registry/watcher.py: the filter, the full scan, and live hot reload on a real directory."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Callable

import pytest
from watchfiles import Change

from conftest import eventually, hold, started
from registry.catalog import Catalog
from registry.model import CheckState, Status
from registry.watcher import DirectoryWatcher, FileOutcome, FileResult, RegistrationFilter, rescan, sync_file, sync_files


@pytest.mark.parametrize(
    ("name", "watched"),
    [
        ("redis.yaml", True),
        ("redis.yml", True),
        (".redis.yaml", False),  # dotfiles: editors' temporary copies
        (".redis.yaml.swp", False),
        ("redis.yaml~", False),
        ("redis.yaml.tmp", False),
        ("redis.json", False),
        ("sub/redis.yaml", False),  # only the directory itself, not below it
        ("..data", True),  # a Kubernetes ConfigMap swaps this symlink
    ],
)
def test_filter_watches_registration_files_directly_inside(tmp_path: Path, name: str, watched: bool) -> None:
    keep = RegistrationFilter(tmp_path)
    assert keep(Change.added, str(tmp_path / name)) is watched


def test_rescan_loads_rejects_and_forgets(catalog: Catalog, tmp_path: Path) -> None:
    services = tmp_path / "services.d"
    services.mkdir()
    (services / "a.yaml").write_text("name: web\nport: 8080\n")
    (services / "b.yaml").write_text("name: db\nport: [5432]\n")
    (services / "notes.txt").write_text("not a registration")
    results = {Path(r.path).name: r for r in rescan(catalog, services)}
    assert set(results) == {"a.yaml", "b.yaml"}
    assert results["a.yaml"].outcome is FileOutcome.APPLIED and results["a.yaml"].instances == 1
    assert results["b.yaml"].outcome is FileOutcome.REJECTED
    assert results["b.yaml"].problems[0].line == 2
    assert [e.instance.port for e in catalog.current.query("web")] == [8080]

    (services / "a.yaml").unlink()
    results = {Path(r.path).name: r for r in rescan(catalog, services)}
    assert results["a.yaml"].outcome is FileOutcome.REMOVED
    assert catalog.current.query("web") == []


def test_sync_file_reports_a_conflict_as_rejected(catalog: Catalog, tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("name: apache2\nport: 80\n")
    second.write_text("name: nginx\nport: 8081\n")
    assert sync_file(catalog, str(first)).outcome is FileOutcome.APPLIED
    refused = sync_file(catalog, str(second))
    assert refused.outcome is FileOutcome.REJECTED
    assert "apache2" in refused.problems[0].message
    assert catalog.current.query("nginx") == []
    # In a batch (as the watcher applies changes) the snapshot is published only at its
    # end: the result still says why, and what is in the way.
    with catalog.batch():
        [batched] = sync_files(catalog, [str(second)], set())
    assert batched.problems == refused.problems == catalog.current.file_errors[str(second)]
    refusal = batched.refusal
    assert refusal is not None and refusal == refused.refusal
    assert refusal["reason"] and "'apache2-80'" in str(refusal["incumbent"]) and "'nginx'" in str(refusal["rule"])


def test_watcher_applies_added_broken_and_removed_files(catalog: Catalog, tmp_path: Path) -> None:
    seen: list[FileResult] = []

    async def scenario() -> None:
        async with started(reporting(catalog, tmp_path, seen)):
            # start() returns once inotify is set up: a write right after it is seen.
            path = await web_registered(catalog, tmp_path)
            path.write_text("name: web\nport: oops\n")
            await watched(lambda: str(path) in catalog.current.file_errors)
            assert [e.instance.port for e in catalog.current.query("web")] == [8080]
            path.unlink()
            await watched(lambda: not catalog.current.query("web") and not catalog.current.file_errors)

    asyncio.run(scenario())
    assert seen[-1].outcome is FileOutcome.REMOVED and seen[-1].path.endswith("web.yaml")


def test_watcher_follows_a_configmap_style_symlink_swap(catalog: Catalog, tmp_path: Path) -> None:
    # As kubelet lays out a ConfigMap: web.yaml -> ..data/web.yaml, ..data -> ..<timestamp>.
    (tmp_path / "..2026_1").mkdir()
    (tmp_path / "..2026_1" / "web.yaml").write_text("name: web\nport: 8080\n")
    (tmp_path / "..data").symlink_to("..2026_1")
    (tmp_path / "web.yaml").symlink_to("..data/web.yaml")
    rescan(catalog, tmp_path)
    assert [e.instance.port for e in catalog.current.query("web")] == [8080]

    async def scenario() -> None:
        async with started(reporting(catalog, tmp_path, [])):
            # An update: a new directory, a temporary link to it, one rename over ..data.
            (tmp_path / "..2026_2").mkdir()
            (tmp_path / "..2026_2" / "web.yaml").write_text("name: web\nport: 9090\n")
            (tmp_path / "..data_tmp").symlink_to("..2026_2")
            (tmp_path / "..data_tmp").replace(tmp_path / "..data")
            await watched(lambda: [e.instance.port for e in catalog.current.query("web")] == [9090])

    asyncio.run(scenario())


def vim_save(path: Path, text: str) -> Callable[[], None]:
    """vim's default save: the old file renamed away; returns the step that writes the new one."""
    path.replace(path.with_name(path.name + "~"))

    def finish() -> None:
        path.write_text(text)

    return finish


def redirect_save(path: Path, text: str) -> Callable[[], None]:
    """A shell's `>`: the file truncated first; returns the step that writes and closes it."""
    handle = path.open("w")

    def finish() -> None:
        handle.write(text)
        handle.close()

    return finish


@pytest.mark.parametrize("save", [vim_save, redirect_save])
def test_a_save_that_leaves_the_file_gone_or_empty_for_a_while_never_drops_its_instances(
    catalog: Catalog, tmp_path: Path, save: Callable[[Path, str], Callable[[], None]]
) -> None:
    """Between its two steps the file is gone or empty for longer than the watcher's quiet step;
    DNS must go from the old port to the new one without a moment of NXDOMAIN in between."""
    ports: list[list[int]] = []
    catalog.subscribe(lambda old, new: ports.append([e.instance.port for e in new.query("web")]))

    async def scenario() -> None:
        # The settle time is generous so that a slow machine cannot stretch the pause past it.
        async with started(DirectoryWatcher(catalog, tmp_path, lambda results, seconds: None, settle_ms=1000)):
            path = await web_registered(catalog, tmp_path)
            ports.clear()
            finish = save(path, "name: web\nport: 8081\n")
            await asyncio.sleep(0.1)  # the editor takes its time: 20 steps of the watcher
            finish()
            await watched(lambda: [e.instance.port for e in catalog.current.query("web")] == [8081])

    asyncio.run(scenario())
    assert [] not in ports, ports


def test_a_burst_of_files_lands_in_a_handful_of_snapshots(catalog: Catalog, tmp_path: Path) -> None:
    swaps: list[int] = []
    catalog.subscribe(lambda old, new: swaps.append(new.index))

    async def scenario() -> None:
        async with started(reporting(catalog, tmp_path, [])):
            for n in range(200):  # written back to back, as a config-management run does
                (tmp_path / f"svc{n}.yaml").write_text(f"name: svc{n}\nport: {10000 + n}\n")
            await watched(lambda: len(catalog.current.entries_by_key) == 200)

    asyncio.run(scenario())
    assert len(swaps) <= 10, f"{len(swaps)} snapshots for one burst"


def reporting(catalog: Catalog, directory: Path, seen: list[FileResult]) -> DirectoryWatcher:
    """A watcher of `directory` that puts every result it reports in `seen`."""
    return DirectoryWatcher(catalog, directory, lambda results, seconds: seen.extend(results))


async def web_registered(catalog: Catalog, directory: Path) -> Path:
    """Write web.yaml into a watched `directory`; its path, once the catalog shows it."""
    path = directory / "web.yaml"
    path.write_text("name: web\nport: 8080\n")
    await watched(lambda: catalog.current.query("web"))
    return path


async def watched(probe: Callable[[], object]) -> None:
    await eventually(probe, 5.0, "the watcher to apply the change")


# -- one file never hurts another, nor the watcher ---------------------------------

HOSTILE = {
    "fifo.yaml": "is a FIFO (named pipe), not a regular file; not read",
    "zero.yaml": "is a character device, not a regular file; not read",
    "dir.yaml": "is a directory, not a regular file; not read",
    "dangling.yaml": "dangling symlink: its target 'missing.yaml' does not exist; not read",
    "loop.yaml": "symlink loop (too many levels of symbolic links); not read",
    "huge.yaml": "is 1GiB, over the 1MiB limit (limits.file_size); not read",
    "stamp.yaml": "'x' is not a valid !!timestamp",
    "number.yaml": "'abc' is not a valid !!int",
}


def plant_hostile_files(directory: Path) -> None:
    """Everything an operator or an attacker can put behind a `*.yaml` name."""
    os.mkfifo(directory / "fifo.yaml")
    (directory / "zero.yaml").symlink_to("/dev/zero")
    (directory / "dir.yaml").mkdir()
    (directory / "dangling.yaml").symlink_to("missing.yaml")
    (directory / "loop.yaml").symlink_to("loop2.yml")
    (directory / "loop2.yml").symlink_to("loop.yaml")
    with (directory / "huge.yaml").open("wb") as handle:
        handle.truncate(2**30)
    (directory / "stamp.yaml").write_text("name: stamp\nport: 1\nversion: !!timestamp x\n")
    (directory / "number.yaml").write_text("name: number\nport: !!int abc\n")


def test_rescan_reports_every_file_it_cannot_read_and_applies_the_rest(catalog: Catalog, tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("x-base: &base {port: 8080}\n<<: *base\nname: web\n")
    plant_hostile_files(tmp_path)
    results = {Path(r.path).name: r for r in rescan(catalog, tmp_path)}
    assert results["good.yaml"].outcome is FileOutcome.APPLIED
    assert [e.instance.port for e in catalog.current.query("web")] == [8080]
    errors = {Path(path).name: problems for path, problems in catalog.current.file_errors.items()}
    assert set(errors) == set(HOSTILE) | {"loop2.yml"}
    for name, message in HOSTILE.items():
        assert results[name].outcome is FileOutcome.REJECTED
        assert errors[name][0].message == message, name


def test_a_bad_file_in_a_batch_does_not_cost_the_good_ones(catalog: Catalog, tmp_path: Path) -> None:
    bad, good = tmp_path / "a.yaml", tmp_path / "b.yaml"
    bad.write_text("name: bad\nport: 1\nversion: !!timestamp x\n")
    good.write_text("name: good\nport: 2\n")
    with catalog.batch():
        results = sync_files(catalog, [str(bad), str(good)], set())
    assert [r.outcome for r in results] == [FileOutcome.REJECTED, FileOutcome.APPLIED]
    assert [e.instance.port for e in catalog.current.query("good")] == [2]
    assert catalog.current.file_errors[str(bad)][0].line == 3


def test_a_file_swapped_for_a_fifo_or_grown_past_the_cap_keeps_its_instances(catalog: Catalog, tmp_path: Path) -> None:
    seen: list[FileResult] = []

    async def scenario() -> None:
        async with started(reporting(catalog, tmp_path, seen)):
            path = await web_registered(catalog, tmp_path)
            os.mkfifo(tmp_path / ".web.yaml.new")
            (tmp_path / ".web.yaml.new").replace(path)  # the watcher would block forever in open()
            await watched(lambda: str(path) in catalog.current.file_errors)
            assert "FIFO" in catalog.current.file_errors[str(path)][0].message
            assert [e.instance.port for e in catalog.current.query("web")] == [8080], "what it held stays"
            path.unlink()
            path.write_text("name: web\nport: 8081\n")
            await watched(lambda: [e.instance.port for e in catalog.current.query("web")] == [8081])
            with path.open("ab") as handle:
                handle.truncate(2**30)
            await watched(lambda: "1MiB limit" in str(catalog.current.file_errors.get(str(path))))
            assert [e.instance.port for e in catalog.current.query("web")] == [8081]
            (tmp_path / "db.yaml").write_text("name: db\nport: 5432\n")
            await watched(lambda: catalog.current.query("db"))

    asyncio.run(scenario())


def test_mv_of_a_file_keeps_check_results_and_maintenance(catalog: Catalog, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(reporting(catalog, tmp_path, [])):
            (tmp_path / "a.yaml").write_text("name: web\nport: 8080\nchecks:\n  - tcp: 127.0.0.1:8080\n")
            await watched(lambda: catalog.instance("web-8080") is not None)
            web = catalog.instance("web-8080")
            assert web is not None
            catalog.set_check_state(web, CheckState("web-8080:tcp", Status.PASSING, "connected", time.time()))
            hold(catalog, "web-8080", "resharding")
            (tmp_path / "a.yaml").replace(tmp_path / "b.yaml")
            await watched(lambda: catalog.files() == [str(tmp_path / "b.yaml")])
            entry = catalog.current.entry("web-8080")
            assert entry is not None and str(entry.instance.source) == f"file:{tmp_path / 'b.yaml'}"
            assert (entry.status, entry.maintenance_reason, entry.checks[0].output) == (
                Status.MAINTENANCE, "resharding", "connected"
            )

    asyncio.run(scenario())


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_warning(
    catalog: Catalog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # os.listdir hands such a name over with lone surrogates, which SQLite's event
    # log cannot store: the whole batch (every other file of it) used to fail.
    (Path(os.fsdecode(bytes(tmp_path) + b"/\xffweb.yaml"))).write_text("name: web\nport: 80\n")
    (tmp_path / "tab\tname.yaml").write_text("name: tab\nport: 81\n")
    (tmp_path / "good.yaml").write_text("name: good\nport: 82\n")
    results = rescan(catalog, tmp_path)
    assert [Path(r.path).name for r in results] == ["good.yaml"]
    assert [e.instance.id for e in catalog.current.entries_by_key.values()] == ["good-82"]
    assert RegistrationFilter(tmp_path)(Change.added, os.fsdecode(bytes(tmp_path) + b"/\xffweb.yaml")) is False
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ignoring a file whose name")]
    assert len(warned) == 3
