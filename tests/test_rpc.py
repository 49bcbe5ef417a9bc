"""The sans-IO endpoint: ids, one outstanding CALL, timeouts, duplicates, error spellings."""

from __future__ import annotations

import uuid

import pytest

from ocpp_iot.rpc import (
    ERROR_CODES,
    Call,
    CallAnswered,
    CallError,
    CallReceived,
    CallResult,
    CallResultError,
    CallTimedOut,
    DuplicateCall,
    Endpoint,
    ProtocolStateError,
    ResultRejected,
    Send,
    SendReceived,
    UnexpectedResponse,
    error_code_for,
    error_for_undecodable,
)


def test_ids_are_short_decimal_strings() -> None:
    ep = Endpoint()
    ids = []
    for t in range(3):
        call = ep.send_call("Heartbeat", {}, now=float(t))
        ids.append(call.message_id)
        ep.receive(CallResult(call.message_id, {"currentTime": "x"}), now=float(t))
    assert ids == ["1", "2", "3"]


def test_id_factory_is_used() -> None:
    ep = Endpoint(id_factory=lambda: str(uuid.UUID(int=7)))
    assert ep.send_call("Heartbeat", {}, 0.0).message_id == str(uuid.UUID(int=7))


def test_one_outstanding_call_until_answered() -> None:
    ep = Endpoint(call_timeout=30)
    call = ep.send_call("Heartbeat", {}, now=0)
    assert not ep.can_call(10)
    with pytest.raises(ProtocolStateError, match="outstanding"):
        ep.send_call("Heartbeat", {}, now=10)
    event = ep.receive(CallResult(call.message_id, {"currentTime": "t"}), now=11)
    assert isinstance(event, CallAnswered)
    assert event.call == call
    assert event.response.action == "Heartbeat"  # filled in from the CALL
    assert ep.can_call(11) and ep.outstanding is None


def test_call_error_answers_the_call() -> None:
    ep = Endpoint()
    call = ep.send_call("Authorize", {}, now=0)
    err = CallError(call.message_id, "FormatViolation", "bad", {})
    event = ep.receive(err, now=1)
    assert isinstance(event, CallAnswered) and event.response == err


def test_timeout_frees_the_slot_and_late_answer_is_unexpected() -> None:
    ep = Endpoint(call_timeout=30)
    call = ep.send_call("Heartbeat", {}, now=100)
    assert ep.deadline() == 130
    assert ep.poll(129.9) is None
    assert ep.poll(130) == CallTimedOut(call)
    assert ep.poll(131) is None  # reported once
    assert ep.can_call(131)
    late = CallResult(call.message_id, {})
    assert ep.receive(late, now=140) == UnexpectedResponse(late)


def test_a_timed_out_call_can_be_replaced_without_poll() -> None:
    ep = Endpoint(call_timeout=5)
    ep.send_call("Heartbeat", {}, now=0)
    second = ep.send_call("Heartbeat", {}, now=5)
    assert ep.outstanding == second


def test_mismatched_result_is_unexpected() -> None:
    ep = Endpoint()
    call = ep.send_call("Heartbeat", {}, now=0)
    stray = CallResult("nope", {})
    assert isinstance(ep.receive(stray, 1), UnexpectedResponse)
    assert ep.outstanding == call


def test_duplicate_call_gets_cached_answer_and_handler_runs_once() -> None:
    ep = Endpoint()
    call = Call("abc", "Reset", {"type": "Immediate"})
    handled = []
    first = ep.receive(call, 0)
    assert isinstance(first, CallReceived)
    # a redelivery while the first copy is still in hand: nothing to send yet
    assert ep.receive(call, 0.5) == DuplicateCall(call, None)
    handled.append(first.call.message_id)
    answer = ep.respond(CallResult("abc", {"status": "Accepted"}, "Reset"))
    again = ep.receive(call, 1)
    assert again == DuplicateCall(call, answer)
    assert handled == ["abc"]


def test_respond_requires_a_received_call() -> None:
    with pytest.raises(ProtocolStateError):
        Endpoint().respond(CallResult("x", {}))


def test_remembered_answers_are_bounded() -> None:
    ep = Endpoint(remember=3)
    for i in range(10):
        ep.receive(Call(str(i), "Heartbeat", {}), 0)
        ep.respond(CallResult(str(i), {}))
    assert isinstance(ep.receive(Call("0", "Heartbeat", {}), 0), CallReceived)  # forgotten
    assert isinstance(ep.receive(Call("9", "Heartbeat", {}), 0), DuplicateCall)


def test_calls_in_hand_are_not_forgotten() -> None:
    ep = Endpoint(remember=2)
    ep.receive(Call("slow", "Heartbeat", {}), 0)
    for i in range(5):
        ep.receive(Call(str(i), "Heartbeat", {}), 0)
        ep.respond(CallResult(str(i), {}))
    assert ep.receive(Call("slow", "Heartbeat", {}), 0) == DuplicateCall(
        Call("slow", "Heartbeat", {}), None
    )


def test_send_and_result_error_in_21() -> None:
    ep = Endpoint("2.1")
    send = ep.send("NotifyPeriodicEventStream", {})
    assert isinstance(send, Send) and ep.can_call(0)  # a SEND does not hold the CALL slot
    assert isinstance(ep.receive(send, 0), SendReceived)
    rerr = CallResultError("5", "FormatViolation")
    assert ep.receive(rerr, 0) == ResultRejected(rerr)
    with pytest.raises(ProtocolStateError):
        Endpoint("2.0.1").send("NotifyPeriodicEventStream", {})


def test_error_code_spellings() -> None:
    assert error_code_for("FormatViolation", "1.6") == "FormationViolation"
    assert error_code_for("OccurrenceConstraintViolation", "1.6") == "OccurenceConstraintViolation"
    assert error_code_for("FormatViolation", "2.0.1") == "FormatViolation"
    for version in ("1.6", "2.0.1", "2.1"):
        for code in ERROR_CODES["2.0.1"]:
            assert error_code_for(code, version) in ERROR_CODES[version]


def test_error_for_undecodable() -> None:
    err = error_for_undecodable(None, "RpcFrameworkError", "unreadable", "2.0.1")
    assert err == CallError("-1", "RpcFrameworkError", "unreadable", {})
    assert error_for_undecodable(None, "RpcFrameworkError", "x", "1.6") is None
    err16 = error_for_undecodable("7", "FormatViolation", "x" * 300, "1.6")
    assert err16 is not None and err16.error_code == "FormationViolation"
    assert len(err16.error_description) == 255


def test_unknown_version() -> None:
    with pytest.raises(ValueError):
        Endpoint("1.5")
