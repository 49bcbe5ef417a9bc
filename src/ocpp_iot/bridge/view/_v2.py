"""OCPP 2.0.1 / 2.1 frame handlers (the conventions are in :mod:`._common`).

Part 2 use cases: B01 (boot), G01 (StatusNotification), C01 (Authorize), E01-E07
(TransactionEvent Started/Updated/Ended, one transaction per EVSE), J01/J02 (meter values).
"""

from __future__ import annotations

from typing import Any

from ._common import _authorize_answer, _boot
from ._fields import _UNKNOWN_EVSE, _dict, _int, _str, _token_key
from ._record import _Station, _Tx
from ._time import _timestamp


def _status_201(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    evse, connector = _int(p.get("evseId")), _int(p.get("connectorId"))
    status = _str(p.get("connectorStatus"))
    if evse is not None and connector is not None and status is not None:
        st.set_connector((evse, connector), status, None, now)


def _authorize_201(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    token = _dict(p.get("idToken"))
    key = _token_key(token.get("idToken"), token.get("type"))
    if key is not None:
        st.expect(mid, ("Authorize", key))


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


_CALLS_2 = {
    "BootNotification": _boot,
    "StatusNotification": _status_201,
    "Authorize": _authorize_201,
    "TransactionEvent": _transaction_event,
    "MeterValues": _meter_values_201,
}
