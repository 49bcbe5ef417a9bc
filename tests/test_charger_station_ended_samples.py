"""SampledDataCtrlr.TxEndedInterval (2.x J02): the Ended event carries the TxEnded measurands
sampled at the start (Transaction.Begin), every interval (Sample.Periodic) and at the stop
(Transaction.End); the samples survive a restart (the PowerLoss Ended has them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from station_harness import T0, V2, Bench, ScriptedEvse

from ocpp_iot.charger_node import tx_records
from ocpp_iot.charger_node.messages import iso

EVERY_5_MIN = {"SampledDataCtrlr.TxEndedInterval": "300", "SampledDataCtrlr.TxUpdatedInterval": "0"}


def _ended(b: Bench) -> dict[str, Any]:
    (ended,) = [
        c.payload for c in b.csms.calls("TransactionEvent") if c.payload["eventType"] == "Ended"
    ]
    return ended


def _contexts(ended: dict[str, Any]) -> list[str]:
    return [mv["sampledValue"][0]["context"] for mv in ended["meterValue"]]


@pytest.mark.parametrize("version", V2)
def test_the_ended_event_carries_the_samples_of_the_whole_transaction(
    tmp_path: Path, version: str
) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables=EVERY_5_MIN).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    evse.at(T0 + 11 + 3600, "unplug")
    b.run(3700)
    ended = _ended(b)  # the stop comes before the sample due at the same instant: none then
    assert _contexts(ended) == ["Transaction.Begin"] + ["Sample.Periodic"] * 11 + [
        "Transaction.End"
    ]
    stamps = [mv["timestamp"] for mv in ended["meterValue"]]
    assert stamps == [iso(T0 + 11 + 300 * k) for k in range(12)] + [iso(T0 + 11 + 3600)]
    registers = [mv["sampledValue"][0]["value"] for mv in ended["meterValue"]]
    assert registers == sorted(registers) and registers[-1] > registers[0]
    # only the Ended carries them: no Updated event was sent for them (TxUpdatedInterval 0)
    kinds = [c.payload["eventType"] for c in b.csms.calls("TransactionEvent")]
    assert kinds.count("Updated") == 0


def test_off_by_default_the_ended_has_the_stop_sample_only(tmp_path: Path) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, "2.0.1", evse=evse).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    evse.at(T0 + 1000, "unplug")
    b.run(1100)
    assert _contexts(_ended(b)) == ["Transaction.End"]


def test_a_restart_ends_the_transaction_with_the_samples_taken_before_it(tmp_path: Path) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, "2.0.1", evse=evse, variables=EVERY_5_MIN).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(1000)  # samples at T0 + 11, 311, 611, 911
    b.kill()
    b.run(60)
    ended = _ended(b)
    assert ended["transactionInfo"]["stoppedReason"] == "PowerLoss"
    assert _contexts(ended) == ["Transaction.Begin"] + ["Sample.Periodic"] * 3 + ["Transaction.End"]


def test_a_long_transaction_thins_its_samples_keeping_start_and_latest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tx_records, "MAX_ENDED_SAMPLES", 6)
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, "2.0.1", evse=evse, variables=EVERY_5_MIN).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    evse.at(T0 + 11 + 3000, "unplug")  # Begin + 9 periodic samples, more than 6
    b.run(3100)
    ended = _ended(b)
    stamps = [mv["timestamp"] for mv in ended["meterValue"]]
    assert len(stamps) <= 6 + 1
    assert stamps[0] == iso(T0 + 11) and stamps[-1] == iso(T0 + 11 + 3000)
    assert stamps[-2] == iso(T0 + 11 + 2700)  # the latest periodic one stays
    assert stamps == sorted(stamps)
