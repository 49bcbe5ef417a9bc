"""The SQLite database behind :class:`~.outbox.Outbox`: the connection, the schema and its
upgrade, commits at the chosen durability, checkpoints.

One database may hold the outboxes of many stations: every row names its station (``""`` in a
file of one station's own, as ``charger-node run`` keeps it). ``charger-node simulate`` keeps
all its stations in one shared store: one SQLite connection costs about 90 KiB of memory (its
page cache, lookaside and WAL index: measured with 500 connections, SQLite 3.40), a shared one
a few hundred bytes a station.

Durability: ``power_safe=True`` (a real station) makes each durable commit with
``synchronous=FULL``, one fsync of the WAL (the rules are in ``outbox.py``). ``power_safe=False``
(simulated stations) makes every commit with ``synchronous=NORMAL``: in WAL mode a commit at
NORMAL survives the process being killed (it is in the operating system's cache), only a power
cut or a kernel crash may undo the last ones; and one fsync per transaction message of a
thousand stations would stall their shared event loop.

A damaged file (SQLite says "malformed" or "not a database" on open, or ``PRAGMA quick_check``
finds damage) is replaced by one with the rows that could still be read, the damaged one set
aside: see ``outbox_recovery.py``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .outbox_recovery import check, finish_recovery, is_damage, recover

__all__ = ["OutboxStore", "PAGE_SIZE", "SCHEMA_VERSION"]

log = logging.getLogger(__name__)

#: SQLite page size of a new file (an existing one keeps its size): the rows are a few hundred
#: bytes, the WAL frames written per commit shrink with the page, and SQLite's page cache
#: starts with a bulk of pages per connection (145 -> 85 KiB a connection, with 300 of them).
PAGE_SIZE = 1024

#: ``PRAGMA user_version`` of the current layout. 0: the first one (one station a file, no
#: station column), upgraded in place on open.
SCHEMA_VERSION = 1

_TABLES = (
    "CREATE TABLE IF NOT EXISTS counters (station TEXT NOT NULL, name TEXT NOT NULL,"
    " value INTEGER NOT NULL, PRIMARY KEY (station, name)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS outbox (pos INTEGER PRIMARY KEY, station TEXT NOT NULL,"
    " message_id TEXT NOT NULL, action TEXT NOT NULL, kind TEXT NOT NULL, transaction_id TEXT,"
    " payload TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt REAL NOT NULL,"
    " created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS seq_no (station TEXT NOT NULL, transaction_id TEXT NOT NULL,"
    " next INTEGER NOT NULL, PRIMARY KEY (station, transaction_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS kept (station TEXT NOT NULL, key TEXT NOT NULL,"
    " value TEXT NOT NULL, PRIMARY KEY (station, key)) WITHOUT ROWID",
)
#: a station's queue in a shared store; a file of one station scans its few rows instead of
#: writing one more b-tree page to the SD card per commit
_SHARED_INDEX = "CREATE INDEX IF NOT EXISTS outbox_by_station ON outbox (station, pos)"
#: the counters that count events (added when a file is adopted); the others are next ids
TALLIES = ("dropped", "discarded")
#: ``kept`` keys of an adoption: the token a file to adopt carries, the marker of one adopted
_ADOPTION_TOKEN = "outbox:adoption-token"
_ADOPTED_PREFIX = "outbox:adopted:"
#: the columns of layout 0, copied into layout 1 with station ""
_OLD_COLUMNS = {
    "counters": "name, value",
    "outbox": "pos, message_id, action, kind, transaction_id, payload, attempts, next_attempt,"
    " created",
    "seq_no": "transaction_id, next",
    "kept": "key, value",
}
#: the tables whose rows are keyed by station (every table of layout 1)
_STATION_TABLES = ("counters", "outbox", "seq_no", "kept")


class OutboxStore:
    """One SQLite database (created if missing) in WAL mode. ``shared``: many stations will use
    it (adds an index on the station's queue). ``checkpoint_every``: commits between two
    checkpoints (automatic ones are off). Not thread-safe; one process owns the file."""

    def __init__(
        self,
        path: str | Path,
        *,
        shared: bool = False,
        power_safe: bool = True,
        checkpoint_every: int = 256,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
        self.path = Path(path)
        self.power_safe = power_safe
        self._checkpoint_every = checkpoint_every
        #: checkpoints since open that moved pages
        self.checkpoints = 0
        self._since_checkpoint = 0
        finish_recovery(self.path)
        try:
            self.db = self._connect(self.path, shared)
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            recover(self.path, str(exc), lambda p: self._connect(p, shared))
            self.db = self._connect(self.path, shared)

    def _connect(self, path: Path, shared: bool) -> sqlite3.Connection:
        self.db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=10.0
        )
        try:
            self._open(shared)
        except BaseException:
            self.db.close()
            raise
        return self.db

    def _open(self, shared: bool) -> None:
        db = self.db
        db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"{self.path}: SQLite refused WAL mode ({mode})")
        db.execute("PRAGMA wal_autocheckpoint=0")  # ours: see checkpoint()
        check(db)  # a page torn by a power cut shows here, not in the middle of a session
        self._level = ""
        with self.transaction(durable=True):
            self._make_schema(shared)

    def _make_schema(self, shared: bool) -> None:
        db = self.db
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path}: outbox layout {version} is newer than this version knows"
                f" ({SCHEMA_VERSION}): upgrade ocpp-iot"
            )
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        names = {row[0] for row in tables}
        old = [name for name in _OLD_COLUMNS if name in names] if version == 0 else []
        for name in old:
            db.execute(f"ALTER TABLE {name} RENAME TO old_{name}")
        for statement in _TABLES:
            db.execute(statement)
        for name in old:  # layout 0 -> 1: the rows are the file's own station's ("")
            columns = _OLD_COLUMNS[name]
            db.execute(
                f"INSERT INTO {name} (station, {columns}) SELECT '', {columns} FROM old_{name}"
            )
            db.execute(f"DROP TABLE old_{name}")
        if shared:
            db.execute(_SHARED_INDEX)
        if version != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.checkpoint()
        self.db.close()

    def __enter__(self) -> OutboxStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def adopt(self, path: str | Path, station: str, *, source_station: str = "") -> int:
        """Move the outbox ``source_station`` has in ``path`` into this store under ``station``;
        return the messages moved. ``source_station`` ``""``: ``path`` is a file of one
        station's own (any layout), deleted afterwards (a station that ran with its own file,
        ``charger-node run``, now in ``simulate``'s shared store); else ``path`` is a shared
        store and that station's rows are deleted from it afterwards (a station of
        ``simulate`` now run on its own). The station goes on with its queue, counters and
        kept records: the next ids take the larger value, the tallies (messages dropped,
        discarded) are added. Safe to repeat after a crash before the delete: the rows carry a
        token of their own, recorded here in the same commit, so rows adopted already add
        nothing. A queued message whose id this store may have handed out for the station
        already takes a new one (:meth:`_adopt_queue`)."""
        path = Path(path)
        src = source_station
        with OutboxStore(path) as own:  # brings it to this layout; refuses a newer one
            own.db.execute(
                "INSERT INTO kept (station, key, value)"  # a JSON string, as kept values are
                " VALUES (?, ?, '\"' || hex(randomblob(8)) || '\"') ON CONFLICT DO NOTHING",
                (src, _ADOPTION_TOKEN),
            )
        db = self.db
        db.execute("ATTACH DATABASE ? AS adopted", (str(path),))
        try:
            with self.transaction(durable=True):
                token = db.execute(
                    "SELECT value FROM adopted.kept WHERE station = ? AND key = ?",
                    (src, _ADOPTION_TOKEN),
                ).fetchone()[0]
                marker = f"{_ADOPTED_PREFIX}{token}"
                first_time = db.execute(
                    "INSERT INTO kept (station, key, value) VALUES (?, ?, '1')"
                    " ON CONFLICT DO NOTHING",
                    (station, marker),
                ).rowcount
                # ids below this one this store may have handed out for the station already
                issued = db.execute(
                    "SELECT value FROM counters WHERE station = ? AND name = 'message_id'",
                    (station,),
                ).fetchone()
                tallies = ", ".join(f"'{name}'" for name in TALLIES)
                merges = [  # table, key, number, which rows, the value on a conflict
                    ("counters", "name", "value", f"name NOT IN ({tallies})",
                     "max(value, excluded.value)"),
                    ("seq_no", "transaction_id", "next", "1", "max(next, excluded.next)"),
                ]  # fmt: skip
                if first_time:
                    merges.append(("counters", "name", "value", f"name IN ({tallies})",
                                   "value + excluded.value"))  # fmt: skip
                for table, key, number, which, combined in merges:
                    db.execute(
                        f"INSERT INTO {table} (station, {key}, {number}) SELECT ?, {key},"
                        f" {number} FROM adopted.{table} WHERE station = ? AND {which}"
                        f" ON CONFLICT(station, {key}) DO UPDATE SET {number} = {combined}",
                        (station, src),
                    )
                db.execute(
                    "INSERT INTO kept (station, key, value) SELECT ?, key, value FROM"
                    " adopted.kept WHERE station = ? AND key != ? ON CONFLICT DO NOTHING",
                    (station, src, _ADOPTION_TOKEN),
                )
                moved = (
                    self._adopt_queue(station, src, issued[0] if issued else None)
                    if first_time
                    else 0
                )
        finally:
            db.execute("DETACH DATABASE adopted")
        if src:
            with OutboxStore(path) as shared:  # the moved rows leave the shared store
                with shared.transaction(durable=True) as sdb:
                    for table in _STATION_TABLES:
                        sdb.execute(f"DELETE FROM {table} WHERE station = ?", (src,))
        else:
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
        return moved

    def _adopt_queue(self, station: str, source: str, issued: int | None) -> int:
        """Append the queue ``source`` has in the attached file to ``station``'s, in order.
        The two counted their message ids apart: an id this store may have handed out already
        (below ``issued``, its counter before the merge) could meet a different message's
        stored answer at the bridge, so such a message takes a new id above both counters (if
        its first send got through, it is handled twice, which its seqNo tells; a repeated id
        would lose it). A row that is here already, the same id, action and payload, is the
        same message: skipped."""
        db = self.db
        columns = _OLD_COLUMNS["outbox"].replace("pos, ", "")
        same = "SELECT message_id, action, payload FROM main.outbox WHERE station = ?"
        rows = db.execute(
            f"SELECT {columns} FROM adopted.outbox WHERE station = ? AND"
            f" (message_id, action, payload) NOT IN ({same}) ORDER BY pos",
            (source, station),
        ).fetchall()
        next_id = db.execute(
            "SELECT value FROM counters WHERE station = ? AND name = 'message_id'", (station,)
        ).fetchone()
        fresh = int(next_id[0]) if next_id else 1
        renamed = 0
        marks = ", ".join("?" * (1 + len(columns.split(","))))
        for row in rows:
            mid = row[0]
            if issued is not None and (not mid.isdigit() or int(mid) < issued):
                mid, fresh, renamed = str(fresh), fresh + 1, renamed + 1
            db.execute(f"INSERT INTO outbox (station, {columns}) VALUES ({marks})",
                       (station, mid, *row[1:]))  # fmt: skip
        if renamed:
            db.execute(
                "INSERT INTO counters (station, name, value) VALUES (?, 'message_id', ?)"
                " ON CONFLICT(station, name) DO UPDATE SET value = excluded.value",
                (station, fresh),
            )
            log.warning("%s: %d adopted message(s) take new message ids (the two files counted "
                        "their ids apart)", station, renamed)  # fmt: skip
        return len(rows)

    def stations(self) -> list[str]:
        """The stations with rows here (``""``: the file's own station)."""
        rows = self.db.execute(
            "SELECT station FROM counters UNION SELECT station FROM outbox ORDER BY 1"
        )
        return [row[0] for row in rows]

    @contextmanager
    def transaction(self, *, durable: bool) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` .. ``COMMIT`` (``ROLLBACK`` on an exception); ``durable``: the
        commit survives a power cut when it returns (with ``power_safe``)."""
        self._set_level("FULL" if durable and self.power_safe else "NORMAL")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")  # a failed one (SQLITE_FULL) leaves no transaction open
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        # committed: what follows must not look like a failed write to the caller (it would
        # not count the ids it has just stored, and hand them out again)
        self._since_checkpoint += 1
        if self._since_checkpoint >= self._checkpoint_every:
            try:
                self.checkpoint()
            except sqlite3.Error as exc:  # the pages stay in the WAL; the next one retries
                log.warning("outbox checkpoint failed (the commit stands): %s", exc)

    def checkpoint(self) -> None:
        """Move the WAL's pages into the database file (PASSIVE: we are its only user)."""
        busy, log_pages, _ = self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self._since_checkpoint = 0
        if log_pages > 0 and not busy:
            self.checkpoints += 1

    def _set_level(self, level: str) -> None:
        if level != self._level:  # only between transactions
            self.db.execute(f"PRAGMA synchronous={level}")
            self._level = level
