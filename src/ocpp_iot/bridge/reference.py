"""The bridge's built-in reference charge system.

It accepts every boot notification, authorizes id tokens against an allow-list, and records
boots, status changes, authorizations, transaction events and meter values in SQLite, for
OCPP 1.6 (:class:`ReferenceChargeSystem16`), 2.0.1 (:class:`ReferenceChargeSystem201`) and 2.1
(:class:`ReferenceChargeSystem21`). It is a starting point and a test double, not a CSMS.

The classes are ordinary behaviours: each method takes the typed request of its version
(``ocpp_iot.model.v201.TransactionEventRequest``, ...) and returns the typed response.
:func:`build_reference` makes one of each for the versions asked, sharing one :class:`Recorder`.

Every received event is recorded with a plain INSERT (no de-duplication of its own), so the
``ref_events`` table shows exactly how often the handler ran for each CALL. Inside the bridge
its writes are committed together with the bridge's answer (:func:`.store.defer_sql`), which is
what makes "handled exactly once" hold across crashes.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar, NamedTuple, TypedDict

from ..behaviours import Behaviour, Context
from ..behaviours.v16 import ChargeSystem as _ChargeSystem16
from ..behaviours.v21 import BasicChargeSystem as _BasicChargeSystem21
from ..behaviours.v201 import BasicChargeSystem as _BasicChargeSystem201
from ..model import OcppModel, v16, v21, v201
from ._clock import utc_now  # re-exported: tests and stations use it
from .store import Statement, defer_sql

__all__ = [
    "MeterSample",
    "Recorder",
    "ReferenceChargeSystem16",
    "ReferenceChargeSystem201",
    "ReferenceChargeSystem21",
    "TransactionUpdate",
    "build_reference",
    "utc_now",
]

log = logging.getLogger("ocpp_iot.bridge.reference")


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


class _Reference:
    """What the versions share: the recorder, the allow-list and the heartbeat interval."""

    inline: ClassVar[bool] = True  # SQLite writes are quick: run in the event loop

    def __init__(
        self, recorder: Recorder, allow: Iterable[str] | None = None, heartbeat_interval: int = 300
    ) -> None:
        self.recorder = recorder
        self.allow = None if allow is None else frozenset(allow)
        self.heartbeat_interval = heartbeat_interval

    def _token_ok(self, token: str | None) -> bool:
        """Whether ``token`` is accepted: any token without an allow-list, else the listed."""
        return token is not None and (self.allow is None or token in self.allow)

    def _boot(self, action: str, request: OcppModel, ctx: Context) -> str:
        self.recorder.record(ctx, action, request)
        now = utc_now()
        ctx.state["booted"] = now
        return now


class _Reference2x(_Reference):
    """OCPP 2.0.1 and 2.1 read alike: one implementation over both versions' models."""

    def _authorize(
        self, request: v201.AuthorizeRequest | v21.AuthorizeRequest, ctx: Context
    ) -> bool:
        self.recorder.record(ctx, "Authorize", request)
        return self._token_ok(request.id_token.id_token)

    def _transaction_event(
        self, request: v201.TransactionEventRequest | v21.TransactionEventRequest, ctx: Context
    ) -> bool | None:
        """Record the event; the verdict on its id token, or None if it carries none."""
        info = request.transaction_info
        event = request.event_type
        samples = _samples_2x(request.meter_value)
        update: TransactionUpdate = {"energy_wh": _energy(samples)}
        if event == "Started":
            update["started"] = request.timestamp
        elif event == "Ended":
            update["ended"] = request.timestamp
            update["stopped_reason"] = info.stopped_reason
        token = None if request.id_token is None else request.id_token.id_token
        if token is not None:
            update["id_token"] = token
        self.recorder.record(
            ctx,
            "TransactionEvent",
            request,
            transaction_id=info.transaction_id,
            seq_no=request.seq_no,
            event_type=event,
            samples=samples,
            transaction_update=update,
        )
        return None if token is None else self._token_ok(token)

    def _meter_values(
        self, request: v201.MeterValuesRequest | v21.MeterValuesRequest, ctx: Context
    ) -> None:
        self.recorder.record(ctx, "MeterValues", request, samples=_samples_2x(request.meter_value))


