"""What the back end asks a station, per version: each answered with a status from the schema
(the bench validates every answer) and followed by what it asks for: TriggerMessage's message
after the answer, GetBaseReport's NotifyReport pages, a remote start, availability that
survives a restart, GetTransactionStatus' queue, the device model's values in effect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from station_harness import T0, V2, VERSIONS, Bench, ScriptedEvse, event_type, tx_messages

from ocpp_iot.codecs import cbor
from ocpp_iot.rpc import Call, CallError, CallResult


def ok(answer: CallResult | CallError) -> dict[str, Any]:
    assert isinstance(answer, CallResult), answer
    return answer.payload


def after_answer(b: Bench, answer: CallResult | CallError) -> list[Call]:
    """The CALLs the station sent after ``answer``."""
    i = next(i for i, (_, f) in enumerate(b.sent) if f.message_id == answer.message_id
             and not isinstance(f, Call))  # fmt: skip
    return [f for _, f in b.sent[i + 1 :] if isinstance(f, Call)]


def status_of(call: Call) -> str:
    return str(call.payload.get("status") or call.payload["connectorStatus"])


def _plugged(tmp_path: Path, version: str, **kw: Any) -> tuple[Bench, ScriptedEvse]:
    evse = ScriptedEvse(kw.pop("connectors", 1))
    b = Bench(tmp_path, version, evse=evse, **kw).start()
    evse.at(T0 + 10, "plug")
    b.run(20)
    return b, evse


def _charging(tmp_path: Path, version: str, **kw: Any) -> tuple[Bench, ScriptedEvse]:
    b, evse = _plugged(tmp_path, version, **kw)
    evse.at(b.now + 1, "token")
    b.run(5)
    assert b.machine.tx.active()
    return b, evse


# -- remote start -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_remote_start_when_plugged(tmp_path: Path, version: str) -> None:
    b, evse = _plugged(tmp_path, version)
    if version == "1.6":
        answer = b.call("RemoteStartTransaction", {"idTag": "R1", "connectorId": 1})
    else:
        answer = b.call("RequestStartTransaction", {
            "idToken": {"idToken": "R1", "type": "Central"}, "remoteStartId": 77, "evseId": 1,
        })  # fmt: skip
    assert ok(answer)["status"] == "Accepted"
    b.run(5)
    started = [c for c in tx_messages(after_answer(b, answer)) if event_type(c) == "Started"]
    assert len(started) == 1 and evse.relay[1]
    p = started[0].payload
    if version == "1.6":
        assert p["idTag"] == "R1" and p["connectorId"] == 1
    else:
        assert p["transactionInfo"]["remoteStartId"] == 77
        assert p["triggerReason"] == "RemoteStart"
        assert p["idToken"] == {"idToken": "R1", "type": "Central"}


@pytest.mark.parametrize("version", VERSIONS)
def test_remote_start_waits_for_the_cable(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    if version == "1.6":
        answer = b.call("RemoteStartTransaction", {"idTag": "R1"})
    else:
        answer = b.call("RequestStartTransaction", {
            "idToken": {"idToken": "R1", "type": "Central"}, "remoteStartId": 5,
        })  # fmt: skip
    assert ok(answer)["status"] == "Accepted"
    b.run(10)
    assert not b.machine.tx.active()
    evse.at(b.now + 5, "plug")
    b.run(10)
    assert b.machine.tx.active()


@pytest.mark.parametrize("version", VERSIONS)
def test_remote_start_rejected_when_busy(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version)
    if version == "1.6":
        answer = b.call("RemoteStartTransaction", {"idTag": "R1", "connectorId": 1})
    else:
        answer = b.call("RequestStartTransaction", {
            "idToken": {"idToken": "R1", "type": "Central"}, "remoteStartId": 5, "evseId": 1,
        })  # fmt: skip
    assert ok(answer)["status"] == "Rejected"


# -- TriggerMessage ---------------------------------------------------------------------------


def _trigger(b: Bench, what: str, connector: int | None = 1) -> CallResult | CallError:
    """TriggerMessage for connector ``connector`` (2.x: EVSE ``connector``; with its
    connectorId 1 for a StatusNotification, F06.FR.12)."""
    payload: dict[str, Any] = {"requestedMessage": what}
    if connector is not None:
        if b.version == "1.6":
            payload["connectorId"] = connector
        else:
            payload["evse"] = {"id": connector}
            if what == "StatusNotification":
                payload["evse"]["connectorId"] = 1
    return b.call("TriggerMessage", payload)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("what", ["Heartbeat", "StatusNotification", "MeterValues"])
def test_trigger_message_sends_it_after_the_answer(tmp_path: Path, version: str, what: str) -> None:
    b, evse = _charging(tmp_path, version, connectors=2)
    answer = _trigger(b, what, None if what == "Heartbeat" else 2)
    assert ok(answer)["status"] == "Accepted"
    follow = after_answer(b, answer)
    assert follow and follow[0].action == what
    if what == "StatusNotification":
        assert len([c for c in follow if c.action == what]) == 1
        p = follow[0].payload
        assert (p.get("connectorId") if version == "1.6" else p["evseId"]) == 2
        assert status_of(follow[0]) == "Available"
    if what == "MeterValues":
        p = follow[0].payload
        assert (p.get("connectorId") if version == "1.6" else p["evseId"]) == 2
        assert "transactionId" not in p  # connector 2 has no transaction


@pytest.mark.parametrize("version", V2)
@pytest.mark.parametrize("evse", [None, {"id": 1}])
def test_trigger_status_notification_names_one_connector(
    tmp_path: Path, version: str, evse: dict[str, int] | None
) -> None:
    """F06.FR.12: Rejected without evse or its connectorId (F06.FR.13: a status is sent for
    one connector only); before, the node sent every connector's."""
    b = Bench(tmp_path, version, evse=ScriptedEvse(2)).start()
    payload: dict[str, Any] = {"requestedMessage": "StatusNotification"}
    if evse is not None:
        payload["evse"] = evse
    answer = b.call("TriggerMessage", payload)
    assert ok(answer)["status"] == "Rejected"
    assert not after_answer(b, answer)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("what", ["Heartbeat", "BootNotification"])
