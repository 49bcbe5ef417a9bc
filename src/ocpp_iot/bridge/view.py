"""A per-station summary for MQTT Explorer: the retained ``{prefix}/{id}/json/state`` payload.

:class:`StationView` is sans-IO: the bridge feeds it every frame it sees (:meth:`~StationView.
observe`), the station's MQTT status (:meth:`~StationView.status`) and its own complaints about a
station (:meth:`~StationView.error`); each call returns the bytes to publish, retained, on the
station's ``json/state`` topic, or ``None`` when nothing an operator cares about changed. The view
does no I/O and reads no clock: ``now`` is passed in, as float seconds since the Unix epoch.
``observe``, ``status``, ``error`` and ``restore`` never raise: a station that sends nonsense
must not break the bridge (``faults`` counts what only the last-resort catch stopped).

Payload (compact JSON, UTF-8, keys always present and in this order)::

    {
      "station": "CP1",
      "status": "online",               # "online" | "offline" | "unknown" (no status seen yet)
      "status_since": "2026-06-05T12:41:02Z",   # when status last changed; null while unknown
      "version": "2.0.1",               # "1.6" | "2.0.1" | "2.1"; null before the first frame
      "vendor": "Kempower",             # from the latest BootNotification (null when absent):
      "model": "S-Series",              #   1.6: chargePointVendor, chargePointModel,
      "serial": "59081935",             #        chargePointSerialNumber, firmwareVersion
      "firmware": "5.1.64",             #   2.x: chargingStation.vendorName, model, serialNumber,
                                        #        firmwareVersion
      "boot": {                         # null until a BootNotification is seen
        "reason": "PowerUp",            #   2.x reason; null in 1.6
        "status": "Accepted",           #   from the response; null while it is unanswered
        "at": "2026-06-05T12:41:02Z"    #   when the bridge saw the request
      },
      "last_seen": "2026-06-05T12:54:51Z",  # last frame from the station, or its "online"
      "connectors": {                   # from StatusNotification, sorted by number
        "1/1": {                        #   2.x "<evseId>/<connectorId>"; 1.6 "<connectorId>"
          "status": "Occupied",         #   2.x connectorStatus; 1.6 status
          "error": null,                #   1.6 errorCode unless NoError; always null in 2.x
          "since": "2026-06-05T12:53:40Z"   # when status or error last changed
        }
      },
      "transactions": {                 # transactions in progress, {} when none
        "1": {                          #   key: 2.x evseId ("?" while not yet known); 1.6
                                        #   connectorId. One transaction per EVSE/connector.
          "id": "c3baea9e-...",         #   2.x transactionId (string); 1.6 transactionId
                                        #   (integer; null until StartTransaction is answered)
          "connector": 1,               #   connectorId, null when not known
          "started": "2026-06-05T12:53:48Z",  # the station's timestamp of Started /
                                        #   StartTransaction, in UTC; null when not seen
          "authorized": true,           #   the id token was accepted (Authorize, TransactionEvent
                                        #   or StartTransaction answer); the token itself is
                                        #   personal data and is never published
          "state": "Charging",          #   2.x transactionInfo.chargingState; null in 1.6
          "energy_wh": 4686206.9,       #   latest Energy.Active.Import.Register, in Wh
          "power_w": 12007.9            #   latest Power.Active.Import, in W
        }
      },
      "last_error": {                   # null until an error is seen
        "at": "2026-06-05T13:00:00Z",
        "text": "station sent CALLERROR NotSupported for Reset: ..."
      },
      "counts": {"up": 41, "down": 40}  # frames observed since the view started
    }

Times are the bridge's clock (the ``now`` passed in), ISO 8601 in UTC to the second with ``Z``,
except ``started``, which is the station's own timestamp (a transaction may be reported long after
it began, from the station's offline queue), normalised to the same form.

Transactions come from 2.x TransactionEvent (Started and Updated add or update, Ended removes; an
Updated for a transaction not seen starting, after a bridge restart, is added with ``started``
null) and MeterValues (on the EVSE's transaction), and from 1.6 StartTransaction (its answer's
transactionId), MeterValues and StopTransaction. Meter values: the sample without a phase wins,
otherwise the sum of the L1, L2, L3 samples; kWh and kW (and 2.x unit multipliers) are converted.

When to publish: whenever a field other than ``last_seen`` and ``counts`` changes, and otherwise
when ``refresh`` seconds (default 300) have passed since the last publication of that station and
a new frame or status arrives, so a Heartbeat every minute does not republish the state of every
station every minute. ``status`` "online" for a station in status "unknown" also follows from any
frame the station sends (the MQTT birth message may have been missed); "offline" only from
:meth:`~StationView.status`.

After a restart, :meth:`~StationView.restore` takes the retained payload back, so the summary
does not lose what only a BootNotification tells.

Memory per station is bounded (at most 64 connectors, 16 transactions, 16 unanswered CALLs,
8 remembered token verdicts, strings cut to 64 characters, error texts to 256);
:meth:`~StationView.forget` drops a removed station.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import Any

from ..rpc import VERSIONS, Call, CallError, CallResult, CallResultError, Send

__all__ = ["StationView", "DEFAULT_REFRESH"]

#: Seconds after which a frame republishes the state only to refresh ``last_seen``.
DEFAULT_REFRESH = 300.0

MAX_CONNECTORS = 64
MAX_TRANSACTIONS = 16
MAX_PENDING = 16
MAX_TOKENS = 8
MAX_FIELD = 64
MAX_TEXT = 256

_UNKNOWN_EVSE = "?"
_ENERGY = "Energy.Active.Import.Register"
_POWER = "Power.Active.Import"
_ENERGY_FACTORS = {"Wh": 1.0, "kWh": 1000.0}
_POWER_FACTORS = {"W": 1.0, "kW": 1000.0}
_PHASES = frozenset(("L1", "L2", "L3"))


# -- small, total helpers: wrong types give None, never an exception -------------------------


_ISO_CACHE: dict[int, str] = {}  # whole second -> text: the same few seconds recur in a state


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    try:
        second = math.floor(t)
        text = _ISO_CACHE.get(second)
        if text is None:
            if len(_ISO_CACHE) >= 4096:
                _ISO_CACHE.clear()
            text = _ISO_CACHE[second] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return text
    except (OverflowError, OSError, ValueError, TypeError):
        return None


def _str(value: Any, limit: int = MAX_FIELD) -> str | None:
    if type(value) is not str:
        return None
    return value if len(value) <= limit else value[:limit]


def _int(value: Any) -> int | None:
    # bool is an int subclass; JSON true is not a connector number.
    return value if type(value) is int else None


def _dict(value: Any) -> dict[str, Any]:
    return value if type(value) is dict else {}


def _number(value: Any) -> float | None:
    """A finite number from a 2.x number or a 1.6 decimal string (SignedData gives None)."""
    if type(value) is int or type(value) is float:
        x = float(value)
    elif type(value) is str and len(value) <= 32:
        try:
            x = float(value)
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def _timestamp(value: Any) -> float | None:
    """Seconds since the epoch from an OCPP dateTime (RFC 3339); None when unreadable."""
    text = _str(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:  # OCPP requires UTC; read a missing offset as UTC
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def _token_key(id_token: Any, kind: Any = None) -> int | None:
    """An in-memory stand-in for an id token, to match an Authorize answer to a transaction.

    Only this hash is kept (and never published); the token itself is personal data.
    """
    if type(id_token) is not str:
        return None
    return hash((id_token, kind if type(kind) is str else None))


def _meter(values: Any) -> tuple[float | None, float | None]:
    """(energy Wh, power W) of the latest meter value that has them (1.6 and 2.x shapes)."""
    energy: float | None = None
    power: float | None = None
    if type(values) is not list:
        return None, None
    for value in values:
        samples = _dict(value).get("sampledValue")
        if type(samples) is not list:
            continue
        e_total = p_total = None
        e_sum = p_sum = 0.0
        e_phases = p_phases = 0
        for sample in samples:
            if type(sample) is not dict:
                continue
            # SampledValue: measurand defaults to Energy.Active.Import.Register and the unit
            # to Wh, in 1.6 and 2.x alike; 2.x adds a power-of-ten multiplier (default 0).
            measurand = sample.get("measurand", _ENERGY)
            if measurand == _ENERGY:
                factors, default_unit = _ENERGY_FACTORS, "Wh"
            elif measurand == _POWER:  # a power "in Wh" makes no sense: read a missing unit as W
                factors, default_unit = _POWER_FACTORS, "W"
            else:
                continue
            x = _number(sample.get("value"))
            if x is None:
                continue
            unit_of_measure = sample.get("unitOfMeasure")
            if type(unit_of_measure) is dict:  # 2.x: unitOfMeasure.unit and .multiplier
                unit = unit_of_measure.get("unit", default_unit)
                multiplier = unit_of_measure.get("multiplier", 0)
                if type(multiplier) is not int or not -9 <= multiplier <= 9:
                    continue
            else:  # 1.6: unit beside the value
                unit = sample.get("unit", default_unit)
                multiplier = 0
            factor = factors.get(unit) if type(unit) is str else None
            if factor is None:
                continue
            x = round(x * factor * 10.0**multiplier, 3)
            phase = sample.get("phase")
            if phase is None:
                if measurand == _ENERGY:
                    e_total = x
                else:
                    p_total = x
            elif type(phase) is str and phase in _PHASES:
                if measurand == _ENERGY:
                    e_sum += x
                    e_phases += 1
                else:
                    p_sum += x
                    p_phases += 1
        if e_total is not None:
            energy = e_total
        elif e_phases:
            energy = round(e_sum, 3)
        if p_total is not None:
            power = p_total
        elif p_phases:
            power = round(p_sum, 3)
    return energy, power


# -- per-station state -------------------------------------------------------------------------


class _Tx:
    __slots__ = ("id", "connector", "started", "authorized", "state", "energy", "power", "token")

    def __init__(self, tx_id: str | int | None) -> None:
        self.id = tx_id
        self.connector: int | None = None
        self.started: float | None = None
        self.authorized = False
        self.state: str | None = None
        self.energy: float | None = None
        self.power: float | None = None
        self.token: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "connector": self.connector,
            "started": _iso(self.started),
            "authorized": self.authorized,
            "state": self.state,
            "energy_wh": self.energy,
            "power_w": self.power,
        }


class _Station:
    __slots__ = (
        "station",
        "status",
        "status_since",
        "version",
        "vendor",
        "model",
        "serial",
        "firmware",
        "boot_reason",
        "boot_status",
        "boot_at",
        "last_seen",
        "connectors",
        "transactions",
        "last_error",
        "up",
        "down",
        "dirty",
        "published_at",
        "pending",
        "tokens",
    )

    def __init__(self, station: str) -> None:
        self.station = station
        self.status = "unknown"
        self.status_since: float | None = None
        self.version: str | None = None
        self.vendor: str | None = None
        self.model: str | None = None
        self.serial: str | None = None
        self.firmware: str | None = None
        self.boot_reason: str | None = None
        self.boot_status: str | None = None
        self.boot_at: float | None = None
        self.last_seen: float | None = None
        # (connectorId,) in 1.6, (evseId, connectorId) in 2.x -> (status, error, since)
        self.connectors: dict[tuple[int, ...], tuple[str, str | None, float]] = {}
        # "<evseId>" / "<connectorId>" / "?" -> transaction
        self.transactions: dict[str, _Tx] = {}
        self.last_error: tuple[float, str] | None = None
        self.up = 0
        self.down = 0
        self.dirty = True  # a station not published yet
        self.published_at: float | None = None
        # message id of an unanswered CALL from the station -> what its answer needs
        self.pending: dict[str, tuple[Any, ...]] = {}
        self.tokens: dict[int, bool] = {}  # token hash -> accepted (latest answers)

    def to_json(self) -> dict[str, Any]:
        boot = None
        if self.boot_at is not None:
            boot = {
                "reason": self.boot_reason,
                "status": self.boot_status,
                "at": _iso(self.boot_at),
            }
        connectors = {
            "/".join(map(str, key)): {"status": status, "error": error, "since": _iso(since)}
            for key, (status, error, since) in sorted(self.connectors.items())
        }
        transactions = {
            key: self.transactions[key].to_json()
            for key in sorted(self.transactions, key=_tx_order)
        }
        last_error = None
        if self.last_error is not None:
            last_error = {"at": _iso(self.last_error[0]), "text": self.last_error[1]}
        return {
            "station": self.station,
            "status": self.status,
            "status_since": _iso(self.status_since),
            "version": self.version,
            "vendor": self.vendor,
            "model": self.model,
            "serial": self.serial,
            "firmware": self.firmware,
            "boot": boot,
            "last_seen": _iso(self.last_seen),
            "connectors": connectors,
            "transactions": transactions,
            "last_error": last_error,
            "counts": {"up": self.up, "down": self.down},
        }

    # -- updates that mark the state changed only when a value really changes --

    def expect(self, message_id: str, context: tuple[Any, ...]) -> None:
        pending = self.pending
        if len(pending) >= MAX_PENDING and message_id not in pending:
            del pending[next(iter(pending))]  # the oldest: its answer was lost
        pending[message_id] = context

    def remember_token(self, token: int, accepted: bool) -> None:
        tokens = self.tokens
        tokens.pop(token, None)
        if len(tokens) >= MAX_TOKENS:
            del tokens[next(iter(tokens))]
        tokens[token] = accepted
        for tx in self.transactions.values():
            if tx.token == token and tx.authorized != accepted:
                tx.authorized = accepted
                self.dirty = True

    def set_connector(
        self, key: tuple[int, ...], status: str, error: str | None, now: float
    ) -> None:
        old = self.connectors.get(key)
        if old is not None:
            if old[0] == status and old[1] == error:
                return
        elif len(self.connectors) >= MAX_CONNECTORS:
            return
        self.connectors[key] = (status, error, now)
        self.dirty = True

    def find_tx(self, tx_id: str | int) -> tuple[str, _Tx] | tuple[None, None]:
        for key, tx in self.transactions.items():
            if tx.id == tx_id:
                return key, tx
        return None, None

    def place_tx(self, key: str, tx: _Tx) -> bool:
        """Put ``tx`` on EVSE/connector ``key``; one there before is stale (one per EVSE)."""
        if key not in self.transactions and len(self.transactions) >= MAX_TRANSACTIONS:
            return False
        self.transactions[key] = tx
        self.dirty = True
        return True

    def meter(self, tx: _Tx, values: Any) -> None:
        energy, power = _meter(values)
        if energy is not None and energy != tx.energy:
            tx.energy = energy
            self.dirty = True
        if power is not None and power != tx.power:
            tx.power = power
            self.dirty = True


def _tx_order(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.isdigit() else (1, key)


# -- what the station's CALLs and their answers change ------------------------------------------
# 2.0.1/2.1 part 2 use cases: B01 (boot), G01 (StatusNotification), C01 (Authorize), E01-E07
# (TransactionEvent Started/Updated/Ended, one transaction per EVSE), J01/J02 (meter values).
# 1.6 core profile: BootNotification, StatusNotification, Authorize, Start/StopTransaction
# (the transactionId comes in the StartTransaction.conf), MeterValues.
# Handlers take (station state, payload, now, message id) for CALLs from the station and
# (station state, payload, context saved with the CALL or None, now) for the answers.


def _boot(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    if st.version == "1.6":  # 1.6 BootNotification.req
        vendor = _str(p.get("chargePointVendor"))
        model = _str(p.get("chargePointModel"))
        serial = _str(p.get("chargePointSerialNumber"))
        firmware = _str(p.get("firmwareVersion"))
        reason = None
    else:  # 2.x BootNotificationRequest: chargingStation + reason
        station = _dict(p.get("chargingStation"))
        vendor = _str(station.get("vendorName"))
        model = _str(station.get("model"))
        serial = _str(station.get("serialNumber"))
        firmware = _str(station.get("firmwareVersion"))
        reason = _str(p.get("reason"))
    st.vendor, st.model, st.serial, st.firmware = vendor, model, serial, firmware
    st.boot_reason, st.boot_status, st.boot_at = reason, None, now
    st.dirty = True
    st.expect(mid, ("BootNotification",))


def _boot_answer(st: _Station, p: dict[str, Any], ctx: tuple[Any, ...] | None, now: float) -> None:
    status = _str(p.get("status"))  # Accepted / Pending / Rejected
    if status is not None and status != st.boot_status:
        st.boot_status = status
        if st.boot_at is None:  # the request was not seen (bridge restart)
            st.boot_at = now
        st.dirty = True


def _status_201(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    evse, connector = _int(p.get("evseId")), _int(p.get("connectorId"))
    status = _str(p.get("connectorStatus"))
    if evse is not None and connector is not None and status is not None:
        st.set_connector((evse, connector), status, None, now)


def _status_16(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    connector, status = _int(p.get("connectorId")), _str(p.get("status"))
    if connector is None or status is None:
        return
    error = _str(p.get("errorCode"))
    st.set_connector((connector,), status, None if error == "NoError" else error, now)


def _authorize_201(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    token = _dict(p.get("idToken"))
    key = _token_key(token.get("idToken"), token.get("type"))
    if key is not None:
        st.expect(mid, ("Authorize", key))


def _authorize_16(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    key = _token_key(p.get("idTag"))
    if key is not None:
        st.expect(mid, ("Authorize", key))


def _authorize_answer(
    st: _Station, p: dict[str, Any], ctx: tuple[Any, ...] | None, now: float
) -> None:
    if ctx is None or len(ctx) < 2:
        return
    # 2.x idTokenInfo.status, 1.6 idTagInfo.status: "Accepted" means authorized.
    info = _dict(p.get("idTokenInfo" if st.version != "1.6" else "idTagInfo"))
    status = info.get("status")
    if type(status) is str:
        st.remember_token(ctx[1], status == "Accepted")


def _transaction_event(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    info = _dict(p.get("transactionInfo"))
    tx_id = _str(info.get("transactionId"))
    if tx_id is None:
        return
    event = p.get("eventType")
    key, tx = st.find_tx(tx_id)
    if event == "Ended":
        if key is not None:
            del st.transactions[key]
            st.dirty = True
        return
    evse = _dict(p.get("evse"))
    evse_id, connector = _int(evse.get("id")), _int(evse.get("connectorId"))
    where = str(evse_id) if evse_id is not None else key or _UNKNOWN_EVSE
    if tx is None:
        tx = _Tx(tx_id)
        if event == "Started":
            tx.started = _timestamp(p.get("timestamp"))
        if not st.place_tx(where, tx):
            return
    elif key is not None and where != key:  # the EVSE became known
        del st.transactions[key]
        st.place_tx(where, tx)
    if connector is not None and connector != tx.connector:
        tx.connector = connector
        st.dirty = True
    state = _str(info.get("chargingState"))
    if state is not None and state != tx.state:
        tx.state = state
        st.dirty = True
    token = _dict(p.get("idToken"))
    token_key = _token_key(token.get("idToken"), token.get("type"))
    if token_key is not None:
        tx.token = token_key
        known = st.tokens.get(token_key)
        if known is not None and known != tx.authorized:
            tx.authorized = known
            st.dirty = True
        st.expect(mid, ("TransactionEvent", token_key))
    if p.get("triggerReason") == "Deauthorized" and tx.authorized:
        tx.authorized = False
        st.dirty = True
    if "meterValue" in p:
        st.meter(tx, p["meterValue"])


def _token_answer(st: _Station, p: dict[str, Any], ctx: tuple[Any, ...] | None, now: float) -> None:
    """TransactionEvent answer: its idTokenInfo, when present, says whether the token is valid."""
    if "idTokenInfo" in p:
        _authorize_answer(st, p, ctx, now)


def _meter_values_201(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    evse = _int(p.get("evseId"))
    tx = st.transactions.get(str(evse)) if evse is not None else None
    if tx is not None:
        st.meter(tx, p.get("meterValue"))


def _start_transaction_16(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    connector = _int(p.get("connectorId"))
    if connector is None:
        return
    tx = _Tx(None)  # the id comes with the answer
    tx.connector = connector
    tx.started = _timestamp(p.get("timestamp"))
    energy = _number(p.get("meterStart"))  # Wh (1.6 meterStart is an integer in Wh)
    tx.energy = energy
    tx.token = _token_key(p.get("idTag"))
    if tx.token is not None:
        tx.authorized = st.tokens.get(tx.token, False)
    if st.place_tx(str(connector), tx):
        st.expect(mid, ("StartTransaction", tx))


def _start_transaction_answer(
    st: _Station, p: dict[str, Any], ctx: tuple[Any, ...] | None, now: float
) -> None:
    if ctx is None or len(ctx) < 2 or not isinstance(ctx[1], _Tx):
        return
    tx: _Tx = ctx[1]
    tx_id = _int(p.get("transactionId"))
    if tx_id is not None and tx_id != tx.id:
        tx.id = tx_id
        st.dirty = True
    status = _dict(p.get("idTagInfo")).get("status")
    if type(status) is str:
        if tx.token is not None:
            st.remember_token(tx.token, status == "Accepted")
        elif tx.authorized != (status == "Accepted"):
            tx.authorized = status == "Accepted"
            st.dirty = True


def _meter_values_16(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    tx_id = _int(p.get("transactionId"))
    tx = st.find_tx(tx_id)[1] if tx_id is not None else None
    if tx is None:
        connector = _int(p.get("connectorId"))
        tx = st.transactions.get(str(connector)) if connector is not None else None
    if tx is not None:
        st.meter(tx, p.get("meterValue"))


def _stop_transaction_16(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    tx_id = _int(p.get("transactionId"))
    if tx_id is None:
        return
    key = st.find_tx(tx_id)[0]
    if key is not None:
        del st.transactions[key]
        st.dirty = True


_CALLS_2 = {
    "BootNotification": _boot,
    "StatusNotification": _status_201,
    "Authorize": _authorize_201,
    "TransactionEvent": _transaction_event,
    "MeterValues": _meter_values_201,
}
_CALLS_16 = {
    "BootNotification": _boot,
    "StatusNotification": _status_16,
    "Authorize": _authorize_16,
    "StartTransaction": _start_transaction_16,
    "MeterValues": _meter_values_16,
    "StopTransaction": _stop_transaction_16,
}
_ANSWERS = {
    "BootNotification": _boot_answer,
    "Authorize": _authorize_answer,
    "TransactionEvent": _token_answer,
    "StartTransaction": _start_transaction_answer,
}


class StationView:
    """The retained JSON state of every station the bridge sees (see the module docstring).

    ``refresh``: seconds after the last publication of a station when a frame republishes it
    even though only ``last_seen`` and ``counts`` changed. ``faults`` counts the exceptions the
    view swallowed rather than break the bridge (a bug in the view when not 0; worth a metric).
    """

    __slots__ = ("_stations", "_refresh", "faults")

    def __init__(self, refresh: float = DEFAULT_REFRESH) -> None:
        self._stations: dict[str, _Station] = {}
        self._refresh = float(refresh)
        self.faults = 0

    def __len__(self) -> int:
        return len(self._stations)

    def __contains__(self, station: object) -> bool:
        return station in self._stations

    def stations(self) -> list[str]:
        """The ids of the stations the view holds."""
        return list(self._stations)

    def observe(
        self,
        station: str,
        version: str,
        direction: str,
        frame: Any,
        now: float,
        action: str | None = None,
    ) -> bytes | None:
        """Account for one frame ``direction`` "up" (from the station) or "down" (to it).

        ``action``: for a CallResult or CallError, the action of the CALL it answers, when the
        caller knows it (otherwise ``frame.action``, otherwise what the view remembers of the CALL).
        """
        try:
            st = self._stations.get(station)
            if st is None:
                st = self._stations[station] = _Station(station)
            if version != st.version and version in VERSIONS:
                st.version = version
                st.dirty = True
            kind = type(frame)
            if direction == "up":
                st.up += 1
                st.last_seen = now
                if st.status == "unknown":  # the station speaks, so it is connected
                    st.status, st.status_since = "online", now
                    st.dirty = True
                if kind is Call or kind is Send:
                    payload = frame.payload
                    if type(payload) is dict:
                        handler = (_CALLS_16 if version == "1.6" else _CALLS_2).get(frame.action)
                        if handler is not None:
                            handler(st, payload, now, frame.message_id)
                elif kind is CallError or kind is CallResultError:
                    self._call_error(st, frame, "up", now, action)
            else:
                st.down += 1
                if kind is CallResult:
                    ctx = st.pending.pop(frame.message_id, None) if st.pending else None
                    name = action or frame.action or (ctx[0] if ctx else None)
                    answer = _ANSWERS.get(name) if name else None
                    if answer is not None and type(frame.payload) is dict:
                        answer(st, frame.payload, ctx, now)
                elif kind is CallError or kind is CallResultError:
                    self._call_error(st, frame, "down", now, action)
            return self._due(st, now)
        except Exception:  # a view must never break the bridge
            self.faults += 1
            return None

    def status(self, station: str, status: str, now: float) -> bytes | None:
        """The station's MQTT status (birth "online", will "offline") changed or was repeated."""
        try:
            if status != "online" and status != "offline":
                return None
            st = self._stations.get(station)
            if st is None:
                st = self._stations[station] = _Station(station)
            if status != st.status:
                st.status, st.status_since = status, now
                st.dirty = True
            if status == "online":
                st.last_seen = now
            return self._due(st, now)
        except Exception:
            self.faults += 1
            return None

    def error(self, station: str, text: str, now: float) -> bytes | None:
        """Something went wrong with a station (an undecodable frame, ...): set ``last_error``.

        The caller redacts ``text``; it is cut to 256 characters.
        """
        try:
            st = self._stations.get(station)
            if st is None:
                st = self._stations[station] = _Station(station)
            st.last_error = (now, str(text)[:MAX_TEXT])
            st.dirty = True
            return self._due(st, now)
        except Exception:
            self.faults += 1
            return None

    def snapshot(self, station: str) -> dict[str, Any]:
        """The state of ``station`` as the JSON value (a fresh dict); "unknown" if never seen."""
        st = self._stations.get(station)
        return (st or _Station(station)).to_json()

    def payload(self, station: str) -> bytes:
        """The bytes :meth:`observe` would publish for ``station`` now (nothing is marked)."""
        return _encode(self.snapshot(station))

    def forget(self, station: str) -> None:
        """Drop a removed station (the caller also clears its retained topic)."""
        self._stations.pop(station, None)

    def restore(self, station: str, data: bytes | str) -> bool:
        """Start from a state this view published before a restart (the retained message).

        Without it, a restarted bridge would republish every station with vendor, model, boot and
        transactions unknown until the station boots again. Only fields of the documented shape
        and types are taken; anything else is left out. A station the view already holds keeps
        what it has (frames seen since the start are newer). Returns whether the state was used.
        The next frame or status of the station publishes, as for a new station.
        """
        try:
            if station in self._stations:
                return False
            value = json.loads(data)
            if type(value) is not dict or value.get("station") != station:
                return False
            self._stations[station] = _restored(station, value)
            return True
        except Exception:  # unreadable JSON included: start afresh instead
            return False

    # -- internals --

    def _call_error(
        self, st: _Station, frame: Any, direction: str, now: float, action: str | None
    ) -> None:
        ctx = st.pending.pop(frame.message_id, None) if direction == "down" else None
        name = _str(action) or (ctx[0] if ctx else None)
        kind = "CALLRESULTERROR" if type(frame) is CallResultError else "CALLERROR"
        code = _str(frame.error_code) or "?"
        where = f" for {name}" if name else ""
        who = f"station sent {kind}" if direction == "up" else f"{kind} sent to station"
        text = f"{who} {code}{where}"
        description = _str(frame.error_description, MAX_TEXT)
        if description:
            text = f"{text}: {description}"
        st.last_error = (now, text[:MAX_TEXT])
        st.dirty = True

    def _due(self, st: _Station, now: float) -> bytes | None:
        published = st.published_at
        if not st.dirty and published is not None and 0.0 <= now - published < self._refresh:
            return None
        data = _encode(st.to_json())
        st.dirty = False
        st.published_at = now
        return data