class ReferenceChargeSystem201(_Reference2x, _BasicChargeSystem201):
    """The reference charge system for OCPP 2.0.1."""

    def boot_notification(
        self, request: v201.BootNotificationRequest, ctx: Context
    ) -> v201.BootNotificationResponse:
        return v201.BootNotificationResponse(
            current_time=self._boot("BootNotification", request, ctx),
            interval=self.heartbeat_interval,
            status=v201.RegistrationStatusEnumType.ACCEPTED,
        )

    def heartbeat(self, request: v201.HeartbeatRequest, ctx: Context) -> v201.HeartbeatResponse:
        return v201.HeartbeatResponse(current_time=utc_now())

    def status_notification(
        self, request: v201.StatusNotificationRequest, ctx: Context
    ) -> v201.StatusNotificationResponse:
        self.recorder.record(ctx, "StatusNotification", request)
        return v201.StatusNotificationResponse()

    def authorize(self, request: v201.AuthorizeRequest, ctx: Context) -> v201.AuthorizeResponse:
        return v201.AuthorizeResponse(id_token_info=_token_info_201(self._authorize(request, ctx)))

    def transaction_event(
        self, request: v201.TransactionEventRequest, ctx: Context
    ) -> v201.TransactionEventResponse:
        ok = self._transaction_event(request, ctx)
        if ok is None:  # idTokenInfo answers an idToken: none was sent
            return v201.TransactionEventResponse()
        return v201.TransactionEventResponse(id_token_info=_token_info_201(ok))

    def meter_values(
        self, request: v201.MeterValuesRequest, ctx: Context
    ) -> v201.MeterValuesResponse:
        self._meter_values(request, ctx)
        return v201.MeterValuesResponse()

    def notify_event(
        self, request: v201.NotifyEventRequest, ctx: Context
    ) -> v201.NotifyEventResponse:
        self.recorder.record(ctx, "NotifyEvent", request)
        return v201.NotifyEventResponse()


def _token_info_201(ok: bool) -> v201.IdTokenInfoType:
    status = v201.AuthorizationStatusEnumType
    return v201.IdTokenInfoType(status=status.ACCEPTED if ok else status.INVALID)


class ReferenceChargeSystem21(_Reference2x, _BasicChargeSystem21):
    """The reference charge system for OCPP 2.1 (what it does is 2.0.1's)."""

    def boot_notification(
        self, request: v21.BootNotificationRequest, ctx: Context
    ) -> v21.BootNotificationResponse:
        return v21.BootNotificationResponse(
            current_time=self._boot("BootNotification", request, ctx),
            interval=self.heartbeat_interval,
            status=v21.RegistrationStatusEnumType.ACCEPTED,
        )

    def heartbeat(self, request: v21.HeartbeatRequest, ctx: Context) -> v21.HeartbeatResponse:
        return v21.HeartbeatResponse(current_time=utc_now())

    def status_notification(
        self, request: v21.StatusNotificationRequest, ctx: Context
    ) -> v21.StatusNotificationResponse:
        self.recorder.record(ctx, "StatusNotification", request)
        return v21.StatusNotificationResponse()

    def authorize(self, request: v21.AuthorizeRequest, ctx: Context) -> v21.AuthorizeResponse:
        return v21.AuthorizeResponse(id_token_info=_token_info_21(self._authorize(request, ctx)))

    def transaction_event(
        self, request: v21.TransactionEventRequest, ctx: Context
    ) -> v21.TransactionEventResponse:
        ok = self._transaction_event(request, ctx)
        if ok is None:  # idTokenInfo answers an idToken: none was sent
            return v21.TransactionEventResponse()
        return v21.TransactionEventResponse(id_token_info=_token_info_21(ok))

    def meter_values(
        self, request: v21.MeterValuesRequest, ctx: Context
    ) -> v21.MeterValuesResponse:
        self._meter_values(request, ctx)
        return v21.MeterValuesResponse()

    def notify_event(
        self, request: v21.NotifyEventRequest, ctx: Context
    ) -> v21.NotifyEventResponse:
        self.recorder.record(ctx, "NotifyEvent", request)
        return v21.NotifyEventResponse()


def _token_info_21(ok: bool) -> v21.IdTokenInfoType:
    status = v21.AuthorizationStatusEnumType
    return v21.IdTokenInfoType(status=status.ACCEPTED if ok else status.INVALID)


