"""What the reference charge system records, and how: SQLite tables, the recorder, meter samples."""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from typing import NamedTuple, TypedDict

from ...behaviours import Context
from ...model import OcppModel, v16, v21, v201
from .._clock import utc_now
from ..store import Statement, defer_sql

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS ref_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        station TEXT NOT NULL,
        message_id TEXT NOT NULL,
        version TEXT NOT NULL,
        action TEXT NOT NULL,
        transaction_id TEXT,
        seq_no INTEGER,
        event_type TEXT,
        payload TEXT NOT NULL,
        received TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ref_events_station ON ref_events (station, id)",
    "CREATE TABLE IF NOT EXISTS ref_tx_ids (id INTEGER PRIMARY KEY AUTOINCREMENT, station TEXT)",
    """CREATE TABLE IF NOT EXISTS ref_transactions (
        transaction_id TEXT NOT NULL,
        station TEXT NOT NULL,
        id_token TEXT,
        started TEXT,
        ended TEXT,
        stopped_reason TEXT,
        energy_wh REAL,
        PRIMARY KEY (station, transaction_id)
    )""",
    """CREATE TABLE IF NOT EXISTS ref_meter_values (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        station TEXT NOT NULL,
        transaction_id TEXT,
        timestamp TEXT,
        measurand TEXT,
        value REAL,
        unit TEXT
    )""",
]

_INSERT_EVENT = (
    "INSERT INTO ref_events (station, message_id, version, action, transaction_id, seq_no,"
    " event_type, payload, received) VALUES (?,?,?,?,?,?,?,?,?)"
)
_INSERT_SAMPLE = (
    "INSERT INTO ref_meter_values (station, transaction_id, timestamp, measurand, value, unit)"
    " VALUES (?,?,?,?,?,?)"
)

#: The measurand of a sampled value that names none (the schemas' default, every version).
ENERGY_REGISTER = "Energy.Active.Import.Register"


class MeterSample(NamedTuple):
    """One sampled value, as a row of ``ref_meter_values``."""

    timestamp: str
    measurand: str
    value: float
    unit: str | None


class TransactionUpdate(TypedDict, total=False):
    """Columns of ``ref_transactions`` to set; a ``None`` value leaves the column as it is."""

    id_token: str | None
    started: str | None
    ended: str | None
    stopped_reason: str | None
    energy_wh: float | None


_TX_COLUMNS = frozenset(TransactionUpdate.__annotations__)


@functools.lru_cache(maxsize=64)
def _upsert_transaction(columns: tuple[str, ...]) -> str:
    """One statement that creates the transaction's row if needed and sets ``columns``."""
    if not columns:
        return (
            "INSERT INTO ref_transactions (transaction_id, station) VALUES (?, ?) "
            "ON CONFLICT DO NOTHING"
        )
    names = "".join(f", {c}" for c in columns)
    marks = ", ?" * len(columns)
    sets = ", ".join(f"{c}=excluded.{c}" for c in columns)
    return (
        f"INSERT INTO ref_transactions (transaction_id, station{names}) VALUES (?, ?{marks}) "
        f"ON CONFLICT (station, transaction_id) DO UPDATE SET {sets}"
    )


class Recorder:
    """SQLite tables of what the reference charge system saw (``ref_*``, WAL mode)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        for stmt in _SCHEMA:
            self.db.execute(stmt)

    def record(
        self,
        ctx: Context,
        action: str,
        request: OcppModel,
        *,
        transaction_id: str | None = None,
        seq_no: int | None = None,
        event_type: str | None = None,
        samples: Iterable[MeterSample] = (),
        transaction_update: TransactionUpdate | None = None,
    ) -> None:
        """Record one CALL: with the bridge's answer if inside the bridge, else right away.

        ``request`` is stored as its JSON payload; ``samples`` go to ``ref_meter_values``;
        ``transaction_update`` (with a ``transaction_id``) creates or updates the transaction.
        """
        station = ctx.station_id
        stmts: list[Statement] = [
            (
                _INSERT_EVENT,
                (
                    station,
                    ctx.message_id,
                    ctx.version,
                    action,
                    transaction_id,
                    seq_no,
                    event_type,
                    # the payload exactly as received (the fields that were set), as JSON text
                    request.model_dump_json(by_alias=True, exclude_unset=True),
                    utc_now(),
                ),
            )
        ]
        for s in samples:
            stmts.append((_INSERT_SAMPLE, (station, transaction_id, *s)))
        if transaction_update is not None and transaction_id is not None:
            # only known names reach the SQL text; the values are parameters
            pairs = [
                (c, v) for c, v in transaction_update.items() if v is not None and c in _TX_COLUMNS
            ]
            sql = _upsert_transaction(tuple(c for c, _ in pairs))
            stmts.append((sql, (transaction_id, station, *(v for _, v in pairs))))
        if defer_sql(self.path, stmts):
            return
        with self._lock:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in stmts:
                    db.execute(sql, params)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def next_transaction_id(self, station: str) -> int:
        """A new OCPP 1.6 transaction id (committed at once: a crash leaves a gap, no reuse)."""
        with self._lock:
            cur = self.db.execute("INSERT INTO ref_tx_ids (station) VALUES (?)", (station,))
            return int(cur.lastrowid or 0)

    def close(self) -> None:
        with self._lock:
            self.db.close()


# --- reading meter values out of the typed requests ------------------------------------------

_MeterValues2 = Sequence[v201.MeterValueType] | Sequence[v21.MeterValueType]
_MeterValues16 = Sequence[v16.MeterValue] | Sequence[v16.TransactionData]


def _samples_2x(meter_values: _MeterValues2 | None) -> list[MeterSample]:
    """The sampled values of OCPP 2.0.1 / 2.1 ``MeterValueType``s (numbers, unit in
    ``unitOfMeasure``)."""
    out: list[MeterSample] = []
    for mv in meter_values or ():
        for sv in mv.sampled_value:
            uom = sv.unit_of_measure
            out.append(
                MeterSample(
                    mv.timestamp,
                    sv.measurand or ENERGY_REGISTER,
                    float(sv.value),
                    None if uom is None else uom.unit,
                )
            )
    return out


def _samples_16(meter_values: _MeterValues16 | None) -> list[MeterSample]:
    """The sampled values of OCPP 1.6 ``MeterValue``s / ``TransactionData``: values are strings;
    one that is not a number (``format`` SignedData) is left out."""
    out: list[MeterSample] = []
    for mv in meter_values or ():
        for sv in mv.sampled_value:
            try:
                value = float(sv.value)
            except ValueError:
                continue
            out.append(MeterSample(mv.timestamp, sv.measurand or ENERGY_REGISTER, value, sv.unit))
    return out


def _energy(samples: Iterable[MeterSample]) -> float | None:
    """The last energy register reading among ``samples`` (None: there is none)."""
    best = None
    for s in samples:
        if s.measurand == ENERGY_REGISTER:
            best = s.value
    return best


# --- the charge systems -------------------------------------------------------------------------
