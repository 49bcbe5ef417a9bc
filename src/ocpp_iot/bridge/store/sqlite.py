""":class:`SqliteStore`: the bridge's store on SQLite, shared by the worker processes of one
machine (WAL mode). Times are wall-clock seconds (``time.time()``): several processes compare
them. Every method is one short transaction and may wait up to ``busy_timeout`` for another
process's write lock, so the bridge calls it through :class:`~.facade.AsyncStore`; the hot
path's ``look_up_calls``, ``claim_calls_now`` and ``finish_calls_now`` run on a connection of
their own that never waits (see there), for the facade to call in the event loop.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from . import _finish
from ._errors import RetryWithSavepoints, Tx, roll_back
from ._types import CallKey, Claim, ClaimResult, EffectsFailed, Finish, StateUpdate, T

R = TypeVar("R")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bridge_calls (
    station TEXT NOT NULL,
    message_id TEXT NOT NULL,
    owner TEXT,
    started REAL NOT NULL,
    finished REAL,
    response BLOB,
    fingerprint INTEGER,
    PRIMARY KEY (station, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bridge_calls_finished ON bridge_calls (finished);
CREATE TABLE IF NOT EXISTS bridge_stations (
    station TEXT PRIMARY KEY,
    version TEXT,
    state TEXT,
    status TEXT,
    status_at REAL,
    last_seen REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bridge_station_kv (
    station TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (station, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bridge_station_kv_key ON bridge_station_kv (key, station);
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class SqliteStore:
    """:class:`Store` on SQLite in WAL mode; safe to share between processes on one machine.

    ``lease`` is how long (seconds) an in-progress mark of another worker is respected before
    it is taken to be abandoned; ``busy_timeout`` how long (seconds) a statement waits for
    another connection's write lock before it fails with ``sqlite3.OperationalError``.
    """

    def __init__(self, path: str, *, lease: float = 60.0, busy_timeout: float = 30.0) -> None:
        self.path = path
        self.lease = lease
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        # the event loop's own connection (``*_now`` methods, look_up_calls): it never waits
        self._now_db: sqlite3.Connection | None = None
        self._now_lock = threading.Lock()
        self._now_usable = not (path in ("", ":memory:") or path.startswith("file::memory:"))
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        with self._tx():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._db.execute(stmt)
            # the queue of CALLs to stations is each station's rpc.OutboundQueue now, kept with
            # update_station_state; the table of an earlier layout goes
            self._db.execute("DROP TABLE IF EXISTS bridge_outgoing")
            # a store of an earlier layout: its answers have no fingerprint (taken as matching)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(bridge_calls)")}
            if "fingerprint" not in columns:
                self._db.execute("ALTER TABLE bridge_calls ADD COLUMN fingerprint INTEGER")

    # -- transactions ------------------------------------------------------------------------

    def _tx(self) -> Tx:
        return Tx(self._db, self._lock)

    # -- received CALLs ----------------------------------------------------------------------

    def claim_call(
        self, station: str, message_id: str, owner: str, now: float, *, mark: bool = True,
        fingerprint: int | None = None,
    ) -> ClaimResult:  # fmt: skip
        return self.claim_calls([(station, message_id, fingerprint)], owner, now, mark=mark)[0]

    def claim_calls(
        self, keys: Sequence[CallKey], owner: str, now: float, *, mark: bool = True
    ) -> list[ClaimResult]:
        if not keys:
            return []
        if not mark:
            with self._lock:
                return [self._look_up(self._db, *key) for key in keys]
        with self._lock:
            return self._mark_all(self._db, keys, owner, now)

    def _mark_all(
        self, db: sqlite3.Connection, keys: Sequence[CallKey], owner: str, now: float
    ) -> list[ClaimResult]:
        with Tx(db):  # one write transaction for all of them
            fresh: set[tuple[str, str]] = set()  # marked by this very call
            return [self._mark(db, key, owner, now, fresh) for key in keys]

    def _look_up(
        self, db: sqlite3.Connection, station: str, message_id: str, fingerprint: int | None
    ) -> ClaimResult:
        # one statement: the answer if any (to this CALL: not to another under the same id),
        # and the station's state
        row = db.execute(
            "SELECT (SELECT response FROM bridge_calls WHERE station=?1 AND message_id=?2 "
            "AND finished IS NOT NULL AND (fingerprint IS NULL OR ?3 IS NULL OR "
            "fingerprint=?3)), (SELECT state FROM bridge_stations WHERE station=?1)",
            (station, message_id, fingerprint),
        ).fetchone()
        if row[0] is not None:
            return ClaimResult(Claim.DONE, bytes(row[0]), {})
        return ClaimResult(Claim.NEW, None, json.loads(row[1]) if row[1] else {})

    def _mark(
        self,
        db: sqlite3.Connection,
        call: CallKey,
        owner: str,
        now: float,
        fresh: set[tuple[str, str]],
    ) -> ClaimResult:
        station, message_id, fingerprint = call
        row = db.execute(
            "SELECT owner, started, finished, response, fingerprint FROM bridge_calls "
            "WHERE station=? AND message_id=?",
            (station, message_id),
        ).fetchone()
        key = (station, message_id)
        if row is None:
            db.execute(
                "INSERT INTO bridge_calls (station, message_id, owner, started, fingerprint) "
                "VALUES (?, ?, ?, ?, ?)",
                (station, message_id, owner, now, fingerprint),
            )
            fresh.add(key)
            return ClaimResult(Claim.NEW, None, self._state(db, station))
        prev_owner, started, finished, response, stored = row
        if finished is not None:
            if stored is None or fingerprint is None or stored == fingerprint:
                return ClaimResult(Claim.DONE, bytes(response), {})
            # another CALL under this id answered before: this one is new, marked in place
        elif key in fresh:  # the same CALL twice in one claim: the first copy has it
            return ClaimResult(Claim.BUSY, None, {})
        # Our own mark from an earlier claim: the worker's session, which knows what is really
        # in hand, asked again, so the first attempt was given up (our code failed on it, or
        # the handler's writes did): take it again instead of leaving it unanswered.
        elif prev_owner != owner and now - started < self.lease:
            return ClaimResult(Claim.BUSY, None, {})
        fresh.add(key)
        db.execute(  # the mark is this claim's now, for this CALL (the one before may differ)
            "UPDATE bridge_calls SET owner=?, started=?, finished=NULL, response=NULL, "
            "fingerprint=? WHERE station=? AND message_id=?",
            (owner, now, fingerprint, station, message_id),
        )
        return ClaimResult(Claim.NEW, None, self._state(db, station))

    @staticmethod
    def _state(db: sqlite3.Connection, station: str) -> dict[str, Any]:
        row = db.execute("SELECT state FROM bridge_stations WHERE station=?", (station,)).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def finish_calls(self, items: Sequence[Finish]) -> list[bytes | EffectsFailed | None]:
        with self._lock:
            return self._finish(self._db, items)

    @staticmethod
    def _finish(
        db: sqlite3.Connection, items: Sequence[Finish]
    ) -> list[bytes | EffectsFailed | None]:
        if len(items) == 1 and not items[0].effects and items[0].state is None:
            it = items[0]
            if not it.touch_station:  # the common case: one statement, its own transaction
                cur = db.execute(_finish.statement(it), _finish.finish_row(it))
                if cur.rowcount:
                    return [None]
                return [_finish.stored_response(db, it)]
        try:  # the whole batch in a few statements ...
            with Tx(db):
                return _finish.batch(db, items)
        except RetryWithSavepoints:  # ... unless a handler's writes failed: item by item
            pass
        with Tx(db):
            return _finish.one_by_one(db, items)

    # -- the event loop's own connection -----------------------------------------------------
    #
    # The ``*_now`` methods and look_up_calls are for the event loop to call directly, when
    # the database thread has nothing queued (AsyncStore decides): each runs on a connection of
    # its own that never waits: no busy timeout (another connection's write lock makes it give
    # up at once), no automatic checkpoint (the checkpoint's fsync is :meth:`checkpoint`'s job,
    # on the database thread), and with synchronous=NORMAL in WAL mode a commit appends to the
    # WAL without an fsync. Each returns None when it cannot answer at once: locked, any
    # other SQLite error (rolled back), an in-memory database (a second connection cannot see
    # it) or a journal that is not a WAL; the caller then asks the database thread, whose
    # connection waits for the lock and raises what fails. What the loop's connection reads is
    # the committed state (answers not yet committed are not there: the bridge's session knows
    # those).

    def look_up_calls(self, keys: Sequence[CallKey]) -> list[ClaimResult] | None:
        """:meth:`claim_calls` without marks (one worker: nothing to write), in the loop."""
        if not keys:
            return []
        return self._now(lambda db: [self._look_up(db, *key) for key in keys])

    def claim_calls_now(
        self, keys: Sequence[CallKey], owner: str, now: float
    ) -> list[ClaimResult] | None:
        """:meth:`claim_calls` with marks (several workers), in the loop."""
        if not keys:
            return []
        return self._now(lambda db: self._mark_all(db, keys, owner, now))

    def finish_calls_now(
        self, items: Sequence[Finish]
    ) -> list[bytes | EffectsFailed | None] | None:
        """:meth:`finish_calls` in the loop."""
        if not items:
            return []
        return self._now(lambda db: self._finish(db, items))

    def checkpoint(self) -> None:
        """Copy the WAL into the database (PASSIVE: waits for no one; on the database thread,
        which is where its fsync belongs): the loop's connection leaves this to it."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _now(self, fn: Callable[[sqlite3.Connection], R]) -> R | None:
        if not self._now_usable or not self._now_lock.acquire(blocking=False):
            return None
        try:
            db = self._now_db
            if db is None:
                db = self._now_db = self._connect_now()
                if db is None:
                    return None
            try:
                return fn(db)
            except sqlite3.Error:
                roll_back(db)
                return None
        finally:
            self._now_lock.release()

    def _connect_now(self) -> sqlite3.Connection | None:
        try:
            db = sqlite3.connect(
                self.path, timeout=0.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error:
            return None
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                raise sqlite3.OperationalError("not a WAL journal")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error:
            db.close()
            self._now_usable = False
            return None
        return db

    def release_owner(self, owner: str) -> int:
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM bridge_calls WHERE owner=? AND finished IS NULL", (owner,)
            )
            return cur.rowcount

    # -- stations ----------------------------------------------------------------------------

    def station_version(self, station: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT version FROM bridge_stations WHERE station=?", (station,)
            ).fetchone()
        return row[0] if row else None

    def station_state(self, station: str) -> dict[str, Any]:
        with self._lock:
            return self._state(self._db, station)

    def set_status(self, station: str, status: str, now: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO bridge_stations (station, status, status_at) VALUES (?, ?, ?) "
                "ON CONFLICT(station) DO UPDATE SET status=excluded.status, "
                "status_at=excluded.status_at",
                (station, status, now),
            )

    def stations(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT station, version, status, last_seen FROM bridge_stations ORDER BY station"
            ).fetchall()
        return [
            dict(zip(("station", "version", "status", "last_seen"), r, strict=True)) for r in rows
        ]

    # -- per-station values (the session machine's outbound queue) ---------------------------

    def update_station_state(self, station: str, key: str, fn: StateUpdate[T], now: float) -> T:
        # BEGIN IMMEDIATE takes the write lock before the read: no other worker can change the
        # value between our read and our write (no lost update between processes)
        with self._tx() as db:
            row = db.execute(
                "SELECT value FROM bridge_station_kv WHERE station=? AND key=?", (station, key)
            ).fetchone()
            old = json.loads(row[0]) if row else None
            new, result = fn(old)  # an exception here rolls back (``Tx.__exit__``)
            if new is None:
                if row is not None:
                    db.execute(
                        "DELETE FROM bridge_station_kv WHERE station=? AND key=?", (station, key)
                    )
            else:
                text = _dumps(new)
                if row is None or text != row[0]:
                    db.execute(
                        "INSERT INTO bridge_station_kv (station, key, value, updated) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT(station, key) DO UPDATE SET "
                        "value=excluded.value, updated=excluded.updated",
                        (station, key, text, now),
                    )
            return result

    def scan_station_state(self, key: str) -> list[tuple[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT station, value FROM bridge_station_kv WHERE key=? ORDER BY station",
                (key,),
            ).fetchall()
        return [(station, json.loads(value)) for station, value in rows]

    # -- calls to stations (the bridge's queue until the session machine replaces it) --------

    def prune(self, older_than: float) -> int:
        with self._tx() as db:
            return db.execute(
                "DELETE FROM bridge_calls WHERE finished IS NOT NULL AND finished < ?",
                (older_than,),
            ).rowcount

    def close(self) -> None:
        with self._now_lock:
            if self._now_db is not None:
                self._now_db.close()
                self._now_db = None
            self._now_usable = False
        with self._lock:
            self._db.close()
