"""The bridge's built-in reference charge system.

It accepts every boot notification, authorizes id tokens against an allow-list, and records
boots, status changes, authorizations, transaction events and meter values in SQLite, for
OCPP 1.6, 2.0.1 and 2.1. It is a starting point and a test double, not a CSMS.

Every received event is recorded with a plain INSERT (no de-duplication of its own), so the
``ref_events`` table shows exactly how often the handler ran for each CALL. Inside the bridge
its writes are committed together with the bridge's answer (:func:`.store.defer_sql`), which is
what makes "handled exactly once" hold across crashes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

from ..behaviours import Behaviour, Context
from .store import defer_sql

__all__ = ["Recorder", "build_reference", "utc_now"]

log = logging.getLogger("ocpp_iot.bridge.reference")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


_TX_COLUMNS = frozenset({"id_token", "started", "ended", "stopped_reason", "energy_wh"})


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
        payload: dict[str, Any],
        *,
        transaction_id: str | None = None,
        seq_no: int | None = None,
        event_type: str | None = None,
        meter_values: Iterable[dict[str, Any]] = (),
        transaction_update: dict[str, Any] | None = None,
    ) -> None:
        """Record one CALL: with the bridge's answer if inside the bridge, else right away."""
        stmts: list[tuple[str, tuple[Any, ...]]] = [
            (
                "INSERT INTO ref_events (station, message_id, version, action, transaction_id,"
                " seq_no, event_type, payload, received) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    ctx.station_id,
                    ctx.message_id,
                    ctx.version,
                    action,
                    transaction_id,
                    seq_no,
                    event_type,
                    json.dumps(payload, separators=(",", ":")),
                    utc_now(),
                ),
            )
        ]
        for mv in meter_values:
            ts = mv.get("timestamp")
            for sv in mv.get("sampledValue", []):
                unit = (sv.get("unitOfMeasure") or {}).get("unit") or sv.get("unit")
                try:
                    value = float(sv.get("value"))  # 1.6 sends strings
                except (TypeError, ValueError):
                    continue
                stmts.append(
                    (
                        "INSERT INTO ref_meter_values (station, transaction_id, timestamp,"
                        " measurand, value, unit) VALUES (?,?,?,?,?,?)",
                        (
                            ctx.station_id,
                            transaction_id,
                            ts,
                            sv.get("measurand", "Energy.Active.Import.Register"),
                            value,
                            unit,
                        ),
                    )
                )
        if transaction_update is not None and transaction_id is not None:
            stmts.append(
                (
                    "INSERT INTO ref_transactions (transaction_id, station) VALUES (?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (transaction_id, ctx.station_id),
                )
            )
            for col, val in transaction_update.items():
                if val is not None and col in _TX_COLUMNS:
                    stmts.append(
                        (
                            f"UPDATE ref_transactions SET {col}=? "
                            "WHERE station=? AND transaction_id=?",
                            (val, ctx.station_id, transaction_id),
                        )
                    )
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


def _energy(meter_values: Iterable[dict[str, Any]]) -> float | None:
    best = None
    for mv in meter_values:
        for sv in mv.get("sampledValue", []):
            if (
                sv.get("measurand", "Energy.Active.Import.Register")
                == "Energy.Active.Import.Register"
            ):
                try:
                    best = float(sv["value"])
                except (KeyError, TypeError, ValueError):
                    pass
    return best


class _Reference:
    """Logic shared by the versions; payloads are read as JSON-level dicts."""

    inline: ClassVar[bool] = True  # SQLite writes are quick: run in the event loop
    heartbeat_interval: int = 300

    def __init__(self, recorder: Recorder, allow: Iterable[str] | None, interval: int) -> None:
        self.recorder = recorder
        self.allow = None if allow is None else frozenset(allow)
        self.heartbeat_interval = interval

    def _token_ok(self, token: str | None) -> bool:
        return token is not None and (self.allow is None or token in self.allow)

    def _boot(self, request: Any, ctx: Context) -> dict[str, Any]:
        self.recorder.record(ctx, "BootNotification", request.to_payload())
        ctx.state["booted"] = utc_now()
        return {"currentTime": utc_now(), "interval": self.heartbeat_interval, "status": "Accepted"}

    def _simple(self, action: str, request: Any, ctx: Context) -> None:
        self.recorder.record(ctx, action, request.to_payload())


