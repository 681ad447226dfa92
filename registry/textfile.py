"""Reading a drop-in file without trusting it: regular files only, size-capped, never blocking.

Anyone who may write the services directory decides what sits behind a `*.yaml` name:
a FIFO (an `open()` that waits forever for a writer), a symlink to `/dev/zero` (a read
that never ends), a 1 GiB file, a directory, a dangling symlink or a symlink loop.
Each of these is that file's problem, named in a clear message, and never read:
the type is checked before opening, the file is opened with `O_NONBLOCK` so a FIFO
swapped in between cannot block, and the opened descriptor is checked again with
`fstat` (type and size) before the first byte is read. Symlinks to regular files are
followed: Kubernetes mounts ConfigMaps that way.

Nothing here knows about YAML; registration files and the daemon's config file are
both read through here.
"""

from __future__ import annotations

import errno
import os
import re
import stat

from registry.errors import Problem, ValidationError

# A mebibyte holds some 10,000 instances with a check each; a larger file is more
# likely a mistake (or a `truncate -s 1G`) than a registry, and a site that means it
# raises limits.file_size.
DEFAULT_MAX_BYTES = 1024 * 1024
# The cap itself is bounded: past this the YAML parse alone would hold the daemon's
# event loop for minutes.
MAX_MAX_BYTES = 64 * 1024 * 1024
SIZE = re.compile(r"([0-9]+) ?(B|KiB|MiB|GiB)?")
SIZE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_READ_CHUNK = 256 * 1024


def parse_size(value: object, minimum: int = 1, maximum: int | None = MAX_MAX_BYTES) -> int:
    """Bytes in `512KiB`, `1MiB`, `65536` or `65536B`; ValueError with a readable reason otherwise.

    The default bounds are those of `limits.file_size`; other sizes (the database's)
    pass their own.
    """
    if isinstance(value, bool):
        raise ValueError(f"must be a size such as 512KiB or 1MiB, not {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := SIZE.fullmatch(value)):
        size = int(match.group(1)) * SIZE_UNITS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a size (plain bytes, or with a unit: 512KiB, 1MiB)")
    if size < minimum or (maximum is not None and size > maximum):
        low = "1 byte" if minimum == 1 else format_size(minimum)
        if maximum is None:
            raise ValueError(f"{value!r} must be at least {low}")
        raise ValueError(f"{value!r} must be between {low} and {format_size(maximum)}")
    return size


def format_size(size: int) -> str:
    """`1048576` -> `1MiB`: sizes in messages read as the config writes them."""
    for unit in ("GiB", "MiB", "KiB"):
        factor = SIZE_UNITS[unit]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size} bytes"


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(path: str, message: str) -> ValidationError:
    return ValidationError([Problem(path, None, "(file)", message)])


def _why_unreadable(path: str, exc: OSError) -> str:
    """The message for a path that cannot be stat'ed or opened."""
    if exc.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links); not read"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR) and os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"dangling symlink: its target {target!r} does not exist; not read"
    return exc.strerror or str(exc)


def read_text(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The UTF-8 text of the regular file at `path`, or ValidationError saying why not.

    A file larger than `max_bytes` is refused unread: its size comes from `fstat` on
    the opened descriptor, and a file that grows while it is read is cut off at
    `max_bytes + 1` and refused too, so no more than that is ever held in memory.
    """
    try:
        kind = _kind(os.stat(path).st_mode)
        if kind is not None:
            raise _refuse(path, f"is {kind}, not a regular file; not read")
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _refuse(path, _why_unreadable(path, exc)) from None
    try:
        info = os.fstat(fd)
        kind = _kind(info.st_mode)
        if kind is not None:  # swapped for something else since the stat above
            raise _refuse(path, f"is {kind}, not a regular file; not read")
        if info.st_size > max_bytes:
            raise _refuse(path, _too_big(info.st_size, max_bytes))
        chunks: list[bytes] = []
        held = 0
        while held <= max_bytes:
            chunk = os.read(fd, min(_READ_CHUNK, max_bytes + 1 - held))
            if not chunk:
                break
            chunks.append(chunk)
            held += len(chunk)
        if held > max_bytes:
            raise _refuse(path, _too_big(held, max_bytes, growing=True))
    except OSError as exc:
        raise _refuse(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValidationError([Problem(path, line, "(file)", f"not UTF-8 text: {exc.reason}")]) from None


def _too_big(size: int, max_bytes: int, growing: bool = False) -> str:
    if growing:
        return f"grew past the {format_size(max_bytes)} limit (limits.file_size) while being read; refused"
    return f"is {format_size(size)}, over the {format_size(max_bytes)} limit (limits.file_size); not read"
