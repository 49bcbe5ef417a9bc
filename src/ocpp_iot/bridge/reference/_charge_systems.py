"""The reference charge system of each OCPP version (typed requests in, typed responses out)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from ...behaviours import Context
from ...behaviours.v16 import ChargeSystem as _ChargeSystem16
from ...behaviours.v21 import BasicChargeSystem as _BasicChargeSystem21
from ...behaviours.v201 import BasicChargeSystem as _BasicChargeSystem201
from ...model import OcppModel, v16, v21, v201
from .._clock import utc_now
from ._recorder import (
    Recorder,
    TransactionUpdate,
    _energy,
    _samples_2x,
    _samples_16,
)


class _Reference:
    """What the versions share: the recorder, the allow-list and the heartbeat interval."""

    inline: ClassVar[bool] = True  # SQLite writes are quick: run in the event loop

    def __init__(
        self, recorder: Recorder, allow: Iterable[str] | None = None, heartbeat_interval: int = 300
    ) -> None:
        self.recorder = recorder
        self.allow = None if allow is None else frozenset(allow)
        self.heartbeat_interval = heartbeat_interval

    def _token_ok(self, token: str | None) -> bool:
        """Whether ``token`` is accepted: any token without an allow-list, else the listed."""
        return token is not None and (self.allow is None or token in self.allow)

    def _boot(self, action: str, request: OcppModel, ctx: Context) -> str:
        self.recorder.record(ctx, action, request)
        now = utc_now()
        ctx.state["booted"] = now
        return now


class _Reference2x(_Reference):
    """OCPP 2.0.1 and 2.1 read alike: one implementation over both versions' models."""

    def _authorize(
        self, request: v201.AuthorizeRequest | v21.AuthorizeRequest, ctx: Context
    ) -> bool:
        self.recorder.record(ctx, "Authorize", request)
        return self._token_ok(request.id_token.id_token)

    def _transaction_event(
        self, request: v201.TransactionEventRequest | v21.TransactionEventRequest, ctx: Context
    ) -> bool | None:
        """Record the event; the verdict on its id token, or None if it carries none."""
        info = request.transaction_info
        event = request.event_type
        samples = _samples_2x(request.meter_value)
        update: TransactionUpdate = {"energy_wh": _energy(samples)}
        if event == "Started":
            update["started"] = request.timestamp
        elif event == "Ended":
            update["ended"] = request.timestamp
            update["stopped_reason"] = info.stopped_reason
        token = None if request.id_token is None else request.id_token.id_token
        if token is not None:
            update["id_token"] = token
        self.recorder.record(
            ctx,
            "TransactionEvent",
            request,
            transaction_id=info.transaction_id,
            seq_no=request.seq_no,
            event_type=event,
            samples=samples,
            transaction_update=update,
        )
        return None if token is None else self._token_ok(token)

    def _meter_values(
        self, request: v201.MeterValuesRequest | v21.MeterValuesRequest, ctx: Context
    ) -> None:
        self.recorder.record(ctx, "MeterValues", request, samples=_samples_2x(request.meter_value))


class ReferenceChargeSystem201(_Reference2x, _BasicChargeSystem201):
    """The reference charge system for OCPP 2.0.1."""

    def boot_notification(
        self, request: v201.BootNotificationRequest, ctx: Context
    ) -> v201.BootNotificationResponse:
        return v201.BootNotificationResponse(
            current_time=self._boot("BootNotification", request, ctx),
            interval=self.heartbeat_interval,
            status=v201.RegistrationStatusEnumType.ACCEPTED,
        )

    def heartbeat(self, request: v201.HeartbeatRequest, ctx: Context) -> v201.HeartbeatResponse:
        return v201.HeartbeatResponse(current_time=utc_now())

    def status_notification(
        self, request: v201.StatusNotificationRequest, ctx: Context
    ) -> v201.StatusNotificationResponse:
        self.recorder.record(ctx, "StatusNotification", request)
        return v201.StatusNotificationResponse()

    def authorize(self, request: v201.AuthorizeRequest, ctx: Context) -> v201.AuthorizeResponse:
        return v201.AuthorizeResponse(id_token_info=_token_info_201(self._authorize(request, ctx)))

    def transaction_event(
        self, request: v201.TransactionEventRequest, ctx: Context
    ) -> v201.TransactionEventResponse:
        ok = self._transaction_event(request, ctx)
        if ok is None:  # idTokenInfo answers an idToken: none was sent
            return v201.TransactionEventResponse()
        return v201.TransactionEventResponse(id_token_info=_token_info_201(ok))

    def meter_values(
        self, request: v201.MeterValuesRequest, ctx: Context
    ) -> v201.MeterValuesResponse:
        self._meter_values(request, ctx)
        return v201.MeterValuesResponse()

    def notify_event(
        self, request: v201.NotifyEventRequest, ctx: Context
    ) -> v201.NotifyEventResponse:
        self.recorder.record(ctx, "NotifyEvent", request)
        return v201.NotifyEventResponse()


def _token_info_201(ok: bool) -> v201.IdTokenInfoType:
    status = v201.AuthorizationStatusEnumType
    return v201.IdTokenInfoType(status=status.ACCEPTED if ok else status.INVALID)