def _restored(station: str, value: dict[str, Any]) -> _Station:
    """A station state from a published payload, taking only well-typed documented fields."""
    st = _Station(station)
    status = value.get("status")
    if status == "online" or status == "offline":
        st.status = status
        st.status_since = _timestamp(value.get("status_since"))
    version = value.get("version")
    if version in VERSIONS:
        st.version = version
    st.vendor = _str(value.get("vendor"))
    st.model = _str(value.get("model"))
    st.serial = _str(value.get("serial"))
    st.firmware = _str(value.get("firmware"))
    boot = _dict(value.get("boot"))
    st.boot_at = _timestamp(boot.get("at"))
    if st.boot_at is not None:
        st.boot_reason, st.boot_status = _str(boot.get("reason")), _str(boot.get("status"))
    st.last_seen = _timestamp(value.get("last_seen"))
    for key, item in _dict(value.get("connectors")).items():
        if len(st.connectors) >= MAX_CONNECTORS:
            break
        if type(item) is not dict:
            continue
        numbers = tuple(int(part) for part in key.split("/") if part.isdecimal() and part.isascii())
        status_text, since = _str(item.get("status")), _timestamp(item.get("since"))
        if len(numbers) in (1, 2) and len(numbers) == key.count("/") + 1 and status_text:
            if since is not None:
                st.connectors[numbers] = (status_text, _str(item.get("error")), since)
    for key, item in _dict(value.get("transactions")).items():
        if len(st.transactions) >= MAX_TRANSACTIONS:
            break
        if type(item) is not dict or not (
            key == _UNKNOWN_EVSE or (key.isdecimal() and key.isascii())
        ):
            continue
        tx_id = item.get("id")
        if not (type(tx_id) is int or _str(tx_id) == tx_id):  # 1.6 int, 2.x string (or null)
            continue
        tx = _Tx(tx_id)
        tx.connector = _int(item.get("connector"))
        tx.started = _timestamp(item.get("started"))
        tx.authorized = item.get("authorized") is True
        tx.state = _str(item.get("state"))
        energy, power = item.get("energy_wh"), item.get("power_w")
        tx.energy = _number(energy) if type(energy) is not str else None
        tx.power = _number(power) if type(power) is not str else None
        st.transactions[key] = tx
    last_error = _dict(value.get("last_error"))
    at, text = _timestamp(last_error.get("at")), _str(last_error.get("text"), MAX_TEXT)
    if at is not None and text is not None:
        st.last_error = (at, text)
    counts = _dict(value.get("counts"))
    up, down = _int(counts.get("up")), _int(counts.get("down"))
    st.up = up if up is not None and up >= 0 else 0
    st.down = down if down is not None and down >= 0 else 0
    return st


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _encode(value: dict[str, Any]) -> bytes:
    # "replace": a lone surrogate from a station's JSON string must not make encoding fail.
    return _ENCODER.encode(value).encode("utf-8", "replace")
