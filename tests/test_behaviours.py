"""Behaviours and dispatch: the error paths of OCPP-J part 4, sync and async, state."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ocpp_iot.behaviours import Context, OcppError, dispatch, dispatch_async, load_handler
from ocpp_iot.behaviours import v16 as b16
from ocpp_iot.behaviours import v21 as b21
from ocpp_iot.behaviours import v201 as b201
from ocpp_iot.model import v16, v201
from ocpp_iot.rpc import Call, CallError, CallResult, Send

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-26T10:00:00Z"
BOOT = {
    "chargingStation": {"model": "S-Series", "vendorName": "Kempower"},
    "reason": "PowerUp",
}
STATUS = {"timestamp": NOW, "connectorStatus": "Available", "evseId": 9, "connectorId": 1}
TX_STARTED = {
    "eventType": "Started",
    "timestamp": NOW,
    "triggerReason": "Authorized",
    "seqNo": 0,
    "transactionInfo": {"transactionId": "T1"},
}


def ctx(version: str = "2.0.1", state: dict[str, Any] | None = None, **kw: Any) -> Context:
    return Context("CP1", "1", version, state if state is not None else {}, **kw)


class ChargeSystem(b201.BasicChargeSystem):
    def authorize(self, request: v201.AuthorizeRequest, ctx: Context) -> v201.AuthorizeResponse:
        return v201.AuthorizeResponse(id_token_info={"status": "Accepted"})

    def boot_notification(self, request, ctx):
        ctx.state["boots"] = ctx.state.get("boots", 0) + 1
        assert request.charging_station.vendor_name == "Kempower"
        return v201.BootNotificationResponse(current_time=NOW, interval=900, status="Accepted")

    def heartbeat(self, request, ctx):
        return {"currentTime": NOW}  # a JSON-level dict is accepted too

    def status_notification(self, request, ctx):
        raise OcppError("PropertyConstraintViolation", "no such connector", {"evseId": 9})

    def transaction_event(self, request, ctx):
        raise RuntimeError("database on fire: password=hunter2")

    def data_transfer(self, request, ctx):
        return v201.DataTransferResponse.model_construct(status="NotAnEnum")


def test_generated_classes_cover_each_side() -> None:
    assert {"Reset", "UnlockConnector", "GetVariables", "DataTransfer"} <= b201.Charger.actions
    assert "BootNotification" not in b201.Charger.actions
    assert {"BootNotification", "TransactionEvent", "DataTransfer"} <= b201.ChargeSystem.actions
    assert "Reset" not in b201.ChargeSystem.actions
    assert len(b201.Charger.actions | b201.ChargeSystem.actions) == 64
    assert len(b16.Charger.actions | b16.ChargeSystem.actions) == 39
    assert len(b21.Charger.actions | b21.ChargeSystem.actions) == 91
    assert {"StartTransaction", "StopTransaction", "MeterValues"} <= b16.ChargeSystem.actions
    assert "NotifyPeriodicEventStream" in b21.ChargeSystem.actions
    assert hasattr(b201.Charger, "unlock_connector") and hasattr(b16.ChargeSystem, "heartbeat")


def test_behaviour_generator_has_no_drift() -> None:
    done = subprocess.run(
        [sys.executable, "tools/gen_behaviours.py", "--check"], cwd=ROOT, capture_output=True
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_basic_subset_is_required() -> None:
    class Incomplete(b201.BasicChargeSystem):
        def heartbeat(self, request, ctx):
            return {"currentTime": NOW}

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]

    class Charger(b201.BasicCharger):
        def reset(self, request, ctx):
            return v201.ResetResponse(status="Accepted")

        def unlock_connector(self, request, ctx):
            return v201.UnlockConnectorResponse(status="Unlocked")

    assert Charger().implemented_actions() == {"Reset", "UnlockConnector"}


def test_call_result_with_typed_request_and_state() -> None:
    handler, state = ChargeSystem(), {}
    for n in (1, 2):
        result = dispatch(handler, Call(str(n), "BootNotification", BOOT), ctx(state=state))
        assert result == CallResult(
            str(n),
            {"currentTime": NOW, "interval": 900, "status": "Accepted"},
            "BootNotification",
        )
    assert state == {"boots": 2}


def test_dict_response_is_validated_and_passed_through() -> None:
    result = dispatch(ChargeSystem(), Call("7", "Heartbeat", {}), ctx())
    assert result == CallResult("7", {"currentTime": NOW}, "Heartbeat")


class ChargeSystem16(b16.ChargeSystem):
    def heartbeat(self, request, ctx):
        return {"currentTime": NOW}


@pytest.mark.parametrize(
    ("handler", "action", "payload", "code"),
    [
        # OCPP-J part 4 section 4.3: not known to the version -> NotImplemented ...
        (ChargeSystem, "NoSuchAction", {}, "NotImplemented"),
        (ChargeSystem, "StartTransaction", {}, "NotImplemented"),  # 1.6 has it, 2.0.1 not
        (ChargeSystem16, "TransactionEvent", {}, "NotImplemented"),  # and the reverse
        # ... known but not handled by this side -> NotSupported
        (ChargeSystem, "Reset", {"type": "Immediate"}, "NotSupported"),  # a charger's action
        (ChargeSystem, "MeterValues", {"evseId": 1, "meterValue": []}, "NotSupported"),
        (ChargeSystem16, "Reset", {"type": "Hard"}, "NotSupported"),
        (ChargeSystem16, "Authorize", {"idTag": "A"}, "NotSupported"),  # not overridden
        (ChargeSystem, "BootNotification", {"reason": "PowerUp"}, "OccurrenceConstraintViolation"),
        (
            ChargeSystem,
            "BootNotification",
            {**BOOT, "reason": "Bored"},
            "PropertyConstraintViolation",
        ),
        (ChargeSystem, "BootNotification", {**BOOT, "reason": 3}, "TypeConstraintViolation"),
        (ChargeSystem, "BootNotification", {**BOOT, "extra": 1}, "FormatViolation"),
        (ChargeSystem, "StatusNotification", {}, "OccurrenceConstraintViolation"),
        (ChargeSystem16, "Heartbeat", {"x": 1}, "FormationViolation"),  # 1.6 spelling
    ],
)
def test_error_paths(handler: type, action: str, payload: dict, code: str) -> None:
    c = ctx(handler.version)
    result = dispatch(handler(), Call("9", action, payload), c)
    assert isinstance(result, CallError)
    assert (result.message_id, result.error_code) == ("9", code)
    # the async path runs the same steps: the same answer, to the byte
    assert asyncio.run(dispatch_async(handler(), Call("9", action, payload), c)) == result


def test_not_supported_answers_name_the_action() -> None:
    result = dispatch(ChargeSystem(), Call("1", "MeterValues", {}), ctx())
    assert result == CallError("1", "NotSupported", "MeterValues is not supported here", {})
    result = dispatch(ChargeSystem(), Call("2", "Nope", {}), ctx())
    assert result == CallError("2", "NotImplemented", "'Nope' is not an OCPP 2.0.1 action", {})


def test_ocpp_error_from_handler() -> None:
    payload = {
        "timestamp": NOW,
        "connectorStatus": "Available",
        "evseId": 9,
        "connectorId": 1,
    }
    result = dispatch(ChargeSystem(), Call("3", "StatusNotification", payload), ctx())
    assert result == CallError(
        "3", "PropertyConstraintViolation", "no such connector", {"evseId": 9}
    )


def test_crash_is_internal_error_without_leaking(caplog: pytest.LogCaptureFixture) -> None:
    payload = {
        "eventType": "Started",
        "timestamp": NOW,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "T1"},
    }
    result = dispatch(ChargeSystem(), Call("4", "TransactionEvent", payload), ctx())
    assert isinstance(result, CallError) and result.error_code == "InternalError"
    assert "hunter2" not in result.error_description + str(result.error_details)
    assert "database on fire" in caplog.text  # but the operator sees it in the log


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_invalid_response_is_internal_error() -> None:
    result = dispatch(ChargeSystem(), Call("5", "DataTransfer", {"vendorId": "x"}), ctx())
    assert isinstance(result, CallError) and result.error_code == "InternalError"


def test_none_response_is_internal_error() -> None:
    class Lazy(b201.ChargeSystem):
        def heartbeat(self, request, ctx):
            return None

    result = dispatch(Lazy(), Call("5", "Heartbeat", {}), ctx())
    assert isinstance(result, CallError) and result.error_code == "InternalError"


def test_16_spellings() -> None:
    class CS16(b16.ChargeSystem):
        def heartbeat(self, request, ctx):
            raise OcppError("FormatViolation", "no")

        def authorize(self, request, ctx):
            return v16.AuthorizeResponse(id_tag_info={"status": "Accepted"})

    missing = dispatch(CS16(), Call("1", "Authorize", {}), ctx("1.6"))
    assert isinstance(missing, CallError)
    assert missing.error_code == "OccurenceConstraintViolation"
    raised = dispatch(CS16(), Call("2", "Heartbeat", {}), ctx("1.6"))
    assert isinstance(raised, CallError) and raised.error_code == "FormationViolation"
    ok = dispatch(CS16(), Call("3", "Authorize", {"idTag": "ABC"}), ctx("1.6"))
    assert ok == CallResult("3", {"idTagInfo": {"status": "Accepted"}}, "Authorize")
    # a 2.0.1 handler raising the 1.6 spelling still sends the 2.0.1 one
    assert OcppError("OccurenceConstraintViolation").code_for("2.0.1") == (
        "OccurrenceConstraintViolation"
    )


class AsyncCharger(b201.Charger):
    async def reset(self, request, ctx):
        await asyncio.sleep(0)
        ctx.state["reset"] = request.type.value if hasattr(request.type, "value") else request.type
        return v201.ResetResponse(status="Scheduled")

    async def unlock_connector(self, request, ctx):
        raise OcppError("GenericError", "stuck")


def test_async_handlers() -> None:
    state: dict[str, Any] = {}
    result = asyncio.run(
        dispatch_async(AsyncCharger(), Call("1", "Reset", {"type": "OnIdle"}), ctx(state=state))
    )
    assert result == CallResult("1", {"status": "Scheduled"}, "Reset")
    assert state == {"reset": "OnIdle"}
    err = asyncio.run(
        dispatch_async(
            AsyncCharger(), Call("2", "UnlockConnector", {"evseId": 1, "connectorId": 1}), ctx()
        )
    )
    assert err == CallError("2", "GenericError", "stuck", {})


def test_sync_dispatch_refuses_async_handler() -> None:
    with pytest.raises(TypeError, match="dispatch_async"):
        dispatch(AsyncCharger(), Call("1", "Reset", {"type": "OnIdle"}), ctx())


def test_dispatch_async_runs_sync_handlers() -> None:
    result = asyncio.run(dispatch_async(ChargeSystem(), Call("1", "Heartbeat", {}), ctx()))
    assert isinstance(result, CallResult)


def test_context_call_goes_through_send_call() -> None:
    sent: list[tuple[str, Any]] = []

    class Caller(b201.ChargeSystem):
        def heartbeat(self, request, ctx):
            answer = ctx.call("GetVariables", {"getVariableData": []})
            assert answer == "queued"
            return {"currentTime": NOW}

    c = ctx(send_call=lambda action, req: sent.append((action, req)) or "queued")
    assert isinstance(dispatch(Caller(), Call("1", "Heartbeat", {}), c), CallResult)
    assert sent == [("GetVariables", {"getVariableData": []})]
    with pytest.raises(RuntimeError, match="send_call"):
        ctx().call("Reset", {})


def test_send_in_21_is_handled_and_never_answered() -> None:
    seen = []

    class CS21(b21.ChargeSystem):
        def notify_periodic_event_stream(self, request, ctx):
            seen.append(request)

    payload = {"id": 1, "pending": 0, "basetime": NOW, "data": [{"t": 0.5, "v": "230.1"}]}
    assert dispatch(CS21(), Send("1", "NotifyPeriodicEventStream", payload), ctx("2.1")) is None
    assert len(seen) == 1
    bad = dispatch(CS21(), Send("2", "NotifyPeriodicEventStream", {}), ctx("2.1"))
    assert isinstance(bad, CallError)


def test_lenient_handler_accepts_sloppy_enum_with_warning() -> None:
    class Sloppy(ChargeSystem):
        lenient = True

    c = ctx()
    result = dispatch(Sloppy(), Call("1", "BootNotification", {**BOOT, "reason": "Bored"}), c)
    assert isinstance(result, CallResult)
    assert c.warnings and "Bored" in " ".join(c.warnings)


def test_load_handler() -> None:
    cls = load_handler("ocpp_iot.behaviours.v201:BasicCharger")
    assert cls is b201.BasicCharger
    with pytest.raises(ValueError):
        load_handler("no_colon")
    with pytest.raises(TypeError):
        load_handler("ocpp_iot.rpc:Call")


def test_method_for_uses_the_registry_names() -> None:
    # Names a camel-to-snake rule gets wrong (get15118_e_v_certificate, a_f_r_r_signal) must
    # still find their methods: adapters look handlers up through method_for.
    from ocpp_iot.behaviours import for_version, method_for

    for version in ("1.6", "2.0.1", "2.1"):
        module = for_version(version)
        for cls in (module.Charger, module.ChargeSystem):
            handler = cls()
            for action in cls.actions:
                method = method_for(handler, action)
                assert method is not None, (version, action)
                assert getattr(method, "__ocpp_unimplemented__", False)
            assert method_for(handler, "NoSuchAction") is None

    class EvCharging(b21.ChargeSystem):
        async def notify_ev_charging_needs(self, request, ctx):
            return {"status": "Accepted"}

    method = method_for(EvCharging(), "NotifyEVChargingNeeds")
    assert method is not None and asyncio.iscoroutinefunction(method)
    assert EvCharging().implemented_actions() == {"NotifyEVChargingNeeds"}


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("BootNotification", BOOT),  # a CALLRESULT
        ("Heartbeat", {}),  # a dict answer
        ("StatusNotification", STATUS),  # OcppError
        ("TransactionEvent", TX_STARTED),  # crash -> InternalError
        ("DataTransfer", {"vendorId": "x"}),  # invalid response -> InternalError
    ],
)
def test_sync_and_async_dispatch_give_the_same_answer(action: str, payload: dict) -> None:
    call = Call("8", action, payload)
    sync = dispatch(ChargeSystem(), call, ctx())
    assert sync is not None
    assert asyncio.run(dispatch_async(ChargeSystem(), call, ctx())) == sync