def test_trigger_ignores_a_connector_the_message_is_not_about(
    tmp_path: Path, version: str, what: str
) -> None:
    """F06.FR.02 / 1.6 5.17: an EVSE or connector that is not relevant to the requested
    message is ignored and the message sent (before: Rejected for an unknown number)."""
    b = Bench(tmp_path, version).start()
    answer = _trigger(b, what, 5)
    if what == "BootNotification" and version != "1.6":
        assert ok(answer)["status"] == "Rejected"  # F06.FR.17, not for the EVSE
        return
    assert ok(answer)["status"] == "Accepted"
    assert after_answer(b, answer)[0].action == what  # 1.6: the statuses follow a boot


@pytest.mark.parametrize("connector", [0, None])
def test_trigger_status_notification_of_the_charge_point_16(
    tmp_path: Path, connector: int | None
) -> None:
    """5.17: connector 0 asks for the Charge Point's own status; no connectorId, for the
    Charge Point's and each connector's."""
    b = Bench(tmp_path, "1.6", evse=ScriptedEvse(2)).start()
    answer = _trigger(b, "StatusNotification", connector)
    assert ok(answer)["status"] == "Accepted"
    sent = [(c.payload["connectorId"], status_of(c)) for c in after_answer(b, answer)]
    assert sent == ([(0, "Available")] if connector == 0 else
                    [(0, "Available"), (1, "Available"), (2, "Available")])  # fmt: skip
    change = {"connectorId": 0, "type": "Inoperative"}
    assert ok(b.call("ChangeAvailability", change))["status"] == "Accepted"
    b.run(5)
    answer = _trigger(b, "StatusNotification", 0)
    assert [status_of(c) for c in after_answer(b, answer)] == ["Unavailable"]


