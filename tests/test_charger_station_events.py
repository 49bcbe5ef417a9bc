"""What the hardware's events become (OCPP 2.0.1 E01-E03, E05, G01; 1.6 4.x, 5.x): the start
points, the charging state, faults and an EV that pauses, the authorization timeout, and a back
end's CALL delivered twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from station_harness import T0, V2, VERSIONS, Bench, ScriptedEvse, event_type, tx_messages

from ocpp_iot.rpc import Call, CallResult


def _statuses(b: Bench) -> list[tuple[str, str]]:
    """(status, errorCode or '') of every StatusNotification the back end handled."""
    return [
        (c.payload.get("status") or c.payload["connectorStatus"], c.payload.get("errorCode", ""))
        for c in b.csms.calls("StatusNotification")
    ]


def _events(b: Bench) -> list[dict[str, Any]]:
    return [c.payload for c in b.csms.calls("TransactionEvent")]


@pytest.mark.parametrize("version", V2)
def test_started_carries_the_charging_state(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(30)
    started = _events(b)[0]
    assert started["eventType"] == "Started"
    assert started["transactionInfo"]["chargingState"] == "Charging"
    assert evse.relay[1]


@pytest.mark.parametrize("version", V2)
def test_start_at_the_cable_then_the_token(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables={"TxCtrlr.TxStartPoint": "EVConnected"})
    b.start()
    evse.at(T0 + 10, "plug")
    b.run(20)
    started = _events(b)[0]
    assert started["eventType"] == "Started" and started["triggerReason"] == "CablePluggedIn"
    assert "idToken" not in started
    assert started["transactionInfo"]["chargingState"] == "EVConnected"
    assert not evse.relay[1]
    evse.at(b.now + 5, "token")
    b.run(10)
    authorized = [e for e in _events(b) if e["triggerReason"] == "Authorized"]
    assert len(authorized) == 1
    # E03: the event that authorizes the transaction names the token
    assert authorized[0]["idToken"] == {"idToken": "T1", "type": "ISO14443"}
    assert authorized[0]["transactionInfo"]["chargingState"] == "Charging"
    assert evse.relay[1]
    ids = {e["transactionInfo"]["transactionId"] for e in _events(b)}
    assert len(ids) == 1


@pytest.mark.parametrize("version", V2)
def test_start_at_the_token(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables={"TxCtrlr.TxStartPoint": "Authorized"})
    b.start()
    evse.at(T0 + 10, "token")
    b.run(20)
    started = _events(b)[0]
    assert started["eventType"] == "Started" and started["triggerReason"] == "Authorized"
    assert started["idToken"]["idToken"] == "T1"
    evse.at(b.now + 5, "plug")
    b.run(10)
    assert evse.relay[1]
    assert _events(b)[-1]["transactionInfo"].get("chargingState") == "Charging"


@pytest.mark.parametrize("version", VERSIONS)
def test_fault_while_charging_and_cleared(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    evse.at(T0 + 30, "fault")
    b.run(40)
    assert not evse.relay[1] and b.machine.tx.active()
    assert _statuses(b)[-1][0] == "Faulted"
    if version == "1.6":
        assert _statuses(b)[-1][1] == "GroundFailure"
    else:
        assert _events(b)[-1]["transactionInfo"]["chargingState"] == "SuspendedEVSE"
    evse.at(b.now + 5, "clear")
    b.run(10)
    assert evse.relay[1]
    expected = "Charging" if version == "1.6" else "Occupied"
    assert _statuses(b)[-1] == (expected, "NoError" if version == "1.6" else "")
    if version in V2:
        assert _events(b)[-1]["transactionInfo"]["chargingState"] == "Charging"


@pytest.mark.parametrize("version", V2)
@pytest.mark.parametrize("sample", ["periodic", "triggered"])
def test_a_fault_cleared_at_a_sample_instant_still_reports_charging(
    tmp_path: Path, version: str, sample: str
) -> None:
    """A sample (the periodic one, or one the back end asked for) and the fault clearing at
    the same instant: the Charging state is still sent, whichever comes first."""
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(20)
    (tx,) = b.machine.tx.active()
    evse.at(b.now + 5, "fault")
    b.run(10)
    assert not evse.relay[1]
    if sample == "periodic":
        evse.at(tx.started_at + b.model.tx_updated_interval, "clear")
        b.run(b.model.tx_updated_interval)
    else:
        trigger = {"requestedMessage": "TransactionEvent", "evse": {"id": 1}}
        answer = b.call("TriggerMessage", trigger)
        assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
        evse.at(b.now, "clear")
        b.run(10)
    assert evse.relay[1]
    states = [e.get("transactionInfo", {}).get("chargingState") for e in _events(b)]
    assert [x for x in states if x][-1] == "Charging", states


@pytest.mark.parametrize("version", V2)
def test_a_fault_cleared_while_the_ev_pauses_says_suspended_ev(
    tmp_path: Path, version: str
) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    evse.at(T0 + 20, "suspend")
    evse.at(T0 + 25, "fault")
    evse.at(T0 + 30, "clear")
    b.run(40)
    states = [e.get("transactionInfo", {}).get("chargingState") for e in _events(b)]
    assert [x for x in states if x][-3:] == ["SuspendedEV", "SuspendedEVSE", "SuspendedEV"], states
    assert evse.relay[1]


@pytest.mark.parametrize("version", VERSIONS)
def test_ev_suspends_and_resumes(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    evse.at(T0 + 30, "suspend")
    b.run(40)
    if version == "1.6":
        assert _statuses(b)[-1][0] == "SuspendedEV"
    else:
        last = _events(b)[-1]
        assert last["triggerReason"] == "ChargingStateChanged"
        assert last["transactionInfo"]["chargingState"] == "SuspendedEV"
    evse.at(b.now + 5, "resume")
    b.run(10)
    if version == "1.6":
        assert _statuses(b)[-1][0] == "Charging"
    else:
        assert _events(b)[-1]["transactionInfo"]["chargingState"] == "Charging"


@pytest.mark.parametrize("version", VERSIONS)
def test_authorization_expires_without_a_cable(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()  # EVConnectionTimeOut 60 s
    evse.at(T0 + 10, "token")
    b.run(30)
    if version == "1.6":
        assert _statuses(b)[-1][0] == "Preparing"
    b.run(50)
    evse.at(b.now + 1, "plug")
    b.run(5)
    assert not b.machine.tx.active()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_call_delivered_twice_runs_once(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(30)
    tx = b.machine.tx.active()[0]
    action = "RemoteStopTransaction" if version == "1.6" else "RequestStopTransaction"
    tx_id = tx.view.csms_id if version == "1.6" else tx.view.local_id
    answer = b.call(action, {"transactionId": tx_id})
    assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
    n = len(b.sent)
    again = Call(answer.message_id, action, {"transactionId": tx_id})
    b.machine.receive(again, b.now)  # the broker delivers it again
    b.settle()
    repeat = [f for _, f in b.sent[n:] if f.message_id == answer.message_id]
    assert repeat == [answer]  # the first answer again, not "Rejected"
    ends = [c for c in tx_messages(b.csms.calls()) if event_type(c) == "Ended"]
    assert len(ends) == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_token_while_pending_is_not_lost(tmp_path: Path, version: str) -> None:
    """A cached token shown while the station is Pending starts charging as it would offline
    (LocalAuthorizeOffline); no Authorize goes out before Accepted."""
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "token")  # authorized online: cached
    b.run(100)
    b.csms.boot_statuses = ["Pending"]
    b.csms.boot_interval = 60
    b.restart("PowerUp")
    assert b.machine.registration == "pending"
    n = len(b.calls("Authorize"))
    evse.at(b.now + 5, "plug")
    evse.at(b.now + 6, "token")
    b.run(30)
    assert len(b.calls("Authorize")) == n
    assert b.machine.tx.active() and evse.relay[1]
    b.run(60)
    assert b.machine.registration == "accepted"
    assert [event_type(c) for c in tx_messages(b.csms.calls())][0] == "Started"
