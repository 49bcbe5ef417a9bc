"""Transaction message retries (OCPP 2.0.1 E13; 1.6 TransactionMessageAttempts /
TransactionMessageRetryInterval): a CALLERROR or no answer is a failed attempt, retried after
the interval times the attempts so far, given up after the configured number; the order of the
queue is kept meanwhile; values changed by the back end apply at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from station_harness import T0, V2, VERSIONS, Bench, ScriptedEvse, event_type, tx_messages

from ocpp_iot.rpc import Call, CallError, CallResult

RETRY = {
    "OCPPCommCtrlr.MessageAttempts[TransactionEvent]": "3",
    "OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]": "20",
    "SampledDataCtrlr.TxUpdatedInterval": "30",
}


def _fail_first_updated(bench: Bench, copies: int = 99) -> dict[str, Any]:
    """Answer the first ``copies`` transmissions of the first intermediate transaction message
    with a CALLERROR; the returned dict names it (``id``: its outbox message id) once sent."""
    action = "MeterValues" if bench.version == "1.6" else "TransactionEvent"
    state: dict[str, Any] = {"id": None, "payload": None, "errors": 0, "ids": []}

    def script(call: Call, now: float) -> Any:
        if state["id"] is None and event_type(call) == "Updated":
            state["id"], state["payload"] = call.message_id, call.payload
        if call.payload == state["payload"] and state["errors"] < copies:
            state["errors"] += 1
            state["ids"].append(call.message_id)
            return CallError(call.message_id, "InternalError", "cannot store it now")
        return None

    bench.csms.script[action] = script
    return state


def _copies(bench: Bench, state: dict[str, Any]) -> list[float]:
    """When the message of ``state`` was transmitted (any message id: a retry after a
    CALLERROR is a new CALL)."""
    return [t for t, c in bench.timed_calls() if c.payload == state["payload"]]


def _start(tmp_path: Path, version: str, variables: dict[str, str]) -> tuple[Bench, ScriptedEvse]:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables=variables).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(12)
    assert b.machine.tx.active()
    return b, evse


@pytest.mark.parametrize("version", VERSIONS)
def test_callerror_retried_at_interval_times_attempts_then_discarded(
    tmp_path: Path, version: str
) -> None:
    b, evse = _start(tmp_path, version, RETRY)
    state = _fail_first_updated(b)
    b.run(300)
    copies = _copies(b, state)
    t0 = copies[0]
    assert [round(t - t0) for t in copies] == [0, 20, 60]  # 20 x 1, 20 x 2; three in all
    # each retry is a new CALL: a back end that keeps its answers by message id (the bridge)
    # would otherwise answer the copy with its first CALLERROR
    assert len(set(state["ids"])) == 3
    assert b.outbox.stats().discarded == 1
    # the order was kept: the sample made at +30 waited, and went at once after the last try
    later = [
        round(t - t0)
        for t, c in b.timed_calls()
        if t > t0 and c.payload != state["payload"] and tx_messages([c])
    ]
    assert later[0] == 60


@pytest.mark.parametrize("version", VERSIONS)
def test_no_answer_is_a_failed_attempt(tmp_path: Path, version: str) -> None:
    b, evse = _start(tmp_path, version, RETRY)
    state: dict[str, Any] = {"id": None, "lost": 0}

    def lose(frame: object) -> bool:
        if not isinstance(frame, Call) or not tx_messages([frame]):
            return False
        if state["id"] is None and event_type(frame) == "Updated":
            state["id"] = frame.message_id
        if frame.message_id == state["id"] and state["lost"] < 3:
            state["lost"] += 1
            return True
        return False

    b.csms.lose_up = lose
    b.run(400)
    copies = [t for t, c in b.timed_calls() if c.message_id == state["id"]]
    # lost, 30 s without an answer, then 20 x 1 -> +50; lost, 30 s, 20 x 2 -> +120; lost
    assert [round(t - copies[0]) for t in copies] == [0, 50, 120]
    assert b.outbox.stats().discarded == 1
    assert state["id"] not in {c.message_id for c in b.csms.calls()}


@pytest.mark.parametrize("version", VERSIONS)
def test_retry_settings_changed_by_the_back_end_apply_at_once(tmp_path: Path, version: str) -> None:
    b, evse = _start(tmp_path, version, {"SampledDataCtrlr.TxUpdatedInterval": "30"})
    if version == "1.6":
        for key, value in (("TransactionMessageAttempts", "2"),
                           ("TransactionMessageRetryInterval", "7")):  # fmt: skip
            answer = b.call("ChangeConfiguration", {"key": key, "value": value})
            assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
    else:
        items = [
            {"component": {"name": "OCPPCommCtrlr"},
             "variable": {"name": name, "instance": "TransactionEvent"}, "attributeValue": value}
            for name, value in (("MessageAttempts", "2"), ("MessageAttemptInterval", "7"))
        ]  # fmt: skip
        answer = b.call("SetVariables", {"setVariableData": items})
        assert isinstance(answer, CallResult)
        assert {r["attributeStatus"] for r in answer.payload["setVariableResult"]} == {"Accepted"}
    state = _fail_first_updated(b)
    b.run(200)
    copies = _copies(b, state)
    assert [round(t - copies[0]) for t in copies] == [0, 7]
    assert b.outbox.stats().discarded == 1


@pytest.mark.parametrize("version", V2)
def test_started_and_ended_retried_too(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables=RETRY).start()
    errors = [1]

    def script(call: Call, now: float) -> Any:
        if call.payload["eventType"] in ("Started", "Ended") and errors[0]:
            errors[0] -= 1
            return CallError(call.message_id, "InternalError", "")
        return None

    b.csms.script["TransactionEvent"] = script
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(40)
    starts = [round(t - T0) for t, c in b.timed_calls("TransactionEvent")
              if c.payload["eventType"] == "Started"]  # fmt: skip
    assert starts == [11, 31]
    handled = [event_type(c) for c in b.csms.calls("TransactionEvent")]
    assert handled[:2] == ["Started", "Started"] and handled.count("Started") == 2
    assert b.outbox.stats().discarded == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_the_retry_id_survives_a_restart(tmp_path: Path, version: str) -> None:
    b, evse = _start(tmp_path, version, RETRY)
    state = _fail_first_updated(b, copies=1)
    b.run_until_sent(lambda c: event_type(c) == "Updated")
    assert state["errors"] == 1
    b.kill()
    b.run(120)
    copies = [c.message_id for c in b.calls() if c.payload == state["payload"]]
    assert len(copies) == 2 and copies[0] != copies[1]
    handled = [c for c in b.csms.calls() if c.payload == state["payload"]]
    assert len(handled) == 2  # the retry was handled, not answered with the first CALLERROR
    assert b.outbox.stats().discarded == 0 and b.outbox.depth() == 0
    assert not b.outbox.kept("retry-id:")