@pytest.mark.parametrize("version", V2)
def test_trigger_meter_values_one_per_evse(tmp_path: Path, version: str) -> None:
    """A 2.x MeterValues is an EVSE's: one per EVSE, from the connector charging (before: one
    per connector, the same evseId twice with different registers)."""
    evse = ScriptedEvse(2, one_evse=True)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "plug", connector=2)
    evse.at(T0 + 11, "token", connector=2)
    b.run(60)
    assert b.machine.tx.active()
    answer = _trigger(b, "MeterValues", 1)
    follow = [c for c in after_answer(b, answer) if c.action == "MeterValues"]
    assert [c.payload["evseId"] for c in follow] == [1]
    value = follow[0].payload["meterValue"][0]["sampledValue"]
    energy = [v["value"] for v in value if v.get("measurand", "Energy.Active.Import.Register")
              == "Energy.Active.Import.Register"]  # fmt: skip
    assert energy == [pytest.approx(evse.register[2], abs=1.0)]


@pytest.mark.parametrize("version", V2)
def test_trigger_transaction_event(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version)
    answer = _trigger(b, "TransactionEvent")
    assert ok(answer)["status"] == "Accepted"
    follow = after_answer(b, answer)
    assert follow[0].action == "TransactionEvent"
    assert follow[0].payload["triggerReason"] == "Trigger"
    assert follow[0].payload["transactionInfo"]["chargingState"] == "Charging"
    b.call("RequestStopTransaction", {"transactionId": b.machine.tx.active()[0].view.local_id})
    b.run(5)
    assert ok(_trigger(b, "TransactionEvent"))["status"] == "Rejected"


def test_trigger_meter_values_of_a_transaction_16(tmp_path: Path) -> None:
    b, evse = _charging(tmp_path, "1.6")
    answer = _trigger(b, "MeterValues")
    follow = after_answer(b, answer)
    assert follow[0].action == "MeterValues"
    assert follow[0].payload["transactionId"] == b.machine.tx.active()[0].view.csms_id


@pytest.mark.parametrize("version", VERSIONS)
def test_trigger_boot_notification(tmp_path: Path, version: str) -> None:
    b = Bench(tmp_path, version).start()
    answer = _trigger(b, "BootNotification", None)
    if version == "1.6":
        assert ok(answer)["status"] == "Accepted"
        assert after_answer(b, answer)[0].action == "BootNotification"
    else:  # F06.FR.17: not once accepted
        assert ok(answer)["status"] == "Rejected"
        assert not after_answer(b, answer)


@pytest.mark.parametrize("version", VERSIONS)
def test_trigger_others(tmp_path: Path, version: str) -> None:
    b = Bench(tmp_path, version).start()
    extra = "DiagnosticsStatusNotification" if version == "1.6" else "LogStatusNotification"
    for what in ("FirmwareStatusNotification", extra):
        answer = _trigger(b, what, None)
        assert ok(answer)["status"] == "Accepted"
        assert after_answer(b, answer)[0].action == what
    if version in V2:
        answer = _trigger(b, "SignChargingStationCertificate", None)
        assert ok(answer)["status"] == "NotImplemented"
        assert ok(_trigger(b, "StatusNotification", 9))["status"] == "Rejected"


# -- availability -----------------------------------------------------------------------------


def _availability(b: Bench, operative: bool, connector: int | None = 1) -> dict[str, Any]:
    word = "Operative" if operative else "Inoperative"
    if b.version == "1.6":
        return ok(b.call("ChangeAvailability", {"connectorId": connector or 0, "type": word}))
    payload: dict[str, Any] = {"operationalStatus": word}
    if connector:
        payload["evse"] = {"id": connector}
    return ok(b.call("ChangeAvailability", payload))


