"""OCPP 1.6 payloads for the station machine.

Facts used (OCPP 1.6 edition 2, sections 4 and 6): BootNotification with ``chargePointModel`` /
``chargePointVendor``; StatusNotification with the ChargePointStatus values (Available,
Preparing, Charging, SuspendedEVSE, SuspendedEV, Finishing (a transaction stopped with the cable
still in), Unavailable, Faulted) and an
``errorCode`` (``NoError`` unless faulted; an unknown fault code is ``OtherError`` with the code
as ``vendorErrorCode``); StartTransaction ``meterStart`` and StopTransaction ``meterStop`` in
integer Wh; MeterValues sampled values as strings; ``transactionId`` is the back end's, from
StartTransaction.conf. 1.6 has no ``offline`` flag and no trigger reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .evse import FAULT_CODES, Connector, MeterReading
from .messages import (
    ConnectorView,
    StopReason,
    Trigger,
    TxView,
    iso,
    sample_context,
    sampled_values,
)

__all__ = ["MessagesV16", "UNBOUND_TRANSACTION_ID", "station_status"]

#: what a queued MeterValues/StopTransaction carries until StartTransaction.conf gives the back
#: end's id (the outbox then rewrites it: ``Outbox.bind_transaction``)
UNBOUND_TRANSACTION_ID = -1

_REASONS: dict[str, str] = {
    "ev_disconnected": "EVDisconnected",
    "local": "Local",
    "remote": "Remote",
    "deauthorized": "DeAuthorized",
    "reset_immediate": "HardReset",
    "reset_soft": "SoftReset",
    "reset_hard": "HardReset",
    "power_loss": "PowerLoss",
    "unlock_command": "UnlockCommand",
    "timeout": "Other",  # 1.6 has no Timeout reason
    "other": "Other",
}


class MessagesV16:
    version = "1.6"
    sample_action = "MeterValues"

    def boot(
        self, reason: str, model: str, vendor: str, serial: str | None, firmware: str | None
    ) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {"chargePointModel": model, "chargePointVendor": vendor}
        if serial:
            payload["chargePointSerialNumber"] = serial
        if firmware:
            payload["firmwareVersion"] = firmware
        return "BootNotification", payload  # 1.6 has no boot reason

    def heartbeat(self) -> tuple[str, dict[str, Any]]:
        return "Heartbeat", {}

    def status_value(self, view: ConnectorView) -> str:
        if view.fault is not None:
            return "Faulted"
        if view.in_transaction:
            if view.suspended_ev:
                return "SuspendedEV"
            return "Charging" if view.charging else "SuspendedEVSE"
        if not view.operative:
            return "Unavailable"
        if view.finishing and view.plugged:
            return "Finishing"  # stopped, the cable not yet out: not free for the next user
        if view.plugged or view.authorized:
            return "Preparing"
        return "Available"

    def status(self, view: ConnectorView, t: float) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {
            "connectorId": view.connector.number,
            "errorCode": "NoError",
            "status": self.status_value(view),
            "timestamp": iso(t),
        }
        if view.fault is not None:
            if view.fault in FAULT_CODES:
                payload["errorCode"] = view.fault
            else:
                payload["errorCode"] = "OtherError"
                payload["vendorErrorCode"] = view.fault[:50]
            if view.fault_text:
                payload["info"] = view.fault_text[:50]
        return "StatusNotification", payload

    def authorize(self, id_token: str, token_type: str) -> tuple[str, dict[str, Any]]:
        return "Authorize", {"idTag": id_token[:20]}

    def authorize_status(self, payload: dict[str, Any]) -> str:
        return str(payload.get("idTagInfo", {}).get("status", "Invalid"))

    def started(
        self,
        tx: TxView,
        reading: MeterReading,
        t: float,
        trigger: Trigger,
        *,
        offline: bool,
        measurands: Sequence[str],
        charging_state: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        return "StartTransaction", {
            "connectorId": tx.connector.number,
            "idTag": (tx.id_token or "")[:20],
            "meterStart": int(reading.energy_wh),
            "timestamp": iso(t),
        }

    def _tx_id(self, tx: TxView) -> int:
        return tx.csms_id if tx.csms_id is not None else UNBOUND_TRANSACTION_ID

    def updated(
        self,
        tx: TxView,
        reading: MeterReading,
        t: float,
        trigger: Trigger,
        *,
        offline: bool,
        measurands: Sequence[str],
        charging_state: str | None,
    ) -> tuple[str, dict[str, Any]] | None:
        if trigger == "charging_state_changed":
            return None  # 1.6 says it with a StatusNotification (SuspendedEV, Charging)
        context = sample_context(trigger)
        values = sampled_values(reading, measurands, context, v16=True)
        if not values:
            return None
        return "MeterValues", {
            "connectorId": tx.connector.number,
            "transactionId": self._tx_id(tx),
            "meterValue": [{"timestamp": iso(t), "sampledValue": values}],
        }

    def ended(
        self,
        tx: TxView,
        reading: MeterReading,
        t: float,
        trigger: Trigger,
        reason: StopReason,
        *,
        offline: bool,
        measurands: Sequence[str],
        earlier: Sequence[dict[str, Any]] = (),
    ) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {
            "meterStop": int(reading.energy_wh),
            "timestamp": iso(t),
            "transactionId": self._tx_id(tx),
            "reason": _REASONS[reason],
        }
        if tx.id_token is not None:
            payload["idTag"] = tx.id_token[:20]
        values = sampled_values(reading, measurands, "Transaction.End", v16=True)
        data = [*earlier, *([{"timestamp": iso(t), "sampledValue": values}] if values else [])]
        if data:
            payload["transactionData"] = data
        return "StopTransaction", payload

    def meter_values(
        self,
        connector: Connector,
        reading: MeterReading,
        t: float,
        measurands: Sequence[str],
        tx: TxView | None,
        context: str = "Trigger",
    ) -> tuple[str, dict[str, Any]]:
        values = sampled_values(reading, measurands, context, v16=True)
        if not values:
            values = sampled_values(reading, ["Energy.Active.Import.Register"], context, v16=True)
        payload: dict[str, Any] = {
            "connectorId": connector.number,
            "meterValue": [{"timestamp": iso(t), "sampledValue": values}],
        }
        if tx is not None and tx.csms_id is not None:
            payload["transactionId"] = tx.csms_id
        return "MeterValues", payload

    def start_answer(self, payload: dict[str, Any]) -> tuple[str | None, int | None]:
        info = payload.get("idTagInfo")
        status = str(info.get("status")) if isinstance(info, dict) else None
        tx_id = payload.get("transactionId")
        return status, tx_id if isinstance(tx_id, int) else None


def station_status(operative: bool, t: float) -> tuple[str, dict[str, Any]]:
    """The StatusNotification of connector 0, the Charge Point itself (5.17; 4.9: connector 0
    stands for the main controller)."""
    status = "Available" if operative else "Unavailable"
    payload = {"connectorId": 0, "errorCode": "NoError", "status": status, "timestamp": iso(t)}
    return "StatusNotification", payload
