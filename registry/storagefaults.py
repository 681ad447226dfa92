"""What a refusal of SQLite's means for an operator: which fault it is, and what to do about it.

Only the storage's own failures are faults (a full disk, a read-only file, a damaged
page, an I/O error, a lock held too long); anything else SQLite raises (a constraint,
a syntax error) is a bug of ours and stays a plain sqlite3 error.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from registry.errors import StorageFault

# SQLite primary result codes (the low byte of an extended code) that describe the storage.
_FAULT_OF_CODE = {
    13: StorageFault.FULL,  # SQLITE_FULL: the disk, or max_page_count (limits.database_size)
    8: StorageFault.READ_ONLY,  # SQLITE_READONLY and its extended codes
    11: StorageFault.CORRUPT,  # SQLITE_CORRUPT: a damaged page
    26: StorageFault.CORRUPT,  # SQLITE_NOTADB: a damaged header
    10: StorageFault.UNAVAILABLE,  # SQLITE_IOERR
    14: StorageFault.UNAVAILABLE,  # SQLITE_CANTOPEN
    5: StorageFault.UNAVAILABLE,  # SQLITE_BUSY: another process held the lock past busy_timeout
    6: StorageFault.UNAVAILABLE,  # SQLITE_LOCKED
    3: StorageFault.UNAVAILABLE,  # SQLITE_PERM
}


def fault_advice(fault: StorageFault, path: str, max_bytes: int | None) -> str:
    """What an operator can do about `fault`, in one sentence they can act on."""
    directory = Path(path).parent
    if fault is StorageFault.FULL:
        limit = f", or the database reached limits.database_size ({max_bytes} bytes)" if max_bytes else ""
        return f"the disk holding {directory} is full{limit}: free space or raise the limit; nothing of this write was kept"
    if fault is StorageFault.READ_ONLY:
        return (f"the database cannot be written (a read-only file, directory or filesystem): make {path} and "
                f"{directory} writable by the daemon's user, then restart it")
    if fault is StorageFault.CORRUPT:
        return (f"the database file is damaged: with the daemon stopped, move {path} aside (with its -wal and "
                "-shm files) and start it again on a new, empty database. Lost with it: API registrations, "
                "API conflict rules, config values, health state and the event log (services.d files are "
                f"not affected); `sqlite3 {path} .recover` may salvage rows")
    return (f"the database could not be opened, read or written: check that the daemon's user can write {directory} "
            "(SQLite keeps -wal and -shm files beside the database), that the disk is healthy, and that no "
            "other program holds the file locked")


def fault_of(exc: sqlite3.Error) -> StorageFault | None:
    """The storage fault behind `exc`, or None when it is not about the storage."""
    code = getattr(exc, "sqlite_errorcode", None)
    return _FAULT_OF_CODE.get(code & 0xFF) if isinstance(code, int) else None