@pytest.mark.parametrize("version", VERSIONS)
def test_change_availability_is_reported_and_persisted(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(2)
    b = Bench(tmp_path, version, evse=evse).start()
    n = len(b.calls())
    assert _availability(b, False, 2)["status"] == "Accepted"
    b.run(1)
    changed = [c for c in b.calls()[n:] if c.action == "StatusNotification"]
    assert [status_of(c) for c in changed] == ["Unavailable"]
    assert evse.available[2] is False
    # a re-created machine (a reboot) keeps it
    b.kill()
    statuses = [status_of(c) for c in b.calls("StatusNotification")[-2:]]
    assert statuses == ["Available", "Unavailable"]
    assert evse.available[2] is False
    # and it refuses to start there
    evse.at(b.now + 1, "plug", connector=2)
    evse.at(b.now + 2, "token", connector=2)
    b.run(5)
    assert not b.machine.tx.active()
    assert _availability(b, True, 2)["status"] == "Accepted"
    b.run(1)
    assert status_of(b.calls("StatusNotification")[-1]) in ("Preparing", "Occupied")


@pytest.mark.parametrize("version", VERSIONS)
def test_change_availability_while_charging_is_scheduled(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version)
    assert _availability(b, False, 1)["status"] == "Scheduled"
    b.run(60)
    assert b.machine.tx.active() and evse.relay[1]
    evse.at(b.now + 1, "unplug")
    b.run(5)
    assert status_of(b.calls("StatusNotification")[-1]) == "Unavailable"


# -- unlock -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_unlock_connector(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version)
    if version == "1.6":
        # 1.6: the transaction is stopped first (reason UnlockCommand)
        assert ok(b.call("UnlockConnector", {"connectorId": 1}))["status"] == "Unlocked"
        b.run(2)
        ended = [c for c in b.calls("StopTransaction")]
        assert ended and ended[0].payload["reason"] == "UnlockCommand"
        assert ok(b.call("UnlockConnector", {"connectorId": 7}))["status"] == "NotSupported"
    else:
        answer = b.call("UnlockConnector", {"evseId": 1, "connectorId": 1})
        assert ok(answer)["status"] == "OngoingAuthorizedTransaction"
        unknown = b.call("UnlockConnector", {"evseId": 5, "connectorId": 1})
        assert ok(unknown)["status"] == "UnknownConnector"
        evse.at(b.now + 1, "unplug")
        b.run(2)
        answer = b.call("UnlockConnector", {"evseId": 1, "connectorId": 1})
        assert ok(answer)["status"] == "Unlocked"
    assert evse.unlocked == [1]


@pytest.mark.parametrize("version", V2)
def test_unlock_connector_of_a_transaction_not_authorized(tmp_path: Path, version: str) -> None:
    """F05: only an authorized transaction keeps the connector locked. One begun at the cable
    (TxStartPoint EVConnected) with no token yet ends (UnlockCommand) and the connector
    unlocks."""
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables={"TxCtrlr.TxStartPoint": "EVConnected"})
    b.start()
    evse.at(T0 + 10, "plug")
    b.run(20)
    assert b.machine.tx.active() and b.machine.tx.active()[0].view.id_token is None
    answer = b.call("UnlockConnector", {"evseId": 1, "connectorId": 1})
    assert ok(answer)["status"] == "Unlocked"
    b.run(2)
    assert not b.machine.tx.active() and evse.unlocked == [1]
    (ended,) = [e for e in b.calls("TransactionEvent") if e.payload["eventType"] == "Ended"]
    assert ended.payload["triggerReason"] == "UnlockCommand"


# -- device model -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", V2)
def test_get_and_set_variables(tmp_path: Path, version: str) -> None:
    b = Bench(tmp_path, version).start()
    hb = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    got = ok(b.call("GetVariables", {"getVariableData": [hb]}))["getVariableResult"]
    assert got[0]["attributeStatus"] == "Accepted" and got[0]["attributeValue"] == "300"
    clock = {"component": {"name": "ClockCtrlr"}, "variable": {"name": "DateTime"}}
    got = ok(b.call("GetVariables", {"getVariableData": [clock]}))["getVariableResult"]
    assert got[0]["attributeValue"].startswith("2026-09-21T")
    answer = b.call("SetVariables", {"setVariableData": [{**hb, "attributeValue": "50"}]})
    assert ok(answer)["setVariableResult"][0]["attributeStatus"] == "Accepted"
    t = b.now
    b.run(120)
    beats = [round(x - t) for x, _ in b.timed_calls("Heartbeat")]
    assert beats == [50, 100]
    # too many items: a CALLERROR with the code B06 names, not an internal error
    too_many = {"getVariableData": [hb] * 17}
    answer = b.call("GetVariables", too_many)
    assert isinstance(answer, CallError)
    assert answer.error_code == "OccurrenceConstraintViolation"
    answer = b.call("SetVariables", {"setVariableData": [{**hb, "attributeValue": "60"}] * 17})
    assert isinstance(answer, CallError)
    assert answer.error_code == "OccurrenceConstraintViolation"
    assert b.model.heartbeat_interval == 50


