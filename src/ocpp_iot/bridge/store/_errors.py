"""Which SQLite errors are the database failing, rolling back after them, and the write
transaction that does so (:class:`Tx`)."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

#: primary result codes that say the database failed (full, unreadable, locked, gone), not the
#: statement: the whole call fails then, rather than one handler's writes
_STORE_FAILURE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)


def store_failure(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _STORE_FAILURE_CODES


class RetryWithSavepoints(Exception):
    """A handler's deferred writes failed in a batch without savepoints."""


def roll_back(db: sqlite3.Connection) -> None:
    """Roll back after an error, if SQLite has not already (it does after some errors, e.g.
    SQLITE_FULL), keeping the error that caused it rather than one from the rollback."""
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the next transaction rolls back first (``Tx.__enter__``)


class Tx:
    """One write transaction on ``db`` (``BEGIN IMMEDIATE``: the write lock first), holding
    ``lock`` (if any) throughout; committed at the end, rolled back on an exception."""

    __slots__ = ("db", "lock")

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock | None = None) -> None:
        self.db = db
        self.lock = lock

    def __enter__(self) -> sqlite3.Connection:
        if self.lock is not None:
            self.lock.acquire()
        db = self.db
        try:
            if db.in_transaction:  # a rollback after an earlier failure failed too
                db.execute("ROLLBACK")
            db.execute("BEGIN IMMEDIATE")
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise
        return db

    def __exit__(self, t: Any, v: Any, tb: Any) -> None:
        db = self.db
        try:
            if t is None:
                try:
                    db.execute("COMMIT")
                except BaseException:
                    roll_back(db)
                    raise
            else:
                roll_back(db)
        finally:
            if self.lock is not None:
                self.lock.release()
