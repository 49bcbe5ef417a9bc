"""Why a transaction ends (OCPP 2.0.1 E06-E08, B11/B12, F03; 1.6 5.11, 5.16, 6.x): the cable,
the same token again, the back end's stop, a token found invalid in the start's answer
(StopTxOnInvalidId), a reset (Immediate / OnIdle; 1.6 Hard / Soft). Each ends with the right
reasons, opens the relay and carries the register at the stop."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from station_harness import (
    T0,
    V2,
    VERSIONS,
    Bench,
    ScriptedEvse,
    event_type,
    register_of,
    stop_reason,
    tx_messages,
)

from ocpp_iot.charger_node.registration import boot_reason_after
from ocpp_iot.rpc import Call, CallResult


def _charging(tmp_path: Path, version: str, **kw: Any) -> tuple[Bench, ScriptedEvse]:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, **kw).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token", token="T1")
    b.run(100)
    assert b.machine.tx.active() and evse.relay[1]
    return b, evse


def _ended(b: Bench) -> Call:
    txm = tx_messages(b.csms.calls())
    ends = [c for c in txm if event_type(c) == "Ended"]
    assert len(ends) == 1, [event_type(c) for c in txm]
    return ends[0]


def _check_end(b: Bench, evse: ScriptedEvse, reason16: str, reason2: str, trigger2: str) -> None:
    assert not b.machine.tx.active()
    assert not evse.relay[1]
    ended = _ended(b)
    assert register_of(ended) == pytest.approx(evse.register[1], abs=1.0)
    if b.version == "1.6":
        assert stop_reason(ended) == reason16
    else:
        assert stop_reason(ended) == reason2
        assert ended.payload["triggerReason"] == trigger2


def _tx_id(b: Bench) -> Any:
    tx = b.machine.tx.active()[0]
    return tx.view.csms_id if b.version == "1.6" else tx.view.local_id


@pytest.mark.parametrize("version", VERSIONS)
def test_unplug(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version)
    evse.at(b.now + 5, "unplug")
    b.run(10)
    _check_end(b, evse, "EVDisconnected", "EVDisconnected", "EVCommunicationLost")


def test_the_log_names_the_station(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``simulate`` runs many stations in one process: a transaction's log lines say whose."""
    with caplog.at_level(logging.INFO, logger="ocpp_iot.charger_node"):
        b, evse = _charging(tmp_path, "2.0.1")
        evse.at(b.now + 5, "unplug")
        b.run(10)
    ended = [r.getMessage() for r in caplog.records if " ended (" in r.getMessage()]
    assert ended and all(m.startswith("CP1: transaction ") for m in ended), ended


@pytest.mark.parametrize("version", VERSIONS)
def test_same_token_again(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version)
    evse.at(b.now + 5, "token", token="T1")
    b.run(10)
    _check_end(b, evse, "Local", "Local", "StopAuthorized")
    # the cable is still in: 1.6 says Finishing until it goes, 2.x Occupied
    status = b.machine.status(b.now)["connectors"]["1"]
    assert status == ("Finishing" if version == "1.6" else "Occupied")
    evse.at(b.now + 5, "unplug")
    b.run(10)
    assert b.machine.status(b.now)["connectors"]["1"] == "Available"
    assert len([c for c in tx_messages(b.csms.calls()) if event_type(c) == "Ended"]) == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_another_token_does_not_stop_it(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version)
    evse.at(b.now + 5, "token", token="OTHER")
    b.run(10)
    assert b.machine.tx.active()


@pytest.mark.parametrize("version", VERSIONS)
def test_remote_stop(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version)
    action = "RemoteStopTransaction" if version == "1.6" else "RequestStopTransaction"
    unknown = 99999 if version == "1.6" else "nope"
    answer = b.call(action, {"transactionId": unknown})
    assert isinstance(answer, CallResult) and answer.payload["status"] == "Rejected"
    answer = b.call(action, {"transactionId": _tx_id(b)})
    assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
    b.run(5)
    _check_end(b, evse, "Remote", "Remote", "RemoteStop")
    # the answer went before the Ended
    sent = [f for _, f in b.sent]
    i_answer = next(i for i, f in enumerate(sent) if f.message_id == answer.message_id)
    i_end = next(i for i, f in enumerate(sent) if isinstance(f, Call) and event_type(f) == "Ended"
                 and f.action in ("TransactionEvent", "StopTransaction"))  # fmt: skip
    assert i_answer < i_end


def _invalid_start(b: Bench) -> None:
    """The back end answers the transaction's first message with the token Invalid (it
    accepted the Authorize: e.g. the card was blocked in between)."""

    def answer(call: Call, now: float) -> Any:
        if b.version == "1.6":
            return {"idTagInfo": {"status": "Invalid"}, "transactionId": 4242}
        if call.payload["eventType"] == "Started":
            return {"idTokenInfo": {"status": "Invalid"}}
        return None

    b.csms.script["StartTransaction" if b.version == "1.6" else "TransactionEvent"] = answer