@pytest.mark.parametrize("version", V2)
def test_get_base_report_sends_notify_report_pages(tmp_path: Path, version: str) -> None:
    b = Bench(tmp_path, version).start()
    answer = b.call("GetBaseReport", {"requestId": 9, "reportBase": "FullInventory"})
    assert ok(answer)["status"] == "Accepted"
    b.run(5)
    pages = [c.payload for c in after_answer(b, answer) if c.action == "NotifyReport"]
    assert len(pages) > 2
    assert [p["seqNo"] for p in pages] == list(range(len(pages)))
    assert {p["requestId"] for p in pages} == {9}
    assert [p.get("tbc", False) for p in pages] == [True] * (len(pages) - 1) + [False]
    names = {d["variable"]["name"] for p in pages for d in p["reportData"]}
    assert {"HeartbeatInterval", "TxUpdatedInterval", "AvailabilityState"} <= names
    # on a link with a largest frame (a LoRa radio's) the pages are cut to fit it
    limit = 700  # the largest single item (the measurands list) takes about 650 B
    b.machine.frame_fits = lambda action, payload: (
        len(cbor.encode(Call("zzzzzzzz", action, payload), version)) <= limit
    )
    answer = b.call("GetBaseReport", {"requestId": 10, "reportBase": "FullInventory"})
    b.run(5)
    small = [c.payload for c in after_answer(b, answer) if c.action == "NotifyReport"]
    assert len(small) > len(pages) and [p["seqNo"] for p in small] == list(range(len(small)))
    assert max(len(cbor.encode(Call("1", "NotifyReport", p), version)) for p in small) <= limit
    keys = [(d["component"], d["variable"]) for p in small for d in p["reportData"]]
    assert keys == [(d["component"], d["variable"]) for p in pages for d in p["reportData"]]


