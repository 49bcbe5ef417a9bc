"""SampledDataCtrlr.TxEndedInterval (2.x J02): the Ended event carries the TxEnded measurands
sampled at the start (Transaction.Begin), every interval (Sample.Periodic) and at the stop
(Transaction.End); the samples survive a restart (the PowerLoss Ended has them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from station_harness import T0, V2, Bench, ScriptedEvse

from ocpp_iot.charger_node import tx_records
from ocpp_iot.charger_node.messages import iso
from ocpp_iot.charger_node.runtime import encode_frame
from ocpp_iot.rpc import Call

EVERY_5_MIN = {"SampledDataCtrlr.TxEndedInterval": "300", "SampledDataCtrlr.TxUpdatedInterval": "0"}


def _ended(b: Bench) -> dict[str, Any]:
    (ended,) = [
        c.payload for c in b.csms.calls("TransactionEvent") if c.payload["eventType"] == "Ended"
    ]
    return ended


def _contexts(ended: dict[str, Any]) -> list[str]:
    return [mv["sampledValue"][0]["context"] for mv in ended["meterValue"]]


def _charge(
    tmp_path: Path, version: str, variables: dict[str, str] | None, unplug_at: float | None
) -> Bench:
    """A bench whose EV plugs in at T0 + 10 and authorizes at T0 + 11 (the start), unplugging
    ``unplug_at`` seconds after T0 if given."""
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables=variables).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    if unplug_at is not None:
        evse.at(T0 + unplug_at, "unplug")
    return b


@pytest.mark.parametrize("version", V2)
def test_the_ended_event_carries_the_samples_of_the_whole_transaction(
    tmp_path: Path, version: str
) -> None:
    b = _charge(tmp_path, version, EVERY_5_MIN, 11 + 3600)
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
    b = _charge(tmp_path, "2.0.1", None, 1000)
    b.run(1100)
    assert _contexts(_ended(b)) == ["Transaction.End"]


def test_a_restart_ends_the_transaction_with_the_samples_taken_before_it(tmp_path: Path) -> None:
    b = _charge(tmp_path, "2.0.1", EVERY_5_MIN, None)
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
    # Begin + 9 periodic samples, more than 6
    b = _charge(tmp_path, "2.0.1", EVERY_5_MIN, 11 + 3000)
    b.run(3100)
    ended = _ended(b)
    stamps = [mv["timestamp"] for mv in ended["meterValue"]]
    assert len(stamps) <= 6 + 1
    assert stamps[0] == iso(T0 + 11) and stamps[-1] == iso(T0 + 11 + 3000)
    assert stamps[-2] == iso(T0 + 11 + 2700)  # the latest periodic one stays
    assert stamps == sorted(stamps)


def _stop(b: Bench) -> dict[str, Any]:
    (stop,) = [c.payload for c in b.csms.calls("StopTransaction")]
    return stop


def test_16_stop_carries_stop_txn_sampled_data_every_meter_value_sample_interval(
    tmp_path: Path,
) -> None:
    """1.6 StopTxnSampledData: sampled every MeterValueSampleInterval from the start, into
    StopTransaction.transactionData (with the MeterValues of that interval still sent)."""
    variables = {
        "SampledDataCtrlr.TxUpdatedInterval": "600",
        "SampledDataCtrlr.TxEndedMeasurands": "Energy.Active.Import.Register,Power.Active.Import",
    }
    b = _charge(tmp_path, "1.6", variables, 11 + 3000)
    b.run(3100)
    data = _stop(b)["transactionData"]
    contexts = [mv["sampledValue"][0]["context"] for mv in data]
    assert contexts == ["Transaction.Begin"] + ["Sample.Periodic"] * 4 + ["Transaction.End"]
    assert [mv["timestamp"] for mv in data] == [iso(T0 + 11 + 600 * k) for k in range(6)]
    energy = "Energy.Active.Import.Register"  # the default measurand, left out
    measurands = {v.get("measurand", energy) for mv in data for v in mv["sampledValue"]}
    assert measurands == {"Energy.Active.Import.Register", "Power.Active.Import"}
    assert all(isinstance(v["value"], str) for mv in data for v in mv["sampledValue"])
    assert len(b.csms.calls("MeterValues")) == 4  # the periodic MeterValues go on as well


def test_16_default_stop_has_no_transaction_data(tmp_path: Path) -> None:
    """1.6 defaults StopTxnSampledData to empty: meterStop already is the register."""
    b = _charge(tmp_path, "1.6", None, 1000)
    b.run(1100)
    stop = _stop(b)
    assert "transactionData" not in stop and stop["meterStop"] > 0
    assert b.model.value("SampledDataCtrlr.TxEndedMeasurands") == ""


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_clock_aligned_tx_ended_samples_fall_on_the_boundaries(
    tmp_path: Path, version: str
) -> None:
    """AlignedDataCtrlr.TxEndedMeasurands at each AlignedDataCtrlr.TxEndedInterval boundary
    (1.6: StopTxnAlignedData at ClockAlignedDataInterval) from midnight UTC, in the Ended /
    StopTransaction, in time order with the start and stop samples. The bench's T0 is
    14:13:20Z: 900 s boundaries at T0 + 100, 1000, 1900."""
    variables = {
        "SampledDataCtrlr.TxUpdatedInterval": "0",
        "SampledDataCtrlr.TxEndedInterval": "0",
        "AlignedDataCtrlr.TxEndedMeasurands": "Energy.Active.Import.Register",
    }
    # 1.6 has one aligned interval: its clock-aligned MeterValues go at the same boundaries
    interval = "Interval" if version == "1.6" else "TxEndedInterval"
    variables["AlignedDataCtrlr." + interval] = "900"
    b = _charge(tmp_path, version, variables, 2500)
    b.run(2600)
    if version == "1.6":
        data = _stop(b)["transactionData"]
        clock = data
    else:
        data = _ended(b)["meterValue"]
        clock = [mv for mv in data if mv["sampledValue"][0]["context"] == "Sample.Clock"]
        assert _contexts(_ended(b))[-1] == "Transaction.End"
        # 2.x: the Ended's own aligned interval sends no MeterValueClock event
        assert all(
            c.payload.get("triggerReason") != "MeterValueClock"
            for c in b.csms.calls("TransactionEvent")
        )
    assert [mv["timestamp"] for mv in clock] == [iso(T0 + 100 + 900 * k) for k in range(3)]
    assert all(mv["sampledValue"][0]["context"] == "Sample.Clock" for mv in clock)
    stamps = [mv["timestamp"] for mv in data]
    assert stamps == sorted(stamps)


def test_clock_aligned_tx_ended_samples_survive_a_restart(tmp_path: Path) -> None:
    variables = {
        "AlignedDataCtrlr.TxEndedInterval": "900",
        "AlignedDataCtrlr.TxEndedMeasurands": "Energy.Active.Import.Register",
    }
    b = _charge(tmp_path, "2.0.1", variables, None)
    b.run(1500)  # boundaries at T0 + 100 and 1000
    b.kill()
    b.run(60)
    ended = _ended(b)
    assert ended["transactionInfo"]["stoppedReason"] == "PowerLoss"
    assert _contexts(ended) == ["Sample.Clock", "Sample.Clock", "Transaction.End"]


THREE_PHASE = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage"


def test_the_record_keeps_the_meters_numbers_not_the_sampled_values(tmp_path: Path) -> None:
    """Rewritten with every message of the transaction, the record must stay small: a
    sample is the meter's numbers (~70 B of JSON), whatever the measurands."""
    variables = EVERY_5_MIN | {"SampledDataCtrlr.TxEndedMeasurands": THREE_PHASE}
    b = _charge(tmp_path, "2.0.1", variables, None)
    b.run(3100)  # Begin + 10 periodic samples
    (record,) = b.outbox.kept(tx_records.TX_KEY).values()
    assert len(record["ended"]) == 11
    per_sample = len(json.dumps(record["ended"])) / 11
    assert per_sample < 100, per_sample
    b.kill()
    b.run(60)
    ended = _ended(b)  # the PowerLoss Ended expands them into full sampledValue lists
    first = ended["meterValue"][0]["sampledValue"]
    assert [v.get("measurand") for v in first].count("Current.Import") == 3
    assert {v.get("phase") for v in first} >= {"L1", "L2", "L3", "L1-N"}
    assert first[0]["context"] == "Transaction.Begin"
    assert len(json.dumps(ended["meterValue"])) > 10 * len(json.dumps(record["ended"])) / 11