@pytest.mark.parametrize("version", VERSIONS)
def test_invalid_token_in_the_start_answer_stops_it(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    assert b.model.stop_tx_on_invalid_id
    _invalid_start(b)
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token", token="T1")
    b.run(30)
    _check_end(b, evse, "DeAuthorized", "DeAuthorized", "Deauthorized")
    if version == "1.6":
        assert _ended(b).payload["transactionId"] == 4242


@pytest.mark.parametrize("version", V2)
def test_invalid_token_in_an_updated_answer_stops_it(tmp_path: Path, version: str) -> None:
    """A transaction that began at the cable gets its token in an Updated event; the answer
    to that one says Invalid: it ends as deauthorized (E06.FR.04), and the cache learns it."""
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables={"TxCtrlr.TxStartPoint": "EVConnected"})
    b.start()

    def answer(call: Call, now: float) -> Any:
        return {"idTokenInfo": {"status": "Invalid"}} if "idToken" in call.payload else None

    b.csms.script["TransactionEvent"] = answer
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token", token="T1")
    b.run(30)
    events = b.calls("TransactionEvent")
    assert [e.payload["eventType"] for e in events][:2] == ["Started", "Updated"]
    assert "idToken" not in events[0].payload and "idToken" in events[1].payload
    _check_end(b, evse, "DeAuthorized", "DeAuthorized", "Deauthorized")
    assert b.machine.tx.auth.get("T1") == "Invalid"


@pytest.mark.parametrize("version", V2)
def test_begun_at_the_token_ends_without_a_cable_in_time(tmp_path: Path, version: str) -> None:
    """TxStartPoint Authorized: the token begins the transaction; no cable within
    EVConnectionTimeOut ends it, EVConnectTimeout / Timeout (E03.FR.05). A cable in time
    keeps it going."""
    evse = ScriptedEvse(2)
    variables = {"TxCtrlr.TxStartPoint": "Authorized", "TxCtrlr.EVConnectionTimeOut": "30"}
    b = Bench(tmp_path, version, evse=evse, variables=variables)
    b.start()
    evse.at(T0 + 10, "token", token="T1", connector=1)
    b.run(20)
    assert [tx.view.connector.number for tx in b.machine.tx.active()] == [1]
    b.run(30)
    assert not b.machine.tx.active()
    _check_end(b, evse, "", "Timeout", "EVConnectTimeout")
    evse.at(b.now + 1, "token", token="T2", connector=2)
    evse.at(b.now + 20, "plug", connector=2)
    b.run(120)
    assert [tx.view.connector.number for tx in b.machine.tx.active()] == [2]


@pytest.mark.parametrize("version", VERSIONS)
def test_invalid_token_without_stop_tx_on_invalid_id_goes_on(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables={"TxCtrlr.StopTxOnInvalidId": "false"})
    b.start()
    _invalid_start(b)
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token", token="T1")
    b.run(30)
    assert b.machine.tx.active()
    # it goes on, without energy (1.6 3.5 / 2.0.1 E05: only the energy delivery stops)
    assert not evse.relay[1]
    register = evse.meter(1, b.now).energy_wh
    b.run(120)
    assert b.machine.tx.active() and not evse.relay[1]
    assert evse.meter(1, b.now).energy_wh == register
    if version != "1.6":
        states = [e.payload.get("transactionInfo", {}).get("chargingState")
                  for e in b.calls("TransactionEvent")]  # fmt: skip
        assert "SuspendedEVSE" in states


@pytest.mark.parametrize("version", V2)
def test_reset_immediate_ends_and_restarts(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version)
    answer = b.call("Reset", {"type": "Immediate"})
    assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
    assert b.machine.restart_due == "Immediate"
    assert not b.machine.tx.active() and not evse.relay[1]
    b.restart()
    b.run(5)
    boots = b.calls("BootNotification")
    assert boots[-1].payload["reason"] == "RemoteReset"
    _check_end(b, evse, "", "ImmediateReset", "ResetCommand")


@pytest.mark.parametrize("version", V2)
def test_reset_on_idle_is_scheduled_while_charging(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version)
    answer = b.call("Reset", {"type": "OnIdle"})
    assert isinstance(answer, CallResult) and answer.payload["status"] == "Scheduled"
    b.run(60)
    assert b.machine.restart_due is None and b.machine.tx.active()
    evse.at(b.now + 5, "unplug")
    b.run(10)
    assert b.machine.restart_due is not None
    _check_end(b, evse, "", "EVDisconnected", "EVCommunicationLost")
    # the boot after it says it was scheduled (B12; OCTT TC_B_21); an immediate one does not
    b.restart(boot_reason_after(b.machine.restart_due))
    b.run(5)
    assert b.calls("BootNotification")[-1].payload["reason"] == "ScheduledReset"
    assert boot_reason_after("OnIdle") == boot_reason_after("Immediate") == "RemoteReset"


