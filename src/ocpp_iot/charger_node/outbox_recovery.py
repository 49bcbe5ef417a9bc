"""An outbox file SQLite finds damaged (a torn page from a power cut, a failing SD card): what
can still be read goes into a new file, the damaged one is set aside, the station starts.

Without this a station whose ``outbox.db`` is damaged cannot start at all: every open fails
with "database disk image is malformed" (SQLITE_CORRUPT) or "file is not a database"
(SQLITE_NOTADB), and a service manager restarts it into the same error for ever.

The steps, each safe to repeat after a crash (the file names are ``outbox.db`` and its
``-wal`` / ``-shm``):

1. Read every row SQLite can still give, table by table, up to the first damaged page of each
   (:func:`salvage`).
2. Write them into ``outbox.db.recovered`` and close it (fully checkpointed, one file).
3. Move the damaged files aside as ``outbox.db.damaged-N`` (kept for a look; never read again).
4. Rename ``outbox.db.recovered`` to ``outbox.db``. A crash between 3 and 4 leaves no
   ``outbox.db`` but a ``.recovered`` one: :func:`finish_recovery`, called before every open,
   completes the rename.

The counters (next message id, next transaction id, next seqNo of a transaction) are raised to
above every id and seqNo in the rows that were read, so that a lost ``counters`` page does not
hand out an id the queue still holds. Ids issued before the damage and no longer in any row
may come again, as on a new data directory (docs/charger-node.md).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["finish_recovery", "is_damage", "layout", "recover", "salvage"]

log = logging.getLogger(__name__)

#: ``kept`` keys of transaction records (tx_records.TX_KEY; that module needs the outbox)
TX_KEY = "tx:"
#: SQLite's result codes for a damaged file (https://sqlite.org/rescode.html)
_DAMAGE = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)

#: one salvaged row: column name -> value
Row = dict[str, Any]


class DamagedFile(sqlite3.DatabaseError):
    """``PRAGMA quick_check`` found damage SQLite had not reported yet."""

    sqlite_errorcode = sqlite3.SQLITE_CORRUPT


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc`` says the file is damaged (not locked, full or unreadable)."""
    return isinstance(exc, sqlite3.DatabaseError) and (
        getattr(exc, "sqlite_errorcode", None) in _DAMAGE
        or "malformed" in str(exc)  # raised by a statement before the code was known
    )


def check(db: sqlite3.Connection) -> None:
    """Raise :class:`DamagedFile` if ``PRAGMA quick_check`` finds damage (it reads every page:
    milliseconds for a station's file of a few hundred KiB)."""
    rows = db.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        raise DamagedFile(" ".join(str(r[0]) for r in rows[:3]).replace("\n", " "))


def _aside(path: Path) -> Path:
    n = 1
    while path.with_name(f"{path.name}.damaged-{n}").exists():
        n += 1
    return path.with_name(f"{path.name}.damaged-{n}")


def _recovered(path: Path) -> Path:
    return path.with_name(path.name + ".recovered")


def _files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm")]


