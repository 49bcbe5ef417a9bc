"""Which SQLite errors are the database failing, and rolling back after them."""

from __future__ import annotations

import sqlite3

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
            pass  # the next transaction rolls back first (``_Tx.__enter__``)
