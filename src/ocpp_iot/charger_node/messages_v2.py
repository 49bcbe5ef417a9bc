"""OCPP 2.0.1 and 2.1 payloads for the station machine (the two versions spell these alike).

Facts used (OCPP 2.0.1 part 2): B01 BootNotification; G01 StatusNotification with
``connectorStatus`` Available / Occupied / Unavailable / Faulted; C01 Authorize; E01-E07
TransactionEvent, ``seqNo`` set by the outbox, ``offline`` true for events that happened while
offline (E04), ``transactionInfo.chargingState`` (on Started too), ``idToken`` on Started and
on the Updated that authorizes a transaction started at the cable (E02), ``stoppedReason`` on
Ended; J02 sampled meter values with ``context`` Transaction.Begin / Sample.Periodic /
Transaction.End / Trigger.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .evse import Connector, MeterReading
from .messages import (
    ConnectorView,
    StopReason,
    Trigger,
    TxView,
    iso,
    sample_context,
    sampled_values,
)

__all__ = ["MessagesV2"]

_TRIGGERS: dict[str, str] = {
    "authorized": "Authorized",
    "cable_plugged_in": "CablePluggedIn",
    "charging_state_changed": "ChargingStateChanged",
    "ev_departed": "EVDeparted",
    "meter_value_periodic": "MeterValuePeriodic",
    "meter_value_clock": "MeterValueClock",
    "remote_start": "RemoteStart",
    "remote_stop": "RemoteStop",
    "stop_authorized": "StopAuthorized",
    "deauthorized": "Deauthorized",
    "reset_command": "ResetCommand",
    "trigger": "Trigger",
    "abnormal_condition": "AbnormalCondition",
    "ev_communication_lost": "EVCommunicationLost",
    "ev_connect_timeout": "EVConnectTimeout",
    "unlock_command": "UnlockCommand",
}
_REASONS: dict[str, str] = {
    "ev_disconnected": "EVDisconnected",
    "local": "Local",
    "remote": "Remote",
    "deauthorized": "DeAuthorized",
    "reset_immediate": "ImmediateReset",
    "reset_soft": "ImmediateReset",
    "reset_hard": "ImmediateReset",
    "power_loss": "PowerLoss",
    "unlock_command": "Other",
    "timeout": "Timeout",
    "other": "Other",
}


def _evse(c: Connector) -> dict[str, Any]:
    return {"id": c.evse_id, "connectorId": c.connector_id}


class MessagesV2:
    sample_action = "TransactionEvent"

    def __init__(self, version: str = "2.0.1") -> None:
        if version not in ("2.0.1", "2.1"):
            raise ValueError(f"MessagesV2 is for 2.0.1 and 2.1, not {version}")
        self.version = version

    def boot(
        self, reason: str, model: str, vendor: str, serial: str | None, firmware: str | None
    ) -> tuple[str, dict[str, Any]]:
        station: dict[str, Any] = {"model": model, "vendorName": vendor}
        if serial:
            station["serialNumber"] = serial
        if firmware:
            station["firmwareVersion"] = firmware
        return "BootNotification", {"chargingStation": station, "reason": reason}

    def heartbeat(self) -> tuple[str, dict[str, Any]]:
        return "Heartbeat", {}

    def status_value(self, view: ConnectorView) -> str:
        if view.fault is not None:
            return "Faulted"
        if not view.operative and not view.in_transaction:
            return "Unavailable"
        if view.plugged or view.in_transaction:
            return "Occupied"
        return "Available"

    def status(self, view: ConnectorView, t: float) -> tuple[str, dict[str, Any]]:
        c = view.connector
        return "StatusNotification", {
            "timestamp": iso(t),
            "connectorStatus": self.status_value(view),
            "evseId": c.evse_id,
            "connectorId": c.connector_id,
        }

    def authorize(self, id_token: str, token_type: str) -> tuple[str, dict[str, Any]]:
        return "Authorize", {"idToken": {"idToken": id_token, "type": token_type}}

    def authorize_status(self, payload: dict[str, Any]) -> str:
        return str(payload.get("idTokenInfo", {}).get("status", "Invalid"))

    def _event(
        self,
        event: str,
        tx: TxView,
        t: float,
        trigger: Trigger,
        offline: bool,
        info: dict[str, Any],
        values: list[dict[str, Any]],
    ) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {
            "eventType": event,
            "timestamp": iso(t),
            "triggerReason": _TRIGGERS[trigger],
            "seqNo": 0,  # the outbox sets it when it stores the message
            "transactionInfo": {"transactionId": tx.local_id, **info},
        }
        if offline:
            payload["offline"] = True
        if values:
            payload["meterValue"] = [{"timestamp": iso(t), "sampledValue": values}]
        return "TransactionEvent", payload

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
        info: dict[str, Any] = {"chargingState": charging_state} if charging_state else {}
        if tx.remote_start_id is not None:
            info["remoteStartId"] = tx.remote_start_id
        values = sampled_values(reading, measurands, "Transaction.Begin", v16=False)
        action, payload = self._event("Started", tx, t, trigger, offline, info, values)
        payload["evse"] = _evse(tx.connector)
        if tx.id_token is not None:
            payload["idToken"] = {"idToken": tx.id_token, "type": tx.token_type}
        return action, payload

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
        info: dict[str, Any] = {"chargingState": charging_state} if charging_state else {}
        context = sample_context(trigger)
        values = sampled_values(reading, measurands, context, v16=False)
        if trigger == "remote_start" and tx.remote_start_id is not None:
            info["remoteStartId"] = tx.remote_start_id  # F02
        action, payload = self._event("Updated", tx, t, trigger, offline, info, values)
        if trigger in ("authorized", "remote_start") and tx.id_token is not None:
            # E02/F02: the event that authorizes a transaction started at the cable names
            # the token
            payload["idToken"] = {"idToken": tx.id_token, "type": tx.token_type}
        return action, payload

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
        info = {"stoppedReason": _REASONS[reason]}
        values = sampled_values(reading, measurands, "Transaction.End", v16=False)
        action, payload = self._event("Ended", tx, t, trigger, offline, info, values)
        if earlier:
            payload["meterValue"] = [*earlier, *payload.get("meterValue", ())]
        return action, payload

    def meter_values(
        self,
        connector: Connector,
        reading: MeterReading,
        t: float,
        measurands: Sequence[str],
        tx: TxView | None,
        context: str = "Trigger",
    ) -> tuple[str, dict[str, Any]]:
        values = sampled_values(reading, measurands, context, v16=False)
        if not values:  # the schema needs one sampled value at least
            values = sampled_values(reading, ["Energy.Active.Import.Register"], context, v16=False)
        return "MeterValues", {
            "evseId": connector.evse_id,
            "meterValue": [{"timestamp": iso(t), "sampledValue": values}],
        }

    def start_answer(self, payload: dict[str, Any]) -> tuple[str | None, int | None]:
        info = payload.get("idTokenInfo")
        return (str(info.get("status")) if isinstance(info, dict) else None), None