@pytest.mark.parametrize("version", V2)
def test_reset_on_idle_when_idle_restarts_at_once(tmp_path: Path, version: str) -> None:
    b = Bench(tmp_path, version).start()
    answer = b.call("Reset", {"type": "OnIdle"})
    assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
    assert b.machine.restart_due == "OnIdle"


@pytest.mark.parametrize("kind", ["Hard", "Soft"])
def test_reset_16(tmp_path: Path, kind: str) -> None:
    b, evse = _charging(tmp_path, "1.6")
    answer = b.call("Reset", {"type": kind})
    assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
    assert b.machine.restart_due == kind
    b.restart()
    b.run(5)
    _check_end(b, evse, f"{kind}Reset", "", "")


@pytest.mark.parametrize("version", VERSIONS)
def test_stop_transactions_for_a_clean_shutdown(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(2)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token", token="T1")
    b.run(100)
    b.machine.stop_transactions(b.now)
    # an EV that arrives while the station drains does not start a new transaction
    evse.at(b.now + 1, "plug", connector=2)
    evse.at(b.now + 2, "token", connector=2, token="T2")
    b.run(5)
    assert b.machine.settled
    assert not evse.relay[2]
    _check_end(b, evse, "Local", "Local", "StopAuthorized")


@pytest.mark.parametrize("version", VERSIONS)
def test_unplug_without_stop_tx_on_ev_side_disconnect(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version, variables={"TxCtrlr.StopTxOnEVSideDisconnect": "false"})
    evse.at(b.now + 5, "unplug")
    b.run(10)
    assert b.machine.tx.active() and not evse.relay[1]  # unpowered, not ended
    if version in V2:
        last = b.csms.calls("TransactionEvent")[-1].payload
        assert last["eventType"] == "Updated"
        assert last["transactionInfo"]["chargingState"] == "Idle"
    evse.at(b.now + 5, "plug")
    b.run(10)
    assert evse.relay[1]
    evse.at(b.now + 5, "token", token="T1")
    b.run(10)
    _check_end(b, evse, "Local", "Local", "StopAuthorized")


# -- TxStopPoint without Authorized (E06): a stop by the token withholds the power -------------

_CABLE_ONLY = {"TxCtrlr.TxStopPoint": "EVConnected"}


def _assert_withheld(b: Bench, evse: ScriptedEvse, trigger: str) -> None:
    """The transaction goes on without power, says so (the stop's trigger, SuspendedEVSE) and
    meters nothing more."""
    assert b.machine.tx.active() and not evse.relay[1]
    assert not [c for c in tx_messages(b.csms.calls()) if event_type(c) == "Ended"]
    last = b.csms.calls("TransactionEvent")[-1].payload
    assert last["eventType"] == "Updated" and last["triggerReason"] == trigger
    assert last["transactionInfo"]["chargingState"] == "SuspendedEVSE"
    register = evse.meter(1, b.now).energy_wh
    b.run(120)
    assert b.machine.tx.active() and not evse.relay[1]
    assert evse.meter(1, b.now).energy_wh == register


def _assert_ends_at_the_unplug(b: Bench, evse: ScriptedEvse, reason: str) -> None:
    """The cable goes: the transaction ends with the stop's ``reason`` (E06: EVConnected)."""
    evse.at(b.now + 5, "unplug")
    b.run(10)
    _check_end(b, evse, "", reason, "EVCommunicationLost")


@pytest.mark.parametrize("version", V2)
def test_without_the_authorized_stop_point_the_token_again_ends_it_at_the_unplug(
    tmp_path: Path, version: str
) -> None:
    b, evse = _charging(tmp_path, version, variables=_CABLE_ONLY)
    evse.at(b.now + 5, "token", token="T1")
    b.run(10)
    _assert_withheld(b, evse, "StopAuthorized")
    evse.at(b.now + 5, "token", token="T1")  # once more: stopped already, nothing new
    evse.at(b.now + 6, "plug")  # a cable event that is no unplug changes nothing either
    b.run(10)
    assert b.machine.tx.active() and not evse.relay[1]
    _assert_ends_at_the_unplug(b, evse, "Local")


@pytest.mark.parametrize("version", V2)
def test_without_the_authorized_stop_point_a_remote_stop_ends_it_at_the_unplug(
    tmp_path: Path, version: str
) -> None:
    b, evse = _charging(tmp_path, version, variables=_CABLE_ONLY)
    answer = b.call("RequestStopTransaction", {"transactionId": _tx_id(b)})
    assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
    b.run(5)
    _assert_withheld(b, evse, "RemoteStop")
    status = b.call("GetTransactionStatus", {"transactionId": _tx_id(b)})
    assert isinstance(status, CallResult) and status.payload["ongoingIndicator"] is True
    _assert_ends_at_the_unplug(b, evse, "Remote")


@pytest.mark.parametrize("version", V2)
def test_without_the_authorized_stop_point_an_invalid_token_ends_it_at_the_unplug(
    tmp_path: Path, version: str
) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables=_CABLE_ONLY).start()
    _invalid_start(b)
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token", token="T1")
    b.run(30)
    _assert_withheld(b, evse, "Deauthorized")
    _assert_ends_at_the_unplug(b, evse, "DeAuthorized")


