"""registry/watcher.py: the filter, the full scan, and live hot reload on a real directory."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Iterator

import pytest
from watchfiles import Change

from registry.catalog import Catalog, NodeDefaults
from registry.store import Store
from registry.watcher import DirectoryWatcher, FileOutcome, FileResult, RegistrationFilter, rescan, sync_file

DEFAULTS = NodeDefaults("node1", "10.0.0.1")


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    store = Store(tmp_path / "pilotfish.db")
    yield Catalog(store, DEFAULTS)
    store.close()


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


def test_watcher_applies_added_broken_and_removed_files(catalog: Catalog, tmp_path: Path) -> None:
    seen: list[FileResult] = []

    async def scenario() -> None:
        watcher = DirectoryWatcher(catalog, tmp_path, lambda results, seconds: seen.extend(results))
        await watcher.start()
        try:
            # start() returns once inotify is set up: a write right after it is seen.
            path = tmp_path / "web.yaml"
            path.write_text("name: web\nport: 8080\n")
            await until(lambda: catalog.current.query("web"))
            path.write_text("name: web\nport: oops\n")
            await until(lambda: str(path) in catalog.current.file_errors)
            assert [e.instance.port for e in catalog.current.query("web")] == [8080]
            path.unlink()
            await until(lambda: not catalog.current.query("web") and not catalog.current.file_errors)
        finally:
            await watcher.stop()

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
        watcher = DirectoryWatcher(catalog, tmp_path, lambda results, seconds: None)
        await watcher.start()
        try:
            # An update: a new directory, a temporary link to it, one rename over ..data.
            (tmp_path / "..2026_2").mkdir()
            (tmp_path / "..2026_2" / "web.yaml").write_text("name: web\nport: 9090\n")
            (tmp_path / "..data_tmp").symlink_to("..2026_2")
            (tmp_path / "..data_tmp").replace(tmp_path / "..data")
            await until(lambda: [e.instance.port for e in catalog.current.query("web")] == [9090])
        finally:
            await watcher.stop()

    asyncio.run(scenario())


async def until(probe: object, timeout: float = 5.0) -> None:
    assert callable(probe)
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "timed out waiting for the watcher"
        await asyncio.sleep(0.01)
