"""SQLite statements of the queue of CALLs to stations (one outstanding per station).

Each function runs inside a write transaction that :class:`~.sqlite.SqliteStore` opened.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ._types import OutgoingCall

SCHEMA = """
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

_COLS = "station, message_id, action, payload, version, origin, owner, created, sent_at"


def _row_to_call(row: tuple[Any, ...]) -> OutgoingCall:
    station, message_id, action, payload, version, origin, owner, created, sent_at = row
    return OutgoingCall(
        station, message_id, action, json.loads(payload), version, origin, owner, created, sent_at
    )


def _next(db: sqlite3.Connection, station: str, now: float) -> OutgoingCall | None:
    row = db.execute(
        f"SELECT seq, {_COLS} FROM bridge_outgoing WHERE station=? ORDER BY seq LIMIT 1",
        (station,),
    ).fetchone()
    if row is None:
        return None
    if row[-1] is not None:  # already outstanding
        return None
    db.execute("UPDATE bridge_outgoing SET sent_at=? WHERE seq=?", (now, row[0]))
    return _row_to_call((*row[1:-1], now))


def submit(db: sqlite3.Connection, call: OutgoingCall, now: float) -> OutgoingCall | None:
    db.execute(
        f"INSERT INTO bridge_outgoing ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
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
    return _next(db, call.station, now)


def resolve(
    db: sqlite3.Connection, station: str, message_id: str, now: float
) -> tuple[OutgoingCall | None, OutgoingCall | None]:
    row = db.execute(
        f"SELECT seq, {_COLS} FROM bridge_outgoing WHERE station=? AND message_id=? "
        "AND sent_at IS NOT NULL",
        (station, message_id),
    ).fetchone()
    if row is None:
        return None, None
    db.execute("DELETE FROM bridge_outgoing WHERE seq=?", (row[0],))
    return _row_to_call(row[1:]), _next(db, station, now)


def expire(
    db: sqlite3.Connection, older_than: float, now: float
) -> list[tuple[OutgoingCall, OutgoingCall | None]]:
    rows = db.execute(
        f"SELECT seq, {_COLS} FROM bridge_outgoing WHERE sent_at IS NOT NULL AND sent_at < ?",
        (older_than,),
    ).fetchall()
    out = []
    for row in rows:
        db.execute("DELETE FROM bridge_outgoing WHERE seq=?", (row[0],))
        out.append((_row_to_call(row[1:]), _next(db, row[1], now)))
    return out
