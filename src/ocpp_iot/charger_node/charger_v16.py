"""What the back end can ask a 1.6 station, answered by the station machine.

Facts used (OCPP 1.6 edition 2, section 5): Reset Hard/Soft (transactions end with reason
HardReset / SoftReset, then the station restarts); RemoteStart/RemoteStopTransaction
(``AuthorizeRemoteTxRequests`` decides whether the token is authorized first); TriggerMessage;
ChangeAvailability (Scheduled while a transaction runs; persisted); UnlockConnector (a
transaction on the connector is stopped first, reason UnlockCommand); GetConfiguration /
ChangeConfiguration on the device model; ClearCache; DataTransfer (UnknownVendorId).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..behaviours import Context, v16
from .charger import PER_CONNECTOR, send_triggered
from .messages_v16 import station_status

if TYPE_CHECKING:
    from .station import StationMachine

__all__ = ["Charger16"]

_TRIGGERABLE = {
    "BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
    "FirmwareStatusNotification", "DiagnosticsStatusNotification",
}  # fmt: skip


class Charger16(v16.Charger):
    """The node's 1.6 charger behaviour; subclass it to add or change actions."""

    def __init__(self, machine: StationMachine) -> None:
        self.machine = machine

    def _numbers(self, connector_id: int | None) -> list[int]:
        numbers = sorted(self.machine.tx.connectors)
        if connector_id in (None, 0):
            return numbers
        return [connector_id] if connector_id in numbers else []

    def reset(self, request: Any, ctx: Context) -> dict[str, Any]:
        m, kind = self.machine, request.to_payload()["type"]

        def go() -> None:
            m.tx.stop_all(m.now, "reset_command", "reset_hard" if kind == "Hard" else "reset_soft")
            m.restart_due = kind

        m.after_answer(go)
        return {"status": "Accepted"}

    def remote_start_transaction(self, request: Any, ctx: Context) -> dict[str, Any]:
        p, m = request.to_payload(), self.machine
        if p.get("connectorId") == 0:
            return {"status": "Rejected"}  # 6.33: connectorId > 0 when given
        numbers = self._numbers(p.get("connectorId"))
        free = [n for n in numbers if m.tx.connectors[n].tx is None]
        free = [n for n in free if m.tx.view(n).operative and m.tx.connectors[n].fault is None]
        if not free or (p.get("connectorId") and free != numbers):
            return {"status": "Rejected"}
        plugged = [n for n in free if m.tx.connectors[n].plugged]
        number = (plugged or free)[0]
        ask = m.model.authorize_remote_start
        # 1.6 has no remoteStartId; 0 marks the authorization as a remote start
        m.after_answer(lambda: m.tx.authorize(number, p["idTag"], "Central", 0, m.now, ask=ask))
        return {"status": "Accepted"}

    def remote_stop_transaction(self, request: Any, ctx: Context) -> dict[str, Any]:
        m = self.machine
        tx = m.tx.find(csms_id=request.to_payload()["transactionId"])
        if tx is None:
            return {"status": "Rejected"}
        m.after_answer(lambda: m.tx.stop(tx, m.now, "remote_stop", "remote"))
        return {"status": "Accepted"}

    def trigger_message(self, request: Any, ctx: Context) -> dict[str, Any]:
        p, m = request.to_payload(), self.machine
        what = p["requestedMessage"]
        if what not in _TRIGGERABLE:
            return {"status": "NotImplemented"}
        connector = p.get("connectorId") if what in PER_CONNECTOR else None  # 5.17: else ignored
        numbers = self._numbers(connector)
        if not numbers:
            return {"status": "Rejected"}
        # 5.17: a StatusNotification for connector 0 is the Charge Point's own; without a
        # connectorId, the Charge Point's and each connector's
        station = what == "StatusNotification" and connector in (None, 0)
        only_station = station and connector == 0
        m.after_answer(lambda: self._triggered(what, [] if only_station else numbers, station))
        return {"status": "Accepted"}

    def _triggered(self, what: str, numbers: list[int], station: bool = False) -> None:
        m, now = self.machine, self.machine.now
        if station:
            status = station_status(m.model.is_operative(), m.csms_time(now))
            m.call(*status, ("trigger", what))
        if send_triggered(m, what, numbers) or what != "MeterValues":
            return
        t = m.csms_time(now)
        for n in numbers:
            state = m.tx.connectors[n]
            view = state.tx.view if state.tx is not None else None
            reading = m.evse.meter(n, now)
            measurands = m.model.tx_updated_measurands
            m.call(
                *m.messages.meter_values(state.info, reading, t, measurands, view),
                ("trigger", what),
            )

    def change_availability(self, request: Any, ctx: Context) -> dict[str, Any]:
        m = self.machine
        busy = [tx.view.connector.number for tx in m.tx.active()]
        answer, change = m.model.change_availability_v16(request.to_payload(), busy=busy)
        for evse_id, connector_id in change.affected:
            number = m.model.to_v16_connector(evse_id, connector_id)
            m.evse.set_available(number, m.model.is_operative(evse_id, connector_id), m.now)
        return answer

    def unlock_connector(self, request: Any, ctx: Context) -> dict[str, Any]:
        m = self.machine
        numbers = self._numbers(request.to_payload()["connectorId"])
        if not numbers or request.to_payload()["connectorId"] == 0:
            return {"status": "NotSupported"}
        state = m.tx.connectors[numbers[0]]
        if state.tx is not None:
            m.tx.stop(state.tx, m.now, "unlock_command", "unlock_command")
        return {"status": "Unlocked" if m.evse.unlock(numbers[0], m.now) else "UnlockFailed"}

    def get_configuration(self, request: Any, ctx: Context) -> dict[str, Any]:
        return self.machine.model.get_configuration(request.to_payload().get("key"))

    def change_configuration(self, request: Any, ctx: Context) -> dict[str, Any]:
        p = request.to_payload()
        return {"status": self.machine.model.change_configuration(p["key"], p["value"])}

    def clear_cache(self, request: Any, ctx: Context) -> dict[str, Any]:
        self.machine.tx.clear_cache()
        return {"status": "Accepted"}

    def data_transfer(self, request: Any, ctx: Context) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}