class ReferenceChargeSystem16(_Reference, _ChargeSystem16):
    """The reference charge system for OCPP 1.6 (it numbers the transactions itself)."""

    def boot_notification(
        self, request: v16.BootNotificationRequest, ctx: Context
    ) -> v16.BootNotificationResponse:
        return v16.BootNotificationResponse(
            status=v16.RegistrationStatus.ACCEPTED,
            current_time=self._boot("BootNotification", request, ctx),
            interval=self.heartbeat_interval,
        )

    def heartbeat(self, request: v16.HeartbeatRequest, ctx: Context) -> v16.HeartbeatResponse:
        return v16.HeartbeatResponse(current_time=utc_now())

    def status_notification(
        self, request: v16.StatusNotificationRequest, ctx: Context
    ) -> v16.StatusNotificationResponse:
        self.recorder.record(ctx, "StatusNotification", request)
        return v16.StatusNotificationResponse()

    def authorize(self, request: v16.AuthorizeRequest, ctx: Context) -> v16.AuthorizeResponse:
        self.recorder.record(ctx, "Authorize", request)
        return v16.AuthorizeResponse(id_tag_info=_tag_info_16(self._token_ok(request.id_tag)))

    def start_transaction(
        self, request: v16.StartTransactionRequest, ctx: Context
    ) -> v16.StartTransactionResponse:
        # 1.6: the charge system assigns the transaction id in its StartTransaction.conf
        tx = self.recorder.next_transaction_id(ctx.station_id)
        self.recorder.record(
            ctx,
            "StartTransaction",
            request,
            transaction_id=str(tx),
            event_type="Started",
            transaction_update={
                "started": request.timestamp,
                "id_token": request.id_tag,
                "energy_wh": float(request.meter_start),
            },
        )
        return v16.StartTransactionResponse(
            transaction_id=tx, id_tag_info=_tag_info_16(self._token_ok(request.id_tag))
        )

    def stop_transaction(
        self, request: v16.StopTransactionRequest, ctx: Context
    ) -> v16.StopTransactionResponse:
        self.recorder.record(
            ctx,
            "StopTransaction",
            request,
            transaction_id=str(request.transaction_id),
            event_type="Ended",
            samples=_samples_16(request.transaction_data),
            transaction_update={
                "ended": request.timestamp,
                "stopped_reason": request.reason,
                "energy_wh": float(request.meter_stop),
            },
        )
        return v16.StopTransactionResponse()

    def meter_values(
        self, request: v16.MeterValuesRequest, ctx: Context
    ) -> v16.MeterValuesResponse:
        tx = request.transaction_id
        self.recorder.record(
            ctx,
            "MeterValues",
            request,
            transaction_id=None if tx is None else str(tx),
            samples=_samples_16(request.meter_value),
        )
        return v16.MeterValuesResponse()


def _tag_info_16(ok: bool) -> v16.IdTagInfo:
    status = v16.AuthorizationStatus
    return v16.IdTagInfo(status=status.ACCEPTED if ok else status.INVALID)


#: The class of each version, as :func:`build_reference` makes them.
REFERENCE_CLASSES: dict[str, Callable[[Recorder, frozenset[str] | None, int], Behaviour]] = {
    "1.6": ReferenceChargeSystem16,
    "2.0.1": ReferenceChargeSystem201,
    "2.1": ReferenceChargeSystem21,
}


def build_reference(
    db_path: str,
    allow: Iterable[str] | None = None,
    *,
    heartbeat_interval: int = 300,
    versions: Iterable[str] = ("1.6", "2.0.1", "2.1"),
) -> dict[str, Behaviour]:
    """The reference charge system for each of ``versions``, recording into ``db_path``.

    ``allow`` lists the id tokens to accept (None: every token, with a warning in the log);
    ``heartbeat_interval`` is the interval the BootNotification answer gives.
    """
    recorder = Recorder(db_path)
    allow_set = None if allow is None else frozenset(allow)
    if allow_set is None:
        log.warning("no id token allow-list configured: every id token is accepted")
    return {v: REFERENCE_CLASSES[v](recorder, allow_set, heartbeat_interval) for v in versions}
