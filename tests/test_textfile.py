"""registry/textfile.py: only regular files are read, never blocking, never past the size cap."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from registry.errors import ValidationError
from registry.textfile import DEFAULT_MAX_BYTES, parse_size, read_text


def refusal(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    with pytest.raises(ValidationError) as info:
        read_text(str(path), max_bytes)
    [problem] = info.value.problems
    assert problem.path == str(path) and problem.field == "(file)"
    return problem.message


def test_a_fifo_is_reported_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert refusal(fifo) == "is a FIFO (named pipe), not a regular file; not read"
    assert time.monotonic() - started < 5  # an open() without O_NONBLOCK would wait for a writer forever


def test_a_symlink_to_a_device_is_not_read(tmp_path: Path) -> None:
    link = tmp_path / "s.yaml"
    link.symlink_to("/dev/zero")
    assert refusal(link) == "is a character device, not a regular file; not read"


def test_a_directory_dangling_symlink_and_loop_are_each_named(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").mkdir()
    assert refusal(tmp_path / "d.yaml") == "is a directory, not a regular file; not read"
    (tmp_path / "gone.yaml").symlink_to("missing.yaml")
    assert refusal(tmp_path / "gone.yaml") == "dangling symlink: its target 'missing.yaml' does not exist; not read"
    (tmp_path / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    assert refusal(tmp_path / "a.yaml") == "symlink loop (too many levels of symbolic links); not read"


def test_a_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    # A Kubernetes ConfigMap: name.yaml -> ..data/name.yaml -> ..2026_01/name.yaml
    (tmp_path / "..2026_01").mkdir()
    (tmp_path / "..2026_01" / "web.yaml").write_text("name: web\n")
    (tmp_path / "..data").symlink_to("..2026_01")
    (tmp_path / "web.yaml").symlink_to("..data/web.yaml")
    assert read_text(str(tmp_path / "web.yaml")) == "name: web\n"


def test_a_file_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    huge = tmp_path / "s.yaml"
    with huge.open("wb") as handle:
        handle.truncate(2**30)  # `truncate -s 1G`: sparse, so the test costs no disk
    assert refusal(huge) == "is 1GiB, over the 1MiB limit (limits.file_size); not read"
    exact = tmp_path / "exact.yaml"
    exact.write_bytes(b"#" * 1024)
    assert read_text(str(exact), 1024) == "#" * 1024
    assert refusal(exact, 1023) == "is 1KiB, over the 1023 bytes limit (limits.file_size); not read"


def test_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"name: web\nport: \xff\n")
    with pytest.raises(ValidationError) as info:
        read_text(str(path))
    assert str(info.value) == f"{path}:2: (file): not UTF-8 text: invalid start byte"


@pytest.mark.parametrize(
    "value,size",
    [(1, 1), (65536, 65536), ("65536", 65536), ("512B", 512), ("512KiB", 512 * 1024), ("1MiB", 2**20),
     ("1 MiB", 2**20), ("64MiB", 64 * 2**20)],
)
def test_sizes(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [0, -1, "0", "1MB", "1.5MiB", "MiB", "", "65MiB", "1GiB", True, 1.5, None, "1MiB\n"])
def test_bad_sizes(value: object) -> None:
    with pytest.raises(ValueError):
        parse_size(value)
