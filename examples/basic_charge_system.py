"""A basic OCPP 2.0.1 charge system: Authorize, BootNotification, Heartbeat,
StatusNotification and TransactionEvent, plus DataTransfer for one vendor.

The Python form of the example charge system of the Elixir library ocpp_model. The clock is read
here, in the application, and never inside the sans-IO core.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ocpp_iot.behaviours import Context, dispatch
from ocpp_iot.behaviours.v201 import BasicChargeSystem
from ocpp_iot.codecs import DecodeError, ocppj
from ocpp_iot.model import v201
from ocpp_iot.rpc import Call, error_for_undecodable


def current_time() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class MyTestChargeSystem(BasicChargeSystem):
    def authorize(self, request: v201.AuthorizeRequest, ctx: Context) -> v201.AuthorizeResponse:
        return v201.AuthorizeResponse(id_token_info=v201.IdTokenInfoType(status="Accepted"))

    def boot_notification(
        self, request: v201.BootNotificationRequest, ctx: Context
    ) -> v201.BootNotificationResponse:
        ctx.state["model"] = request.charging_station.model
        return v201.BootNotificationResponse(
            current_time=current_time(), interval=900, status="Accepted"
        )

    def data_transfer(
        self, request: v201.DataTransferRequest, ctx: Context
    ) -> v201.DataTransferResponse:
        if request.vendor_id == "GA" and isinstance(request.data, str):
            return v201.DataTransferResponse(status="Accepted", data=request.data[::-1])
        return v201.DataTransferResponse(status="UnknownVendorId")

    def heartbeat(self, request: v201.HeartbeatRequest, ctx: Context) -> v201.HeartbeatResponse:
        return v201.HeartbeatResponse(current_time=current_time())

    def status_notification(
        self, request: v201.StatusNotificationRequest, ctx: Context
    ) -> v201.StatusNotificationResponse:
        return v201.StatusNotificationResponse()

    def transaction_event(
        self, request: v201.TransactionEventRequest, ctx: Context
    ) -> v201.TransactionEventResponse:
        return v201.TransactionEventResponse()

    def handle(self, station_id: str, data: bytes, state: dict) -> bytes | None:
        try:
            frame = ocppj.decode(data, self.version)
        except DecodeError as exc:
            error = error_for_undecodable(exc.message_id, exc.error_code, str(exc), self.version)
            return ocppj.encode(error) if error else None
        if isinstance(frame, Call):
            ctx = Context(station_id, frame.message_id, self.version, state)
            return ocppj.encode(dispatch(self, frame, ctx))
        print(f"Received {type(frame).__name__} for id {frame.message_id}")
        return None


if __name__ == "__main__":
    cs, state = MyTestChargeSystem(), {}
    for frame in (
        b'[2,"1","BootNotification",{"chargingStation":{"model":"S-Series",'
        b'"vendorName":"Kempower"},"reason":"PowerUp"}]',
        b'[2,"2","Authorize",{"idToken":{"idToken":"04A2B3C4","type":"ISO14443"}}]',
        b'[2,"3","DataTransfer",{"vendorId":"GA","data":"olleh"}]',
        b'[2,"4","Heartbeat",{}]',
        b'[2,"5","BootNotification",{"reason":"PowerUp"}]',
        b"[2,garbage",
    ):
        answer = cs.handle("CP1", frame, state)
        if answer is not None:
            print(f"{frame.decode()}\n  -> {answer.decode()}")
    print(f"per-station state: {state}")
