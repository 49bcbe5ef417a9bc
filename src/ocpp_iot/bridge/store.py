"""What bridge workers share: answered CALLs, calls to stations, per-station state.

Every bridge worker may receive any station's next frame (MQTT 5 shared subscription), so
everything that must survive a frame changing hands, or the bridge restarting, lives behind the
:class:`Store` interface. Each method is one short transaction; none holds a lock across a
network round trip or a handler call. :class:`SqliteStore` implements it for one machine (SQLite
in WAL mode, shared by the worker processes); a PostgreSQL store for workers on several machines
implements the same methods with the same statements (see ``docs/bridge.md``).

Times are wall-clock seconds (``time.time()``), because several processes compare them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

__all__ = [
    "Claim",
    "ClaimResult",
    "EffectsFailed",
    "Finish",
    "OutgoingCall",
    "Store",
    "SqliteStore",
    "defer_sql",
    "collect_effects",
]

Statement = tuple[str, Sequence[Any]]


@dataclass
class _Effects:
    path: str
    statements: list[Statement] = field(default_factory=list)


_EFFECTS: ContextVar[_Effects | None] = ContextVar("ocpp_iot_bridge_effects", default=None)


def defer_sql(db_path: str, statements: Sequence[Statement]) -> bool:
    """Commit ``statements`` together with the bridge's answer to the CALL being handled.

    A handler that writes to the bridge's own database (the reference charge system does)
    calls this instead of committing itself: the statements then run in the same transaction
    that stores the answer for duplicate detection, so a crash leaves either both or neither,
    and a CALL delivered again after a crash is handled again from a clean slate. Returns
    False (write yourself) outside a bridge CALL or for another database.
    """
    eff = _EFFECTS.get()
    if eff is None or not eff.path or os.path.realpath(eff.path) != os.path.realpath(db_path):
        return False
    eff.statements.extend(statements)
    return True


@contextmanager
def collect_effects(db_path: str) -> Iterator[list[Statement]]:
    """Collect what handlers :func:`defer_sql` while the block runs (the bridge uses this)."""
    eff = _Effects(db_path)
    token = _EFFECTS.set(eff)
    try:
        yield eff.statements
    finally:
        _EFFECTS.reset(token)


class Claim(Enum):
    NEW = "new"  #: first sight of this CALL: run the handler, then ``finish_call``
    DONE = "done"  #: answered before: send the cached answer again
    BUSY = "busy"  #: another copy is being handled right now: send nothing


@dataclass(frozen=True, slots=True)
class ClaimResult:
    claim: Claim
    response: bytes | None = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Finish:
    """One answered CALL to store (see :meth:`Store.finish_calls`)."""

    station: str
    message_id: str
    response: bytes
    version: str
    now: float
    state: dict[str, Any] | None = None  #: None: unchanged
    effects: Sequence[Statement] = ()
    touch_station: bool = True  #: record version and last-seen time


class EffectsFailed(Exception):
    """A handler's deferred writes could not be committed (returned in place of an answer)."""


@dataclass(frozen=True, slots=True)
class OutgoingCall:
    """A CALL from the bridge (an operator or a handler) to a station."""

    station: str
    message_id: str
    action: str
    payload: dict[str, Any]
    version: str
    origin: str  #: "operator" (answer goes to json/result) or "handler" (a worker awaits it)
    owner: str  #: the worker that created it
    created: float = 0.0
    sent_at: float | None = None


