"""A basic OCPP 2.0.1 charger: answers Reset and UnlockConnector.

The Python form of the example charger of the Elixir library ocpp_model. ``handle`` takes one
OCPP-J frame as bytes and returns the bytes to send back (or ``None`` for an answer to our own
CALL); carrying them is up to you: MQTT, LoRa, a WebSocket.
"""

from __future__ import annotations

from ocpp_iot.behaviours import Context, dispatch
from ocpp_iot.behaviours.v201 import BasicCharger
from ocpp_iot.codecs import DecodeError, ocppj
from ocpp_iot.model import v201
from ocpp_iot.rpc import Call, CallError, CallResult, error_for_undecodable


class MyTestCharger(BasicCharger):
    def reset(self, request: v201.ResetRequest, ctx: Context) -> v201.ResetResponse:
        # An immediate reset happens now; OnIdle waits until no transaction runs.
        if request.type == v201.ResetEnumType.IMMEDIATE:
            return v201.ResetResponse(status="Accepted")
        return v201.ResetResponse(status="Scheduled")

    def unlock_connector(
        self, request: v201.UnlockConnectorRequest, ctx: Context
    ) -> v201.UnlockConnectorResponse:
        return v201.UnlockConnectorResponse(
            status="Unlocked", status_info=v201.StatusInfoType(reason_code="cable unlocked")
        )

    def handle(self, data: bytes, state: dict) -> bytes | None:
        try:
            frame = ocppj.decode(data, self.version)
        except DecodeError as exc:
            error = error_for_undecodable(exc.message_id, exc.error_code, str(exc), self.version)
            return ocppj.encode(error) if error else None
        if isinstance(frame, Call):
            ctx = Context("CP1", frame.message_id, self.version, state)
            return ocppj.encode(dispatch(self, frame, ctx))
        if isinstance(frame, CallResult):
            print(f"Received answer for id {frame.message_id}: {frame.payload}")
        elif isinstance(frame, CallError):
            print(f"Received error for id {frame.message_id}: {frame.error_code}")
        return None


if __name__ == "__main__":
    charger, state = MyTestCharger(), {}
    for frame in (
        b'[2,"1","Reset",{"type":"Immediate"}]',
        b'[2,"2","UnlockConnector",{"evseId":1,"connectorId":1}]',
        b'[2,"3","Reset",{"type":"Sometime"}]',
        b'[2,"4","GetVariables",{"getVariableData":[]}]',
        b'[3,"17",{"currentTime":"2026-11-26T10:00:00Z"}]',
    ):
        answer = charger.handle(frame, state)
        if answer is not None:
            print(f"{frame.decode()}\n  -> {answer.decode()}")
