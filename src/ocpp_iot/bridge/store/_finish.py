"""SQLite statements that store answered CALLs (:meth:`~.sqlite.SqliteStore.finish_calls`).

Two ways, inside a write transaction the store opened:

- :func:`batch`, tried first: the answers and their handlers' deferred writes one after the
  other, without savepoints (a savepoint and its release cost a third of the time of an answer
  with deferred writes). If a handler's writes fail it raises
  :class:`~._errors.RetryWithSavepoints`; the store rolls everything back and uses
- :func:`one_by_one`: each answer with its writes inside a savepoint, so that a failure spoils
  only its own item (:class:`EffectsFailed`).

(Multi-row statements for a whole batch were measured too: no faster, per answer, than one
statement each.)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ._errors import RetryWithSavepoints, store_failure
from ._types import EffectsFailed, Finish

#: store an answer, unless another copy of the same CALL stored one first (then nothing changes)
FINISH = (
    "INSERT INTO bridge_calls (station, message_id, owner, started, finished, response, "
    "fingerprint) VALUES (?, ?, NULL, ?, ?, ?, ?) ON CONFLICT(station, message_id) DO UPDATE "
    "SET finished=excluded.finished, response=excluded.response, owner=NULL, "
    "fingerprint=excluded.fingerprint WHERE bridge_calls.finished IS NULL"
)
#: the same, and an answer stored for another CALL under the id (fingerprints that differ,
#: ``CallKey``) is replaced: a single worker's, whose look-up marks nothing (with marks the
#: claim resets such a row, and a late answer of a claim taken over must not replace it)
FINISH_REPLACING = FINISH + " OR bridge_calls.fingerprint != excluded.fingerprint"


def statement(it: Finish) -> str:
    return FINISH_REPLACING if it.replaces else FINISH


#: version and last-seen time, and the state if one is given (NULL keeps the stored one)
STATION = (
    "INSERT INTO bridge_stations (station, version, last_seen, state) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(station) DO UPDATE SET version=excluded.version, "
    "last_seen=excluded.last_seen, state=coalesce(excluded.state, bridge_stations.state)"
)

Result = bytes | EffectsFailed | None


def finish_row(it: Finish) -> tuple[Any, ...]:
    return (it.station, it.message_id, it.now, it.now, it.response, it.fingerprint)


def _station_row(it: Finish) -> tuple[Any, ...]:
    state = None if it.state is None else json.dumps(it.state, separators=(",", ":"))
    return (it.station, it.version, it.now, state)


def stored_response(db: sqlite3.Connection, it: Finish) -> bytes:
    row = db.execute(
        "SELECT response FROM bridge_calls WHERE station=? AND message_id=?",
        (it.station, it.message_id),
    ).fetchone()
    return bytes(row[0])


def batch(db: sqlite3.Connection, items: Sequence[Finish]) -> list[Result]:
    return _finish(db, items, savepoints=False)


def one_by_one(db: sqlite3.Connection, items: Sequence[Finish]) -> list[Result]:
    return _finish(db, items, savepoints=True)


def _finish(db: sqlite3.Connection, items: Sequence[Finish], *, savepoints: bool) -> list[Result]:
    results: list[Result] = []
    for it in items:
        savepoint = savepoints and bool(it.effects)
        if savepoint:
            db.execute("SAVEPOINT item")
        try:
            cur = db.execute(statement(it), finish_row(it))
            if cur.rowcount == 0:  # another copy was answered first
                if savepoint:
                    db.execute("RELEASE item")
                results.append(stored_response(db, it))
                continue
            for sql, params in it.effects:
                db.execute(sql, tuple(params))
            if it.touch_station or it.state is not None:
                db.execute(STATION, _station_row(it))
            if savepoint:
                db.execute("RELEASE item")
            results.append(None)
        except sqlite3.Error as exc:
            if not it.effects or store_failure(exc) or not db.in_transaction:
                raise  # the database failed, not the handler's statements
            if not savepoint:
                raise RetryWithSavepoints from exc
            db.execute("ROLLBACK TO item")
            db.execute("RELEASE item")
            results.append(EffectsFailed(str(exc)))
    return results