def _sync_dir(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def finish_recovery(path: Path) -> None:
    """Step 4 of a recovery a crash interrupted (see the module docstring), if one was."""
    recovered = _recovered(path)
    if not path.exists() and recovered.exists():
        os.replace(recovered, path)
        _sync_dir(path)


def layout(db: sqlite3.Connection) -> dict[str, list[str]]:
    """The tables of an outbox file and their columns (read from a new file's schema)."""
    tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    return {
        name: [c[1] for c in db.execute(f"PRAGMA table_info({name})")]
        for (name,) in tables.fetchall()
    }


def salvage(path: Path, tables: dict[str, list[str]]) -> dict[str, list[Row]]:
    """The rows of each of ``tables`` (name: columns) that SQLite can still read from the
    damaged file at ``path``, in key order, up to the first damaged page (a table it cannot
    read at all: none)."""
    out: dict[str, list[Row]] = {name: [] for name in tables}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error:
        return out
    try:
        for table, columns in tables.items():
            rows = out[table]
            try:
                cursor = db.execute(f"SELECT {', '.join(columns)} FROM {table}")
                while (row := cursor.fetchone()) is not None:
                    rows.append(dict(zip(columns, row, strict=True)))
            except sqlite3.Error as exc:
                log.warning("%s: table %s read up to a damaged page (%d rows): %s",
                            path, table, len(rows), exc)  # fmt: skip
    finally:
        db.close()
    return out


#: how each counter's ids are written (outbox.py: message ids decimal, transaction ids base 36)
_BASES = {"message_id": 10, "transaction_id": 36}


def _number(value: Any, base: int) -> int | None:
    try:
        return int(value, base) if isinstance(value, str) and value.isalnum() else None
    except ValueError:
        return None


def _raise_counters(rows: dict[str, list[Row]]) -> None:
    """Counters at least one above every id the salvaged rows hold (see the docstring)."""
    counters = {(r["station"], r["name"]): int(r["value"]) for r in rows["counters"]}
    seq = {(r["station"], r["transaction_id"]): int(r["next"]) for r in rows["seq_no"]}
    ids: dict[tuple[str, str], list[Any]] = {}  # (station, counter): the ids seen
    for r in rows["outbox"]:
        station, tx_id = r["station"], r["transaction_id"]
        ids.setdefault((station, "message_id"), []).append(r["message_id"])
        ids.setdefault((station, "transaction_id"), []).append(tx_id)
        seq_no = json.loads(r["payload"]).get("seqNo") if tx_id is not None else None
        if isinstance(seq_no, int):
            seq[(station, tx_id)] = max(seq.get((station, tx_id), 0), seq_no + 1)
    for r in rows["seq_no"]:
        ids.setdefault((r["station"], "transaction_id"), []).append(r["transaction_id"])
    for r in rows["kept"]:
        if str(r["key"]).startswith(TX_KEY):
            ids.setdefault((r["station"], "transaction_id"), []).append(r["key"][len(TX_KEY) :])
    for key, seen in ids.items():
        numbers = [_number(v, _BASES[key[1]]) for v in seen]
        top = max((n for n in numbers if n is not None), default=None)
        if top is not None:
            counters[key] = max(counters.get(key, 1), top + 1)
    rows["counters"] = [{"station": s, "name": n, "value": v} for (s, n), v in counters.items()]
    rows["seq_no"] = [{"station": s, "transaction_id": tx, "next": v} for (s, tx), v in seq.items()]


def recover(path: Path, reason: str, make: Callable[[Path], sqlite3.Connection]) -> int:
    """Replace the damaged ``path`` with a file of what could be read from it; return the
    queued messages kept. ``make(path)`` opens a new, empty outbox with its schema (the
    store's own open)."""
    recovered = _recovered(path)
    for leftover in _files(recovered):
        leftover.unlink(missing_ok=True)
    db = make(recovered)
    try:
        tables = layout(db)
        rows = salvage(path, tables)
        _raise_counters(rows)
        db.execute("BEGIN IMMEDIATE")
        for table, columns in tables.items():
            names = ", ".join(columns)
            marks = ", ".join(f":{c}" for c in columns)
            db.executemany(f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})",
                           rows[table])  # fmt: skip
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    aside = _aside(path)
    for old, new in zip(_files(path), _files(aside), strict=True):
        if old.exists():
            os.replace(old, new)
    os.replace(recovered, path)
    _sync_dir(path)
    queued = len(rows["outbox"])
    log.error(
        "%s was damaged (%s): moved aside as %s; kept what could be read: %d queued"
        " message(s), %d transaction record(s); a message lost with the damage is not sent, and"
        " an id issued before it and in no row kept may be issued again",
        path, reason, aside.name, queued,
        sum(1 for r in rows["kept"] if str(r["key"]).startswith(TX_KEY)),
    )  # fmt: skip
    return queued