def build_reference(
    db_path: str,
    allow: Iterable[str] | None = None,
    *,
    heartbeat_interval: int = 300,
    versions: Iterable[str] = ("1.6", "2.0.1", "2.1"),
) -> dict[str, Behaviour]:
    """The reference charge system for each of ``versions``, recording into ``db_path``."""
    from ..behaviours import v16, v21, v201

    recorder = Recorder(db_path)
    allow_list = None if allow is None else list(allow)
    if allow_list is None:
        log.warning("no id token allow-list configured: every id token is accepted")

    class Reference201(_Reference, v201.BasicChargeSystem):  # type: ignore[misc]
        def boot_notification(self, request: Any, ctx: Context) -> dict[str, Any]:
            return self._boot(request, ctx)

        def heartbeat(self, request: Any, ctx: Context) -> dict[str, Any]:
            return {"currentTime": utc_now()}

        def status_notification(self, request: Any, ctx: Context) -> dict[str, Any]:
            self._simple("StatusNotification", request, ctx)
            return {}

        def authorize(self, request: Any, ctx: Context) -> dict[str, Any]:
            p = request.to_payload()
            token = p.get("idToken", {}).get("idToken")
            ok = self._token_ok(token)
            self.recorder.record(ctx, "Authorize", p)
            return {"idTokenInfo": {"status": "Accepted" if ok else "Invalid"}}

        def transaction_event(self, request: Any, ctx: Context) -> dict[str, Any]:
            p = request.to_payload()
            info = p.get("transactionInfo", {})
            tx = info.get("transactionId")
            event = p.get("eventType")
            mvs = p.get("meterValue", [])
            update: dict[str, Any] = {"energy_wh": _energy(mvs)}
            if event == "Started":
                update["started"] = p.get("timestamp")
            if event == "Ended":
                update["ended"] = p.get("timestamp")
                update["stopped_reason"] = info.get("stoppedReason")
            token = p.get("idToken", {}).get("idToken")
            if token is not None:
                update["id_token"] = token
            self.recorder.record(
                ctx,
                "TransactionEvent",
                p,
                transaction_id=tx,
                seq_no=p.get("seqNo"),
                event_type=event,
                meter_values=mvs,
                transaction_update=update,
            )
            if token is not None:
                ok = self._token_ok(token)
                return {"idTokenInfo": {"status": "Accepted" if ok else "Invalid"}}
            return {}

        def meter_values(self, request: Any, ctx: Context) -> dict[str, Any]:
            p = request.to_payload()
            self.recorder.record(ctx, "MeterValues", p, meter_values=p.get("meterValue", []))
            return {}

        def notify_event(self, request: Any, ctx: Context) -> dict[str, Any]:
            self._simple("NotifyEvent", request, ctx)
            return {}

    class Reference21(_Reference, v21.ChargeSystem):  # type: ignore[misc]
        boot_notification = Reference201.boot_notification
        heartbeat = Reference201.heartbeat
        status_notification = Reference201.status_notification
        authorize = Reference201.authorize
        transaction_event = Reference201.transaction_event
        meter_values = Reference201.meter_values
        notify_event = Reference201.notify_event

    class Reference16(_Reference, v16.ChargeSystem):  # type: ignore[misc]
        def boot_notification(self, request: Any, ctx: Context) -> dict[str, Any]:
            return self._boot(request, ctx)

        def heartbeat(self, request: Any, ctx: Context) -> dict[str, Any]:
            return {"currentTime": utc_now()}

        def status_notification(self, request: Any, ctx: Context) -> dict[str, Any]:
            self._simple("StatusNotification", request, ctx)
            return {}

        def authorize(self, request: Any, ctx: Context) -> dict[str, Any]:
            p = request.to_payload()
            ok = self._token_ok(p.get("idTag"))
            self.recorder.record(ctx, "Authorize", p)
            return {"idTagInfo": {"status": "Accepted" if ok else "Invalid"}}

        def start_transaction(self, request: Any, ctx: Context) -> dict[str, Any]:
            p = request.to_payload()
            tx = self.recorder.next_transaction_id(ctx.station_id)
            ok = self._token_ok(p.get("idTag"))
            self.recorder.record(
                ctx,
                "StartTransaction",
                p,
                transaction_id=str(tx),
                event_type="Started",
                transaction_update={
                    "started": p.get("timestamp"),
                    "id_token": p.get("idTag"),
                    "energy_wh": float(p.get("meterStart", 0)),
                },
            )
            return {"transactionId": tx, "idTagInfo": {"status": "Accepted" if ok else "Invalid"}}

        def stop_transaction(self, request: Any, ctx: Context) -> dict[str, Any]:
            p = request.to_payload()
            tx = str(p.get("transactionId"))
            mvs = p.get("transactionData", [])
            self.recorder.record(
                ctx,
                "StopTransaction",
                p,
                transaction_id=tx,
                event_type="Ended",
                meter_values=mvs,
                transaction_update={
                    "ended": p.get("timestamp"),
                    "stopped_reason": p.get("reason"),
                    "energy_wh": float(p.get("meterStop", 0)),
                },
            )
            return {}

        def meter_values(self, request: Any, ctx: Context) -> dict[str, Any]:
            p = request.to_payload()
            tx = p.get("transactionId")
            self.recorder.record(
                ctx,
                "MeterValues",
                p,
                transaction_id=None if tx is None else str(tx),
                meter_values=p.get("meterValue", []),
            )
            return {}

    classes: dict[str, type[_Reference]] = {
        "1.6": Reference16,
        "2.0.1": Reference201,
        "2.1": Reference21,
    }
    return {
        v: classes[v](recorder, allow_list, heartbeat_interval)  # type: ignore[misc]
        for v in versions
    }
