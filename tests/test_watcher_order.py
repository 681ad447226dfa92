"""Batches of file changes: removals first, and files blocked by another file retried when it goes."""

from __future__ import annotations

import os
from pathlib import Path

from registry.catalog import Catalog
from registry.watcher import FileOutcome, rescan, sync_files


def services_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    """A services directory holding `files`."""
    services = tmp_path / "services.d"
    services.mkdir()
    for name, text in files.items():
        (services / name).write_text(text)
    return services


def ports(catalog: Catalog, name: str) -> list[int]:
    return [e.instance.port for e in catalog.current.query(name, statuses=None)]


def test_renaming_a_file_to_an_earlier_name_keeps_its_instances(catalog: Catalog, tmp_path: Path) -> None:
    services = services_dir(tmp_path, {"z-redis.yaml": "name: redis\nport: 6379\n"})
    rescan(catalog, services)
    os.rename(services / "z-redis.yaml", services / "a-redis.yaml")
    # One watch batch holds both paths, sorted: the new name comes first.
    results = sync_files(catalog, [str(services / "a-redis.yaml"), str(services / "z-redis.yaml")], set())
    assert [r.outcome for r in results] == [FileOutcome.REMOVED, FileOutcome.APPLIED]
    assert ports(catalog, "redis") == [6379]
    assert catalog.current.file_errors == {}


def test_a_blocked_file_applies_once_its_blocker_is_removed(catalog: Catalog, tmp_path: Path) -> None:
    services = services_dir(tmp_path, {"a-nginx.yaml": "name: nginx\n", "b-apache.yaml": "name: apache2\nport: 8080\n"})
    blocked: set[str] = set()
    results = rescan(catalog, services, blocked)
    assert [r.outcome for r in results] == [FileOutcome.APPLIED, FileOutcome.REJECTED]
    assert blocked == {str(services / "b-apache.yaml")}
    (services / "a-nginx.yaml").unlink()
    results = sync_files(catalog, [str(services / "a-nginx.yaml")], blocked)
    assert [(Path(r.path).name, r.outcome) for r in results] == [
        ("a-nginx.yaml", FileOutcome.REMOVED),
        ("b-apache.yaml", FileOutcome.APPLIED),
    ]
    assert ports(catalog, "apache2") == [8080] and ports(catalog, "nginx") == []
    assert blocked == set() and catalog.current.file_errors == {}


def test_a_file_broken_by_syntax_is_not_retried(catalog: Catalog, tmp_path: Path) -> None:
    services = services_dir(tmp_path, {"a.yaml": "name: web\nport: 80\n", "b.yaml": "name: [\n"})
    blocked: set[str] = set()
    rescan(catalog, services, blocked)
    assert blocked == set()
    (services / "a.yaml").unlink()
    results = sync_files(catalog, [str(services / "a.yaml")], blocked)
    assert [Path(r.path).name for r in results] == ["a.yaml"]
