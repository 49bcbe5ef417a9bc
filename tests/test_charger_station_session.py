"""The station machine through whole charging sessions, against the reference charge system:
boot, status, authorization, transaction messages at the meter interval, energy that adds up;
heartbeats at the back end's interval. Fake clock; every frame through OCPP-J, CBOR and the
schemas (``station_harness``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from station_harness import (
    T0,
    V2,
    VERSIONS,
    Bench,
    Csms,
    ScriptedEvse,
    event_type,
    register_of,
    stop_reason,
    tx_messages,
)

from ocpp_iot.bridge.reference import build_reference
from ocpp_iot.charger_node.scenario import parse_scenario
from ocpp_iot.charger_node.simulated import SimulatedEvse

SESSION = {
    "steps": [
        {"at": 10, "plug": 1, "charge_kwh": 5, "power_kw": 11},
        {"after": 5, "token": "T1"},
        {"unplug": 1, "after_full": 60},
    ]
}


def _reference_bench(tmp_path: Path, version: str) -> Bench:
    ref = build_reference(str(tmp_path / "ref.db"), allow=["T1"], versions=[version])[version]
    evse = SimulatedEvse(2, seed=7, scenario=parse_scenario(SESSION), start=T0)
    return Bench(tmp_path, version, evse=evse, csms=Csms(version, behaviour=ref))


@pytest.mark.parametrize("version", VERSIONS)
def test_full_session_from_a_scenario(tmp_path: Path, version: str) -> None:
    b = _reference_bench(tmp_path, version).start()
    b.run(3 * 3600)
    calls = b.csms.calls()
    actions = [c.action for c in calls]
    # B01 then G01: the boot, then every connector's status before anything else
    assert actions[0] == "BootNotification"
    first = calls[1:3]
    assert [c.action for c in first] == ["StatusNotification"] * 2
    if version == "1.6":
        assert [c.payload["connectorId"] for c in first] == [1, 2]
        assert {c.payload["status"] for c in first} == {"Available"}
    else:
        assert [(c.payload["evseId"], c.payload["connectorId"]) for c in first] == [(1, 1), (2, 1)]
        assert {c.payload["connectorStatus"] for c in first} == {"Available"}
    assert actions.count("Authorize") == 1
    auth = b.csms.calls("Authorize")[0].payload
    assert (auth.get("idTag") or auth["idToken"]["idToken"]) == "T1"

    txm = tx_messages(calls)
    kinds = [event_type(c) for c in txm]
    assert kinds.count("Started") == 1 and kinds.count("Ended") == 1
    assert kinds[0] == "Started" and kinds[-1] == "Ended"
    # the EV wanted 5 kWh exactly: Ended carries the register at the stop
    start_wh, end_wh = register_of(txm[0]), register_of(txm[-1])
    assert start_wh is not None and end_wh is not None
    assert end_wh - start_wh == pytest.approx(5000.0, abs=1.0 if version == "1.6" else 0.11)
    registers = [register_of(c) for c in txm]
    assert registers == sorted(registers)  # a register never goes back
    assert stop_reason(txm[-1]) == "EVDisconnected"
    if version in V2:
        assert [c.payload["seqNo"] for c in txm] == list(range(len(txm)))
        assert {c.payload["transactionInfo"]["transactionId"] for c in txm} == {
            txm[0].payload["transactionInfo"]["transactionId"]
        }
        assert txm[0].payload["triggerReason"] == "Authorized"
        assert txm[0].payload["idToken"] == {"idToken": "T1", "type": "ISO14443"}
        assert txm[-1].payload["triggerReason"] == "EVCommunicationLost"
        assert not any(c.payload.get("offline") for c in txm)
    else:
        ids = {c.payload["transactionId"] for c in txm[1:]}
        assert len(ids) == 1 and ids.pop() > 0  # the back end's id, never the placeholder

    # J02: periodic samples every TxUpdatedInterval (60 s) after the message before
    times = {id(c): t for t, c in b.csms.timed()}
    periodic = [
        i
        for i, c in enumerate(txm)
        if event_type(c) == "Updated"
        and (c.payload.get("triggerReason") == "MeterValuePeriodic" or version == "1.6")
    ]
    assert len(periodic) >= 25  # 1636 s of charging, 60 s after the EV was full
    for i in periodic:
        assert times[id(txm[i])] - times[id(txm[i - 1])] == pytest.approx(60.0)

    # what the reference recorded: once each, the same energy
    db = sqlite3.connect(tmp_path / "ref.db")
    (n_events,) = db.execute(
        "SELECT COUNT(*) FROM ref_events WHERE action IN (?, ?, ?, ?)",
        ("TransactionEvent", "StartTransaction", "MeterValues", "StopTransaction"),
    ).fetchone()
    assert n_events == len(txm)
    assert b.machine.settled and b.outbox.depth() == 0
    assert b.machine.status(b.now)["connectors"] == {"1": "Available", "2": "Available"}


@pytest.mark.parametrize("version", VERSIONS)
def test_no_heartbeat_while_other_calls_go_out(tmp_path: Path, version: str) -> None:
    b = _reference_bench(tmp_path, version).start()
    b.run(3 * 3600)
    beats = [t for t, _ in b.csms.timed("Heartbeat")]
    calls = [t for t, c in b.csms.timed() if c.action != "Heartbeat"]
    end_of_tx = max(calls)
    assert not [t for t in beats if t < end_of_tx]  # a CALL went out every 60 s
    # then every 300 s (the reference's interval), counted from the last CALL
    assert beats[0] == pytest.approx(end_of_tx + 300)
    assert [round(y - x) for x, y in zip(beats, beats[1:], strict=False)] == [300] * (
        len(beats) - 1
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_heartbeat_at_the_interval_given_and_skipped_after_other_calls(
    tmp_path: Path, version: str
) -> None:
    evse = ScriptedEvse(1)
    csms = Csms(version, boot_interval=100)
    b = Bench(tmp_path, version, evse=evse, csms=csms).start()
    assert b.model.heartbeat_interval == 100
    evse.at(T0 + 250, "plug")  # a StatusNotification at +250
    b.run(600)
    beats = [round(t - T0) for t, _ in csms.timed("Heartbeat")]
    # +100, +200, then the status at +250 makes the next one due at +350
    assert beats == [100, 200, 350, 450, 550]
    status_times = [round(t - T0) for t, _ in csms.timed("StatusNotification")]
    assert status_times == [0, 250]