def test_get_and_change_configuration_16(tmp_path: Path) -> None:
    b = Bench(tmp_path, "1.6").start()
    got = ok(b.call("GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]}))
    assert got["configurationKey"] == [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"}
    ]
    assert got["unknownKey"] == ["Nope"]
    everything = ok(b.call("GetConfiguration", {}))["configurationKey"]
    assert len(everything) > 10
    change = b.call("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "50"})
    assert ok(change)["status"] == "Accepted"
    assert ok(b.call("ChangeConfiguration", {"key": "Nope", "value": "1"}))["status"] == (
        "NotSupported"
    )
    assert (
        ok(b.call("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "x"}))["status"]
        == "Rejected"
    )
    t = b.now
    b.run(120)
    assert [round(x - t) for x, _ in b.timed_calls("Heartbeat")] == [50, 100]


# -- transactions and the rest ----------------------------------------------------------------


@pytest.mark.parametrize("version", V2)
def test_get_transaction_status(tmp_path: Path, version: str) -> None:
    b, evse = _plugged(tmp_path, version)
    b.csms.lose_up = lambda f: getattr(f, "action", None) == "TransactionEvent"
    evse.at(b.now + 1, "token")
    b.run(5)
    tx_id = b.machine.tx.active()[0].view.local_id
    got = ok(b.call("GetTransactionStatus", {"transactionId": tx_id}))
    assert got == {"messagesInQueue": True, "ongoingIndicator": True}
    assert ok(b.call("GetTransactionStatus", {}))["messagesInQueue"] is True
    unknown = ok(b.call("GetTransactionStatus", {"transactionId": "zz"}))
    assert unknown == {"messagesInQueue": False, "ongoingIndicator": False}
    b.csms.lose_up = None
    evse.at(b.now + 1, "unplug")
    b.run(200)
    assert b.outbox.depth() == 0
    got = ok(b.call("GetTransactionStatus", {"transactionId": tx_id}))
    assert got == {"messagesInQueue": False, "ongoingIndicator": False}


@pytest.mark.parametrize("version", V2)
def test_clear_cache_without_a_cache_is_rejected(tmp_path: Path, version: str) -> None:
    """C11.FR.04: Rejected while AuthCacheCtrlr.Enabled is false."""
    b = Bench(tmp_path, version, variables={"AuthCacheCtrlr.Enabled": "false"}).start()
    assert ok(b.call("ClearCache", {}))["status"] == "Rejected"


def test_remote_start_on_connector_0_is_rejected_16(tmp_path: Path) -> None:
    """1.6 6.33: a connectorId given is > 0 (before: Accepted, on any free connector)."""
    b = Bench(tmp_path, "1.6").start()
    answer = b.call("RemoteStartTransaction", {"idTag": "R1", "connectorId": 0})
    assert ok(answer)["status"] == "Rejected"
    b.run(10)
    assert not b.machine.tx.active()


@pytest.mark.parametrize("version", VERSIONS)
def test_clear_cache_forgets_the_tokens(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 1, "token", token="T1")  # authorized online: cached
    b.run(100)
    assert ok(b.call("ClearCache", {}))["status"] == "Accepted"
    b.link_down()
    evse.at(b.now + 1, "plug")
    evse.at(b.now + 2, "token", token="T1")
    b.run(10)
    assert not b.machine.tx.active()  # unknown offline: refused


@pytest.mark.parametrize("version", VERSIONS)
def test_cached_token_starts_offline(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 1, "token", token="T1")
    b.run(100)
    b.link_down()
    evse.at(b.now + 1, "plug")
    evse.at(b.now + 2, "token", token="T1")
    b.run(10)
    assert b.machine.tx.active()


@pytest.mark.parametrize("version", VERSIONS)
def test_data_transfer(tmp_path: Path, version: str) -> None:
    b = Bench(tmp_path, version).start()
    answer = b.call("DataTransfer", {"vendorId": "com.example", "messageId": "x"})
    assert ok(answer)["status"] == "UnknownVendorId"


@pytest.mark.parametrize("version", V2)
def test_reset_of_one_evse_is_rejected(tmp_path: Path, version: str) -> None:
    b = Bench(tmp_path, version).start()
    assert ok(b.call("Reset", {"type": "Immediate", "evseId": 1}))["status"] == "Rejected"
    assert b.machine.restart_due is None


@pytest.mark.parametrize("version", V2)
def test_a_reset_on_idle_lets_no_new_transaction_begin(tmp_path: Path, version: str) -> None:
    """Reset OnIdle while connector 1 charges: Scheduled; connector 2 (free) becomes Unavailable
    at once and refuses a cable, a token and a remote start, so the reset is not put off; it
    happens when connector 1's transaction ends, and the restart makes both Available again."""
    b, evse = _charging(tmp_path, version, connectors=2)
    n = len(b.calls())
    assert ok(b.call("Reset", {"type": "OnIdle"}))["status"] == "Scheduled"
    b.run(1)
    changed = [(c.payload["evseId"], status_of(c)) for c in b.calls()[n:]
               if c.action == "StatusNotification"]  # fmt: skip
    assert changed == [(2, "Unavailable")]  # connector 1 stays Occupied
    assert evse.available == {1: False, 2: False}
    assert b.machine.tx.active() and evse.relay[1]  # connector 1 goes on charging
    evse.at(b.now + 1, "plug", connector=2)
    evse.at(b.now + 2, "token", connector=2, token="T2")
    b.run(5)
    remote = {"idToken": {"idToken": "R1", "type": "Central"}, "remoteStartId": 5, "evseId": 2}
    assert ok(b.call("RequestStartTransaction", remote))["status"] == "Rejected"
    b.run(60)
    assert [tx.view.connector.number for tx in b.machine.tx.active()] == [1]
    assert not evse.relay[2] and b.machine.restart_due is None
    assert b.machine.status(b.now)["reset_scheduled"] is True  # charger-node status says it
    evse.at(b.now + 1, "unplug")  # connector 1's transaction ends: now the reset
    b.run(5)
    assert b.machine.restart_due == "Scheduled"
    b.restart("ScheduledReset")
    assert b.calls("BootNotification")[-1].payload["reason"] == "ScheduledReset"
    assert evse.available == {1: True, 2: True}
    last = {c.payload["evseId"]: status_of(c) for c in b.calls("StatusNotification")}
    assert last == {1: "Available", 2: "Occupied"}  # connector 2's cable is still in


@pytest.mark.parametrize("charging", [False, True])
def test_a_reset_immediate_and_resume_is_refused_while_charging(
    tmp_path: Path, charging: bool
) -> None:
    """2.1 ImmediateAndResume asks the transactions to go on after the restart, which this
    node cannot do: Rejected while one runs (nothing ends, no restart); with none, a restart."""
    if charging:
        b, evse = _charging(tmp_path, "2.1")
    else:
        b = Bench(tmp_path, "2.1").start()
    answer = ok(b.call("Reset", {"type": "ImmediateAndResume"}))["status"]
    b.run(5)
    if charging:
        assert answer == "Rejected" and b.machine.restart_due is None
        assert b.machine.tx.active() and evse.relay[1]
    else:
        assert answer == "Accepted" and b.machine.restart_due == "ImmediateAndResume"


@pytest.mark.parametrize("version", V2)
def test_a_cable_into_an_inoperative_connector_starts_nothing(tmp_path: Path, version: str) -> None:
    """TxStartPoint EVConnected begins a transaction at the cable, but not on a connector made
    Inoperative (it is Unavailable: nothing may start there); once Operative again it does."""
    evse = ScriptedEvse(1)
    variables = {"TxCtrlr.TxStartPoint": "EVConnected"}
    b = Bench(tmp_path, version, evse=evse, variables=variables).start()
    assert _availability(b, False, 1)["status"] == "Accepted"
    evse.at(b.now + 1, "plug")
    b.run(5)
    assert not b.machine.tx.active()
    assert not [c for c in b.calls() if c.action == "TransactionEvent"]
    assert status_of(b.calls("StatusNotification")[-1]) == "Unavailable"
    evse.at(b.now + 1, "unplug")
    b.run(2)
    assert _availability(b, True, 1)["status"] == "Accepted"
    evse.at(b.now + 1, "plug")
    b.run(5)
    assert b.machine.tx.active()
    assert event_type(b.calls("TransactionEvent")[0]) == "Started"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("clear", [False, True])
def test_the_authorization_cache_survives_a_restart(
    tmp_path: Path, version: str, clear: bool
) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 1, "token", token="T1")
    b.run(100)
    if clear:
        assert ok(b.call("ClearCache", {}))["status"] == "Accepted"
    b.kill(link=False)  # and it comes back offline
    evse.at(b.now + 1, "plug")
    evse.at(b.now + 2, "token", token="T1")
    b.run(10)
    assert bool(b.machine.tx.active()) is not clear


@pytest.mark.parametrize("version", VERSIONS)
def test_no_cache_no_offline_start(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables={"AuthCacheCtrlr.Enabled": "false"})
    b.start()
    evse.at(T0 + 1, "token", token="T1")
    b.run(100)
    b.link_down()
    evse.at(b.now + 1, "plug")
    evse.at(b.now + 2, "token", token="T1")
    b.run(10)
    assert not b.machine.tx.active()


@pytest.mark.parametrize("version", VERSIONS)
def test_change_availability_of_the_whole_station(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(2)
    b = Bench(tmp_path, version, evse=evse).start()
    n = len(b.calls())
    assert _availability(b, False, None)["status"] == "Accepted"
    b.run(1)
    assert [status_of(c) for c in b.calls()[n:] if c.action == "StatusNotification"] == [
        "Unavailable",
        "Unavailable",
    ]
    assert _availability(b, True, None)["status"] == "Accepted"
    b.run(1)
    assert [status_of(c) for c in b.calls("StatusNotification")[-2:]] == ["Available"] * 2


@pytest.mark.parametrize("version", VERSIONS)
def test_a_token_refused_by_the_back_end_does_not_start(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    b.csms.invalid_tokens.add("BAD")
    evse.at(T0 + 1, "plug")
    evse.at(T0 + 2, "token", token="BAD")
    b.run(10)
    assert b.calls("Authorize") and not b.machine.tx.active() and not evse.relay[1]
    # refused at the back end: refused offline too (the cache says Invalid)
    b.link_down()
    evse.at(b.now + 1, "token", token="BAD")
    b.run(5)
    assert not b.machine.tx.active()


@pytest.mark.parametrize("version", VERSIONS)
def test_no_follow_up_when_the_answer_is_a_callerror(tmp_path: Path, version: str) -> None:
    """A handler that scheduled its follow-up and then failed (here: an answer its schema
    refuses, which dispatch turns into InternalError): the back end was told it failed, so
    the remote start must not happen."""
    from ocpp_iot.charger_node.charger import default_charger

    def broken(machine: Any) -> Any:
        charger = default_charger(machine)
        name = "remote_start_transaction" if version == "1.6" else "request_start_transaction"
        original = getattr(charger, name)

        def start(request: Any, ctx: Any) -> dict[str, Any]:
            original(request, ctx)
            return {"status": "Maybe"}

        setattr(charger, name, start)
        return charger

    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, charger=broken).start()
    evse.at(T0 + 1, "plug")
    b.run(5)
    if version == "1.6":
        answer = b.call("RemoteStartTransaction", {"idTag": "R1", "connectorId": 1})
    else:
        answer = b.call("RequestStartTransaction", {
            "idToken": {"idToken": "R1", "type": "Central"}, "remoteStartId": 1, "evseId": 1,
        })  # fmt: skip
    assert isinstance(answer, CallError) and answer.error_code == "InternalError"
    b.run(10)
    assert not b.machine.tx.active() and not evse.relay[1]


@pytest.mark.parametrize("version", V2)
def test_request_start_without_evse_takes_a_free_one(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version, connectors=2)  # connector 1 is busy
    evse.at(b.now + 1, "plug", connector=2)
    b.run(5)
    answer = b.call("RequestStartTransaction", {
        "idToken": {"idToken": "R2", "type": "Central"}, "remoteStartId": 8,
    })  # fmt: skip
    assert ok(answer)["status"] == "Accepted"
    b.run(5)
    assert len(b.machine.tx.active()) == 2 and evse.relay[2]


@pytest.mark.parametrize("version", V2)
def test_request_start_authorizes_a_transaction_started_at_the_cable(
    tmp_path: Path, version: str
) -> None:
    b, evse = _plugged(tmp_path, version, variables={"TxCtrlr.TxStartPoint": "EVConnected"})
    tx_id = b.machine.tx.active()[0].view.local_id
    answer = b.call("RequestStartTransaction", {
        "idToken": {"idToken": "R1", "type": "Central"}, "remoteStartId": 9, "evseId": 1,
    })  # fmt: skip
    assert ok(answer) == {"status": "Accepted", "transactionId": tx_id}
    b.run(5)
    update = [c.payload for c in after_answer(b, answer) if c.action == "TransactionEvent"][0]
    assert update["triggerReason"] == "RemoteStart"
    assert update["transactionInfo"]["remoteStartId"] == 9
    assert update["idToken"] == {"idToken": "R1", "type": "Central"}
    assert evse.relay[1] and len(b.machine.tx.active()) == 1