class ReferenceChargeSystem21(_Reference2x, _BasicChargeSystem21):
    """The reference charge system for OCPP 2.1 (what it does is 2.0.1's)."""

    def boot_notification(
        self, request: v21.BootNotificationRequest, ctx: Context
    ) -> v21.BootNotificationResponse:
        return v21.BootNotificationResponse(
            current_time=self._boot("BootNotification", request, ctx),
            interval=self.heartbeat_interval,
            status=v21.RegistrationStatusEnumType.ACCEPTED,
        )

    def heartbeat(self, request: v21.HeartbeatRequest, ctx: Context) -> v21.HeartbeatResponse:
        return v21.HeartbeatResponse(current_time=utc_now())

    def status_notification(
        self, request: v21.StatusNotificationRequest, ctx: Context
    ) -> v21.StatusNotificationResponse:
        self.recorder.record(ctx, "StatusNotification", request)
        return v21.StatusNotificationResponse()

    def authorize(self, request: v21.AuthorizeRequest, ctx: Context) -> v21.AuthorizeResponse:
        return v21.AuthorizeResponse(id_token_info=_token_info_21(self._authorize(request, ctx)))

    def transaction_event(
        self, request: v21.TransactionEventRequest, ctx: Context
    ) -> v21.TransactionEventResponse:
        ok = self._transaction_event(request, ctx)
        if ok is None:  # idTokenInfo answers an idToken: none was sent
            return v21.TransactionEventResponse()
        return v21.TransactionEventResponse(id_token_info=_token_info_21(ok))

    def meter_values(
        self, request: v21.MeterValuesRequest, ctx: Context
    ) -> v21.MeterValuesResponse:
        self._meter_values(request, ctx)
        return v21.MeterValuesResponse()

    def notify_event(
        self, request: v21.NotifyEventRequest, ctx: Context
    ) -> v21.NotifyEventResponse:
        self.recorder.record(ctx, "NotifyEvent", request)
        return v21.NotifyEventResponse()


def _token_info_21(ok: bool) -> v21.IdTokenInfoType:
    status = v21.AuthorizationStatusEnumType
    return v21.IdTokenInfoType(status=status.ACCEPTED if ok else status.INVALID)


class ReferenceChargeSystem16(_Reference, _ChargeSystem16):
    """The reference charge system for OCPP 1.6 (it numbers the transactions itself)."""

    def boot_notification(
        self, request: v16.BootNotificationRequest, ctx: Context
    ) -> v16.BootNotificationResponse:
        return v16.BootNotificationResponse(
            status=v16.RegistrationStatus.ACCEPTED,
            current_time=self._boot("BootNotification", request, ctx),
            interval=self.heartbeat_interval,
        )

    def heartbeat(self, request: v16.HeartbeatRequest, ctx: Context) -> v16.HeartbeatResponse:
        return v16.HeartbeatResponse(current_time=utc_now())

    def status_notification(
        self, request: v16.StatusNotificationRequest, ctx: Context
    ) -> v16.StatusNotificationResponse:
        self.recorder.record(ctx, "StatusNotification", request)
        return v16.StatusNotificationResponse()

    def authorize(self, request: v16.AuthorizeRequest, ctx: Context) -> v16.AuthorizeResponse:
        self.recorder.record(ctx, "Authorize", request)
        return v16.AuthorizeResponse(id_tag_info=_tag_info_16(self._token_ok(request.id_tag)))

    def start_transaction(
        self, request: v16.StartTransactionRequest, ctx: Context
    ) -> v16.StartTransactionResponse:
        # 1.6: the charge system assigns the transaction id in its StartTransaction.conf
        tx = self.recorder.next_transaction_id(ctx.station_id)
        self.recorder.record(
            ctx,
            "StartTransaction",
            request,
            transaction_id=str(tx),
            event_type="Started",
            transaction_update={
                "started": request.timestamp,
                "id_token": request.id_tag,
                "energy_wh": float(request.meter_start),
            },
        )
        return v16.StartTransactionResponse(
            transaction_id=tx, id_tag_info=_tag_info_16(self._token_ok(request.id_tag))
        )

    def stop_transaction(
        self, request: v16.StopTransactionRequest, ctx: Context
    ) -> v16.StopTransactionResponse:
        self.recorder.record(
            ctx,
            "StopTransaction",
            request,
            transaction_id=str(request.transaction_id),
            event_type="Ended",
            samples=_samples_16(request.transaction_data),
            transaction_update={
                "ended": request.timestamp,
                "stopped_reason": request.reason,
                "energy_wh": float(request.meter_stop),
            },
        )
        return v16.StopTransactionResponse()

    def meter_values(
        self, request: v16.MeterValuesRequest, ctx: Context
    ) -> v16.MeterValuesResponse:
        tx = request.transaction_id
        self.recorder.record(
            ctx,
            "MeterValues",
            request,
            transaction_id=None if tx is None else str(tx),
            samples=_samples_16(request.meter_value),
        )
        return v16.MeterValuesResponse()


def _tag_info_16(ok: bool) -> v16.IdTagInfo:
    status = v16.AuthorizationStatus
    return v16.IdTagInfo(status=status.ACCEPTED if ok else status.INVALID)
