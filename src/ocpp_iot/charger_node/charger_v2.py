"""What the back end can ask a 2.0.1 / 2.1 station, answered by the station machine.

Facts used (OCPP 2.0.1 part 2): B11/B12 Reset (Immediate; OnIdle: Scheduled while a transaction
runs, the free connectors Unavailable meanwhile; 2.1 B13 ImmediateAndResume: Rejected while one
runs, as this node cannot resume it); F01/F03 RequestStart/StopTransaction; F06 TriggerMessage (a
BootNotification is refused once accepted); G03/G04 ChangeAvailability (via the device model,
persisted); F05 UnlockConnector; B05-B07 Get/SetVariables (more items or bytes than ItemsPerMessage
/ BytesPerMessage: the CALLERROR the device model names) and GetBaseReport -> NotifyReport; E14
GetTransactionStatus; C11 ClearCache; P01 DataTransfer (no vendor extensions here: UnknownVendorId).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..behaviours import Context, OcppError
from .charger import PER_CONNECTOR, send_triggered
from .device_model import DeviceModelError
from .messages import iso
from .registration import SCHEDULED_RESET

if TYPE_CHECKING:
    from .station import StationMachine

__all__ = ["V2Actions"]

_TRIGGERABLE = {
    "BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "TransactionEvent",
    "FirmwareStatusNotification", "LogStatusNotification",
}  # fmt: skip


class V2Actions:
    """The actions of a 2.x station; mixed into each version's generated Charger behaviour."""

    def __init__(self, machine: StationMachine) -> None:
        self.machine = machine

    def _connector(self, evse_id: int | None, connector_id: int | None = None) -> int | None:
        for s in self.machine.tx.connectors_in_order():
            c = s.info
            if evse_id in (None, c.evse_id) and connector_id in (None, c.connector_id):
                return c.number
        return None

    def reset(self, request: Any, ctx: Context) -> dict[str, Any]:
        p, m = request.to_payload(), self.machine
        if p.get("evseId"):  # resetting one EVSE alone is not something this node can do
            return {"status": "Rejected"}
        if p["type"] == "OnIdle" and m.tx.active():
            m.reset_on_idle = SCHEDULED_RESET  # B12.FR.01; the boot says ScheduledReset

            def hold() -> None:
                # no new transaction while it waits: the connectors that are free become
                # Unavailable now, the others once their transaction ends (as a Scheduled
                # ChangeAvailability does); the restart makes them operative again
                m.model.hold_for_reset()
                m.tx.show_availability(m.now)

            m.after_answer(hold)
            return {"status": "Scheduled"}
        if p["type"] == "ImmediateAndResume" and m.tx.active():
            # 2.1 B13: the transactions would go on after the restart; this node ends what a
            # restart finds in progress (TxRecords.recover: PowerLoss), so it cannot
            return {"status": "Rejected"}

        def go() -> None:
            m.tx.stop_all(m.now, "reset_command", "reset_immediate")
            m.restart_due = p["type"]

        m.after_answer(go)
        return {"status": "Accepted"}

    def request_start_transaction(self, request: Any, ctx: Context) -> dict[str, Any]:
        p, m = request.to_payload(), self.machine
        evse_id = p.get("evseId")
        usable = [
            s
            for s in m.tx.connectors_in_order()
            if evse_id in (None, s.info.evse_id)
            and s.fault is None
            and (s.tx is None or s.tx.awaits_token)
            and (s.tx is not None or m.model.is_operative(s.info.evse_id, s.info.connector_id))
        ]
        if not usable:
            return {"status": "Rejected"}
        # F02: a transaction started at the cable (EVConnected) is the one to authorize; else
        # a connector with a cable in, else any free one (no evseId: the station chooses)
        waiting = [s for s in usable if s.tx is not None]
        state = (waiting or [s for s in usable if s.plugged] or usable)[0]
        token = p["idToken"]
        ask = m.model.authorize_remote_start
        m.after_answer(
            lambda: m.tx.authorize(
                state.info.number, token["idToken"], token["type"], p["remoteStartId"], m.now,
                ask=ask,
            )
        )  # fmt: skip
        answer: dict[str, Any] = {"status": "Accepted"}
        if state.tx is not None:
            answer["transactionId"] = state.tx.view.local_id
        return answer

    def request_stop_transaction(self, request: Any, ctx: Context) -> dict[str, Any]:
        m = self.machine
        tx = m.tx.find(local_id=request.to_payload()["transactionId"])
        if tx is None:
            return {"status": "Rejected"}
        m.after_answer(lambda: m.tx.deauthorize(tx, m.now, "remote_stop", "remote"))
        return {"status": "Accepted"}

    def trigger_message(self, request: Any, ctx: Context) -> dict[str, Any]:
        p, m = request.to_payload(), self.machine
        what = p["requestedMessage"]
        if what not in _TRIGGERABLE:
            return {"status": "NotImplemented"}
        evse = p.get("evse") or {} if what in PER_CONNECTOR else {}  # F06.FR.02: else ignored
        if what == "StatusNotification" and not ("id" in evse and "connectorId" in evse):
            return {"status": "Rejected"}  # F06.FR.12: a status is one connector's
        numbers = [
            s.info.number
            for s in m.tx.connectors_in_order()
            if evse.get("id") in (None, s.info.evse_id)
            and evse.get("connectorId") in (None, s.info.connector_id)
        ]
        if evse and not numbers:
            return {"status": "Rejected"}
        if what == "BootNotification" and m.registration == "accepted":
            return {"status": "Rejected"}  # F06.FR.17
        txs = [t for t in m.tx.active() if t.view.connector.number in numbers]
        if what == "TransactionEvent" and not txs:
            return {"status": "Rejected"}
        m.after_answer(lambda: self._triggered(what, numbers, txs))
        return {"status": "Accepted"}

    def _triggered(self, what: str, numbers: list[int], txs: list[Any]) -> None:
        m, now = self.machine, self.machine.now
        if send_triggered(m, what, numbers):
            return
        if what == "MeterValues":
            t = m.csms_time(now)
            for n in self._one_per_evse(numbers):
                reading = m.evse.meter(n, now)
                conn = m.tx.connectors[n].info
                measurands = m.model.aligned_measurands
                m.call(
                    *m.messages.meter_values(conn, reading, t, measurands, None), ("trigger", what)
                )
        elif what == "TransactionEvent":
            for tx in txs:
                m.tx.triggered_update(tx, now)

    def _one_per_evse(self, numbers: list[int]) -> list[int]:
        """A connector of each EVSE among ``numbers``, the charging one if there is: a 2.x
        MeterValues is an EVSE's (its ``evseId``), one message each."""
        m = self.machine
        charging = {t.view.connector.number for t in m.tx.active()}
        chosen: dict[int, int] = {}
        for n in numbers:
            evse_id = m.tx.connectors[n].info.evse_id
            if evse_id not in chosen or (n in charging and chosen[evse_id] not in charging):
                chosen[evse_id] = n
        return list(chosen.values())

    def change_availability(self, request: Any, ctx: Context) -> dict[str, Any]:
        m = self.machine
        answer, change = m.model.change_availability(request.to_payload(), busy=m.tx.busy_evses())
        for evse_id, connector_id in change.affected:
            number = self._connector(evse_id, connector_id)
            if number is not None:
                operative = m.model.is_operative(evse_id, connector_id)
                m.evse.set_available(number, operative, m.now)
        return answer

    def unlock_connector(self, request: Any, ctx: Context) -> dict[str, Any]:
        p, m = request.to_payload(), self.machine
        number = self._connector(p["evseId"], p["connectorId"])
        if number is None:
            return {"status": "UnknownConnector"}
        tx = m.tx.connectors[number].tx
        if tx is not None and tx.authorized:
            return {"status": "OngoingAuthorizedTransaction"}
        if tx is not None:  # F05: one not authorized (begun at the cable, or stopped already
            # and waiting for the unplug) ends; the cable goes
            m.tx.stop(tx, m.now, "unlock_command", tx.stop_asked or "unlock_command")
        return {"status": "Unlocked" if m.evse.unlock(number, m.now) else "UnlockFailed"}

    def get_variables(self, request: Any, ctx: Context) -> dict[str, Any]:
        m = self.machine
        try:
            return m.model.get_variables(request.to_payload(), now_iso=iso(m.csms_time(m.now)))
        except DeviceModelError as exc:  # B06: too many items, or too many bytes
            raise OcppError(exc.code, exc.description) from None

    def set_variables(self, request: Any, ctx: Context) -> dict[str, Any]:
        try:
            return self.machine.model.set_variables(request.to_payload())
        except DeviceModelError as exc:  # B05: too many items, or too many bytes
            raise OcppError(exc.code, exc.description) from None

    def get_base_report(self, request: Any, ctx: Context) -> dict[str, Any]:
        m = self.machine
        answer, reports = m.model.get_base_report(
            request.to_payload(), iso(m.csms_time(m.now)), lambda p: m.fits("NotifyReport", p)
        )

        def send() -> None:
            for report in reports:
                m.call("NotifyReport", report, ("report",))

        m.after_answer(send)
        return answer

    def get_transaction_status(self, request: Any, ctx: Context) -> dict[str, Any]:
        m = self.machine
        tx_id = request.to_payload().get("transactionId")
        answer: dict[str, Any] = {"messagesInQueue": m.outbox.messages_in_queue(tx_id)}
        if tx_id is not None:
            answer["ongoingIndicator"] = m.tx.find(local_id=tx_id) is not None
        return answer

    def clear_cache(self, request: Any, ctx: Context) -> dict[str, Any]:
        if not self.machine.model.auth_cache_enabled:
            return {"status": "Rejected"}  # C11.FR.04: no cache in use
        self.machine.tx.clear_cache()
        return {"status": "Accepted"}

    def data_transfer(self, request: Any, ctx: Context) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}