class Store(Protocol):
    """The shared-state interface of the bridge (one implementation per database)."""

    def claim_call(
        self, station: str, message_id: str, owner: str, now: float, *, mark: bool = True
    ) -> ClaimResult:
        """Look a received CALL up: answered before (DONE, with the answer), in hand elsewhere
        (BUSY), or NEW, with the station's state.

        With ``mark`` the CALL is also marked in progress by ``owner``, so that other workers
        leave a repeated copy alone; a mark older than the lease counts as abandoned (its
        worker died) and is taken over. A single worker passes ``mark=False`` and keeps its
        marks in memory: one write transaction less per CALL.
        """
        ...

    def claim_calls(
        self, keys: Sequence[tuple[str, str]], owner: str, now: float, *, mark: bool = True
    ) -> list[ClaimResult]:
        """:meth:`claim_call` for several ``(station, message_id)`` at once, in one
        transaction: the bridge claims all the CALLs of one socket read together. Results are
        in the order of ``keys``; a key given twice is BUSY the second time when ``mark``."""
        ...

    def finish_calls(self, items: Sequence[Finish]) -> list[bytes | EffectsFailed | None]:
        """Store answers in one transaction, each with its handler's deferred writes
        (:func:`defer_sql`) and the station's new state and version.

        Returns, per item: None if it was stored; the answer stored before by another copy of
        the same CALL (then nothing of the item is written: send that answer instead); or
        :class:`EffectsFailed` if the item's deferred writes failed (nothing of it written).
        """
        ...

    def release_owner(self, owner: str) -> int:
        """Drop the in-progress marks of ``owner`` (a restarted worker clears its old life's)."""
        ...

    def station_version(self, station: str) -> str | None: ...

    def set_status(self, station: str, status: str, now: float) -> None: ...

    def submit_call(self, call: OutgoingCall, now: float) -> OutgoingCall | None:
        """Queue a CALL to a station; return it (marked sent) if nothing else is outstanding."""
        ...

    def resolve_call(
        self, station: str, message_id: str, now: float
    ) -> tuple[OutgoingCall | None, OutgoingCall | None]:
        """The station answered ``message_id``: return that call (None if unknown) and the next
        queued call for the station, now marked sent."""
        ...

    def expire_calls(
        self, older_than: float, now: float
    ) -> list[tuple[OutgoingCall, OutgoingCall | None]]:
        """Abandon outstanding calls sent before ``older_than``; return each with its successor."""
        ...

    def prune(self, older_than: float) -> int:
        """Forget answered CALLs finished before ``older_than``."""
        ...

    def close(self) -> None: ...


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
CREATE TABLE IF NOT EXISTS bridge_outgoing (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    station TEXT NOT NULL,
    message_id TEXT NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    version TEXT NOT NULL,
    origin TEXT NOT NULL,
    owner TEXT NOT NULL,
    created REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS bridge_outgoing_station ON bridge_outgoing (station, seq);
"""


class SqliteStore:
    """:class:`Store` on SQLite in WAL mode; safe to share between processes on one machine.

    ``lease`` is how long (seconds) an in-progress mark of another worker is respected before
    it is taken to be abandoned.
    """

    def __init__(self, path: str, *, lease: float = 60.0) -> None:
        self.path = path
        self.lease = lease
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        with self._tx():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._db.execute(stmt)

    # -- transactions ------------------------------------------------------------------------

    class _Tx:
        def __init__(self, store: SqliteStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            try:
                self.store._db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.store._lock.release()
                raise
            return self.store._db

        def __exit__(self, t: Any, v: Any, tb: Any) -> None:
            try:
                self.store._db.execute("COMMIT" if t is None else "ROLLBACK")
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
            return [self._mark(db, station, mid, owner, now) for station, mid in keys]

    def _look_up(self, station: str, message_id: str) -> ClaimResult:
        # one statement: the answer if any, and the station's state
        row = self._db.execute(
            "SELECT (SELECT response FROM bridge_calls WHERE station=?1 AND "
            "message_id=?2 AND finished IS NOT NULL), "
            "(SELECT state FROM bridge_stations WHERE station=?1)",
            (station, message_id),
        ).fetchone()
        if row[0] is not None:
            return ClaimResult(Claim.DONE, bytes(row[0]), {})
        return ClaimResult(Claim.NEW, None, json.loads(row[1]) if row[1] else {})

    def _mark(
        self, db: sqlite3.Connection, station: str, message_id: str, owner: str, now: float
    ) -> ClaimResult:
        row = db.execute(
            "SELECT owner, started, finished, response FROM bridge_calls "
            "WHERE station=? AND message_id=?",
            (station, message_id),
        ).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO bridge_calls (station, message_id, owner, started) "
                "VALUES (?, ?, ?, ?)",
                (station, message_id, owner, now),
            )
            return ClaimResult(Claim.NEW, None, self._state(station))
        prev_owner, started, finished, response = row
        if finished is not None:
            return ClaimResult(Claim.DONE, bytes(response), {})
        if prev_owner == owner or now - started < self.lease:
            return ClaimResult(Claim.BUSY, None, {})
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

    _FINISH = (
        "INSERT INTO bridge_calls (station, message_id, owner, started, finished, response) "
        "VALUES (?, ?, NULL, ?, ?, ?) ON CONFLICT(station, message_id) DO UPDATE SET "
        "finished=excluded.finished, response=excluded.response, owner=NULL "
        "WHERE bridge_calls.finished IS NULL"
    )

    def finish_calls(self, items: Sequence[Finish]) -> list[bytes | EffectsFailed | None]:
        if len(items) == 1 and not items[0].effects and items[0].state is None:
            it = items[0]
            if not it.touch_station:  # the common case: one statement, its own transaction
                with self._lock:
                    cur = self._db.execute(
                        self._FINISH, (it.station, it.message_id, it.now, it.now, it.response)
                    )
                    if cur.rowcount:
                        return [None]
                    return [self._stored_response(it)]
        results: list[bytes | EffectsFailed | None] = []
        with self._tx() as db:
            for it in items:
                savepoint = bool(it.effects)
                if savepoint:
                    db.execute("SAVEPOINT item")
                try:
                    cur = db.execute(
                        self._FINISH, (it.station, it.message_id, it.now, it.now, it.response)
                    )
                    if cur.rowcount == 0:  # another copy was answered first
                        if savepoint:
                            db.execute("RELEASE item")
                        results.append(self._stored_response(it))
                        continue
                    for sql, params in it.effects:
                        db.execute(sql, tuple(params))
                    if it.touch_station or it.state is not None:
                        db.execute(
                            "INSERT INTO bridge_stations (station, version, last_seen) "
                            "VALUES (?, ?, ?) ON CONFLICT(station) DO UPDATE SET "
                            "version=excluded.version, last_seen=excluded.last_seen",
                            (it.station, it.version, it.now),
                        )
                    if it.state is not None:
                        db.execute(
                            "UPDATE bridge_stations SET state=? WHERE station=?",
                            (json.dumps(it.state, separators=(",", ":")), it.station),
                        )
                    if savepoint:
                        db.execute("RELEASE item")
                    results.append(None)
                except sqlite3.Error as exc:
                    if not savepoint:
                        raise
                    db.execute("ROLLBACK TO item")
                    db.execute("RELEASE item")
                    results.append(EffectsFailed(str(exc)))
        return results

    def _stored_response(self, it: Finish) -> bytes:
        row = self._db.execute(
            "SELECT response FROM bridge_calls WHERE station=? AND message_id=?",
            (it.station, it.message_id),
        ).fetchone()
        return bytes(row[0])

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
            row = self._db.execute(
                "SELECT state FROM bridge_stations WHERE station=?", (station,)
            ).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

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

    # -- calls to stations -------------------------------------------------------------------

    @staticmethod
    def _row_to_call(row: tuple[Any, ...]) -> OutgoingCall:
        station, message_id, action, payload, version, origin, owner, created, sent_at = row
        return OutgoingCall(
            station,
            message_id,
            action,
            json.loads(payload),
            version,
            origin,
            owner,
            created,
            sent_at,
        )

    _COLS = "station, message_id, action, payload, version, origin, owner, created, sent_at"

    def _next(self, db: sqlite3.Connection, station: str, now: float) -> OutgoingCall | None:
        row = db.execute(
            f"SELECT seq, {self._COLS} FROM bridge_outgoing WHERE station=? ORDER BY seq LIMIT 1",
            (station,),
        ).fetchone()
        if row is None:
            return None
        if row[-1] is not None:  # already outstanding
            return None
        db.execute("UPDATE bridge_outgoing SET sent_at=? WHERE seq=?", (now, row[0]))
        return self._row_to_call((*row[1:-1], now))

    def submit_call(self, call: OutgoingCall, now: float) -> OutgoingCall | None:
        with self._tx() as db:
            db.execute(
                f"INSERT INTO bridge_outgoing ({self._COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    call.station,
                    call.message_id,
                    call.action,
                    json.dumps(call.payload, separators=(",", ":")),
                    call.version,
                    call.origin,
                    call.owner,
                    now,
                ),
            )
            return self._next(db, call.station, now)

    def resolve_call(
        self, station: str, message_id: str, now: float
    ) -> tuple[OutgoingCall | None, OutgoingCall | None]:
        with self._tx() as db:
            row = db.execute(
                f"SELECT seq, {self._COLS} FROM bridge_outgoing WHERE station=? AND message_id=? "
                "AND sent_at IS NOT NULL",
                (station, message_id),
            ).fetchone()
            if row is None:
                return None, None
            db.execute("DELETE FROM bridge_outgoing WHERE seq=?", (row[0],))
            return self._row_to_call(row[1:]), self._next(db, station, now)

    def expire_calls(
        self, older_than: float, now: float
    ) -> list[tuple[OutgoingCall, OutgoingCall | None]]:
        with self._tx() as db:
            rows = db.execute(
                f"SELECT seq, {self._COLS} FROM bridge_outgoing "
                "WHERE sent_at IS NOT NULL AND sent_at < ?",
                (older_than,),
            ).fetchall()
            out = []
            for row in rows:
                db.execute("DELETE FROM bridge_outgoing WHERE seq=?", (row[0],))
                out.append((self._row_to_call(row[1:]), self._next(db, row[1], now)))
            return out

    def prune(self, older_than: float) -> int:
        with self._tx() as db:
            return db.execute(
                "DELETE FROM bridge_calls WHERE finished IS NOT NULL AND finished < ?",
                (older_than,),
            ).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
