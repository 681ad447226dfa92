"""What every part of the store shares: one SQLite connection, its transactions, its faults.

`Store` (registry.store) is assembled from parts by concern (registrations, rules,
config and windows there; the event log and health rows in registry.store_log); each
part is a subclass of `StoreBase` and writes through `transaction()` under
`translated`, so a storage failure anywhere surfaces as the same `StorageError`.
"""

from __future__ import annotations

import functools
import sqlite3
from typing import Callable, Concatenate, ParamSpec, TypeVar

from registry.errors import StorageError
from registry.storagefaults import fault_advice, fault_of

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="StoreBase")


def translated(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Raise SQLite's storage failures as `StorageError`; leave everything else alone."""

    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            error = self.storage_error(exc)
            if error is None:
                raise
            raise error from None

    functools.update_wrapper(wrapper, method)
    return wrapper


class StoreBase:
    """The connection and what every part needs of it."""

    path: str
    max_bytes: int | None
    _db: sqlite3.Connection

    def storage_error(self, exc: sqlite3.Error) -> StorageError | None:
        """`exc` as a StorageError when it is about the storage; None when it is a bug of ours."""
        fault = fault_of(exc)
        if fault is None:
            return None
        return StorageError(fault, self.path, str(exc), fault_advice(fault, self.path, self.max_bytes))

    def _transaction(self) -> "Transaction":
        return Transaction(self._db)


class Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        # SQLite rolls some failures back by itself (SQLITE_FULL, SQLITE_IOERR, ...):
        # a ROLLBACK then would fail and hide the error that matters.
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