def test_a_record_of_an_earlier_release_with_meter_values_is_still_ended(tmp_path: Path) -> None:
    b = _charge(tmp_path, "2.0.1", EVERY_5_MIN, None)
    b.run(700)
    ((key, record),) = b.outbox.kept(tx_records.TX_KEY).items()
    old = {"timestamp": iso(T0 + 11), "sampledValue": [{"value": 1.0, "context": "Other"}]}
    b.outbox.keep(key, record | {"ended": [old]})  # as commit b34b4de wrote them
    b.kill()
    b.run(60)
    meter_values = _ended(b)["meterValue"]
    assert meter_values[0] == old and len(meter_values) == 2


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_an_ended_too_big_for_the_link_is_thinned_until_it_fits(
    tmp_path: Path, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A link with a small largest frame (a LoRa modem's): the Ended / StopTransaction keeps
    the first and the latest samples and as many between as fit, and goes."""
    variables = EVERY_5_MIN | {"SampledDataCtrlr.TxEndedMeasurands": THREE_PHASE}
    if version == "1.6":
        variables["SampledDataCtrlr.TxUpdatedInterval"] = "300"
    b = _charge(tmp_path, version, variables, 11 + 6 * 3600)  # 72 samples, ~40 KB of CBOR
    limit = 4000
    sizes: list[int] = []

    def fits(action: str, payload: dict[str, Any]) -> bool:
        size = len(encode_frame(Call("zzzzzzzz", action, payload), version, "cbor"))
        sizes.append(size)
        return size <= limit

    b.machine.frame_fits = fits
    with caplog.at_level("WARNING"):
        b.run(6 * 3600 + 100)
    assert sizes[-1] <= limit < sizes[0]
    if version == "1.6":
        samples = _stop(b)["transactionData"]
    else:
        samples = _ended(b)["meterValue"]
    assert len(samples) >= 3
    assert samples[0]["timestamp"] == iso(T0 + 11)
    assert samples[-1]["timestamp"] == iso(T0 + 11 + 6 * 3600)  # the stop's
    assert samples[-2]["timestamp"] == iso(T0 + 11 + 6 * 3600 - 300)  # the latest periodic
    assert "too big for the link" in caplog.text
