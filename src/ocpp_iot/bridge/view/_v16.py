"""OCPP 1.6 frame handlers (the conventions are in :mod:`._common`).

Core profile: BootNotification, StatusNotification, Authorize, Start/StopTransaction (the
transactionId comes in the StartTransaction.conf), MeterValues.
"""

from __future__ import annotations

from typing import Any

from ._common import _boot
from ._fields import _dict, _int, _number, _str, _token_key
from ._record import _Station, _Tx
from ._time import _timestamp


def _status_16(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    connector, status = _int(p.get("connectorId")), _str(p.get("status"))
    if connector is None or status is None:
        return
    error = _str(p.get("errorCode"))
    st.set_connector((connector,), status, None if error == "NoError" else error, now)


def _authorize_16(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    key = _token_key(p.get("idTag"))
    if key is not None:
        st.expect(mid, ("Authorize", key))


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


_CALLS_16 = {
    "BootNotification": _boot,
    "StatusNotification": _status_16,
    "Authorize": _authorize_16,
    "StartTransaction": _start_transaction_16,
    "MeterValues": _meter_values_16,
    "StopTransaction": _stop_transaction_16,
}
