""":class:`SqliteStore`: the bridge's store on SQLite, shared by the worker processes of one
machine (WAL mode). Times are wall-clock seconds (``time.time()``): several processes compare
them. Every method is one short transaction and may wait up to ``busy_timeout`` for another
process's write lock, so the bridge calls it through :class:`~.facade.AsyncStore`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from . import _finish
from ._errors import RetryWithSavepoints, roll_back
from ._types import Claim, ClaimResult, EffectsFailed, Finish, StateUpdate, T

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bridge_calls (
    station TEXT NOT NULL,
    message_id TEXT NOT NULL,
    owner TEXT,
    started REAL NOT NULL,
    finished REAL,
    response BLOB,
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
        self._reader: sqlite3.Connection | None = None  # look_up_calls' own connection
        self._reader_lock = threading.Lock()
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

    # -- transactions ------------------------------------------------------------------------

    class _Tx:
        def __init__(self, store: SqliteStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            db = self.store._db
            try:
                if db.in_transaction:  # a rollback after an earlier failure failed too
                    db.execute("ROLLBACK")
                db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.store._lock.release()
                raise
            return db

        def __exit__(self, t: Any, v: Any, tb: Any) -> None:
            db = self.store._db
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
                self.store._lock.release()

    def _tx(self) -> SqliteStore._Tx:
        return SqliteStore._Tx(self)

    # -- received CALLs ----------------------------------------------------------------------

    def claim_call(
        self, station: str, message_id: str, owner: str, now: float, *, mark: bool = True
    ) -> ClaimResult:
        return self.claim_calls([(station, message_id)], owner, now, mark=mark)[0]

    def claim_calls(
        self, keys: Sequence[tuple[str, str]], owner: str, now: float, *, mark: bool = True
    ) -> list[ClaimResult]:
        if not keys:
            return []
        if not mark:
            with self._lock:
                return [self._look_up(station, message_id) for station, message_id in keys]
        with self._tx() as db:  # one write transaction for all of them
            fresh: set[tuple[str, str]] = set()  # marked by this very call
            return [self._mark(db, station, mid, owner, now, fresh) for station, mid in keys]

    def look_up_calls(self, keys: Sequence[tuple[str, str]]) -> list[ClaimResult] | None:
        """:meth:`claim_calls` without marks (one worker: nothing to write), on a read-only
        connection of its own, for the event loop to call directly: in WAL mode a reader never
        waits for the writer (our database thread committing answers, or another process), and
        the pages it reads are the hot ones. ``None`` when it cannot answer at once (an
        in-memory database, which a second connection cannot see, or a busy moment such as WAL
        recovery): then the caller asks :meth:`claim_calls` on the database thread.

        What it reads is the committed state: answers still waiting to be committed are not
        there (the bridge's own session knows those)."""
        if not keys:
            return []
        with self._reader_lock:
            try:
                db = self._reader
                if db is None:
                    if self.path in ("", ":memory:") or self.path.startswith("file::memory:"):
                        return None
                    db = sqlite3.connect(
                        self.path, timeout=0.0, isolation_level=None, check_same_thread=False
                    )
                    db.execute("PRAGMA query_only=ON")
                    self._reader = db
                return [self._look_up(station, mid, db) for station, mid in keys]
            except sqlite3.OperationalError:
                return None

    def _look_up(
        self, station: str, message_id: str, db: sqlite3.Connection | None = None
    ) -> ClaimResult:
        # one statement: the answer if any, and the station's state
        row = (
            (db or self._db)
            .execute(
                "SELECT (SELECT response FROM bridge_calls WHERE station=?1 AND "
                "message_id=?2 AND finished IS NOT NULL), "
                "(SELECT state FROM bridge_stations WHERE station=?1)",
                (station, message_id),
            )
            .fetchone()
        )
        if row[0] is not None:
            return ClaimResult(Claim.DONE, bytes(row[0]), {})
        return ClaimResult(Claim.NEW, None, json.loads(row[1]) if row[1] else {})

    def _mark(
        self,
        db: sqlite3.Connection,
        station: str,
        message_id: str,
        owner: str,
        now: float,
        fresh: set[tuple[str, str]],
    ) -> ClaimResult:
        row = db.execute(
            "SELECT owner, started, finished, response FROM bridge_calls "
            "WHERE station=? AND message_id=?",
            (station, message_id),
        ).fetchone()
        key = (station, message_id)
        if row is None:
            db.execute(
                "INSERT INTO bridge_calls (station, message_id, owner, started) "
                "VALUES (?, ?, ?, ?)",
                (station, message_id, owner, now),
            )
            fresh.add(key)
            return ClaimResult(Claim.NEW, None, self._state(station))
        prev_owner, started, finished, response = row
        if finished is not None:
            return ClaimResult(Claim.DONE, bytes(response), {})
        if key in fresh:  # the same CALL twice in one claim: the first copy has it
            return ClaimResult(Claim.BUSY, None, {})
        # Our own mark from an earlier claim: the worker's session, which knows what is really
        # in hand, asked again, so the first attempt was given up (our code failed on it, or
        # the handler's writes did): take it again instead of leaving it unanswered.
        if prev_owner != owner and now - started < self.lease:
            return ClaimResult(Claim.BUSY, None, {})
        fresh.add(key)
        db.execute(
            "UPDATE bridge_calls SET owner=?, started=? WHERE station=? AND message_id=?",
            (owner, now, station, message_id),
        )
        return ClaimResult(Claim.NEW, None, self._state(station))

    def _state(self, station: str) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT state FROM bridge_stations WHERE station=?", (station,)
        ).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def finish_calls(self, items: Sequence[Finish]) -> list[bytes | EffectsFailed | None]:
        if len(items) == 1 and not items[0].effects and items[0].state is None:
            it = items[0]
            if not it.touch_station:  # the common case: one statement, its own transaction
                with self._lock:
                    cur = self._db.execute(
                        _finish.FINISH, (it.station, it.message_id, it.now, it.now, it.response)
                    )
                    if cur.rowcount:
                        return [None]
                    return [_finish.stored_response(self._db, it)]
        try:  # the whole batch in a few statements ...
            with self._tx() as db:
                return _finish.batch(db, items)
        except RetryWithSavepoints:  # ... unless a handler's writes failed: item by item
            pass
        with self._tx() as db:
            return _finish.one_by_one(db, items)

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
            return self._state(station)

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
            new, result = fn(old)  # an exception here rolls back (``_Tx.__exit__``)
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
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        with self._lock:
            self._db.close()