@pytest.mark.parametrize("version", V2)
def test_without_the_authorized_stop_point_a_stop_with_no_cable_in_ends_it_at_once(
    tmp_path: Path, version: str
) -> None:
    """Begun at the token (TxStartPoint Authorized), no cable yet: no unplug will come, so the
    token again ends it at once."""
    evse = ScriptedEvse(1)
    variables = _CABLE_ONLY | {"TxCtrlr.TxStartPoint": "Authorized"}
    b = Bench(tmp_path, version, evse=evse, variables=variables).start()
    evse.at(T0 + 10, "token", token="T1")
    evse.at(T0 + 15, "token", token="T1")
    b.run(30)
    _check_end(b, evse, "", "Local", "StopAuthorized")


@pytest.mark.parametrize("version", V2)
@pytest.mark.parametrize("how", ["remote start", "token"])
def test_a_stopped_transaction_takes_no_new_token(tmp_path: Path, version: str, how: str) -> None:
    """Begun at the cable, stopped by the back end before any token (TxStopPoint EVConnected):
    it waits for the unplug. A RequestStartTransaction is Rejected and a token finds no
    connector (each was Accepted and joined it, and the power never came)."""
    evse = ScriptedEvse(1)
    variables = _CABLE_ONLY | {"TxCtrlr.TxStartPoint": "EVConnected"}
    b = Bench(tmp_path, version, evse=evse, variables=variables).start()
    evse.at(T0 + 10, "plug")
    b.run(20)
    answer = b.call("RequestStopTransaction", {"transactionId": _tx_id(b)})
    assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
    b.run(5)
    if how == "remote start":
        token = {"idToken": "T1", "type": "ISO14443"}
        answer = b.call("RequestStartTransaction", {"idToken": token, "remoteStartId": 7})
        assert isinstance(answer, CallResult) and answer.payload["status"] == "Rejected"
    else:
        evse.at(b.now + 1, "token", token="T2")
    b.run(30)
    (tx,) = b.machine.tx.active()
    assert tx.view.id_token is None and not evse.relay[1]
    _assert_ends_at_the_unplug(b, evse, "Remote")


@pytest.mark.parametrize("version", V2)
def test_an_ev_pausing_while_stopped_changes_no_state(tmp_path: Path, version: str) -> None:
    """Power withheld after a stop (TxStopPoint EVConnected): the EV pausing and resuming
    leaves the state SuspendedEVSE (it said SuspendedEV, then EVConnected)."""
    b, evse = _charging(tmp_path, version, variables=_CABLE_ONLY)
    evse.at(b.now + 5, "token", token="T1")
    b.run(10)
    _assert_withheld(b, evse, "StopAuthorized")
    evse.at(b.now + 5, "suspend")
    evse.at(b.now + 10, "resume")
    b.run(20)
    events = [c.payload for c in b.csms.calls("TransactionEvent")]
    states = [e.get("transactionInfo", {}).get("chargingState") for e in events]
    assert [x for x in states if x][-1] == "SuspendedEVSE", states
    assert not evse.relay[1]


@pytest.mark.parametrize("version", V2)
def test_unlock_connector_ends_a_stopped_transaction(tmp_path: Path, version: str) -> None:
    """A transaction stopped by its token (TxStopPoint EVConnected) is no longer authorized:
    UnlockConnector unlocks and ends it, with the stop's reason (F05)."""
    b, evse = _charging(tmp_path, version, variables=_CABLE_ONLY)
    evse.at(b.now + 5, "token", token="T1")
    b.run(10)
    answer = b.call("UnlockConnector", {"evseId": 1, "connectorId": 1})
    assert isinstance(answer, CallResult) and answer.payload["status"] == "Unlocked"
    b.run(2)
    _check_end(b, evse, "", "Local", "UnlockCommand")
