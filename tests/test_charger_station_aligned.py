"""Clock-aligned meter values (OCPP 2.0.1 J01 AlignedDataCtrlr; 1.6 ClockAlignedDataInterval):
at each boundary of the interval from midnight UTC on the back end's clock, a sample of every
connector: an Updated event (MeterValueClock, Sample.Clock) in a transaction, a MeterValues
elsewhere. The bench's epoch T0 is 14:13:20Z, so 900 s boundaries fall at T0 + 100, 1000, ...
and 600 s ones at T0 + 400, 1000, ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from station_harness import T0, VERSIONS, Bench, Csms, ScriptedEvse, tx_messages

from ocpp_iot.charger_node.aligned import AlignedSchedule
from ocpp_iot.charger_node.messages import iso
from ocpp_iot.rpc import Call

QUARTER = {"AlignedDataCtrlr.Interval": "900", "SampledDataCtrlr.TxUpdatedInterval": "0"}


def _values(call: Call) -> list[dict[str, Any]]:
    return [v for mv in call.payload["meterValue"] for v in mv["sampledValue"]]


def _clock(calls: list[tuple[float, Call]]) -> list[tuple[float, Call]]:
    return [
        (t, c)
        for t, c in calls
        if (c.action == "MeterValues" or c.payload.get("eventType") == "Updated")
        and any(v.get("context") == "Sample.Clock" for v in _values(c))
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_aligned_samples_in_a_transaction_fall_on_the_quarter_hours(
    tmp_path: Path, version: str
) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables=QUARTER).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(3600)
    clock = _clock(b.csms.timed())
    boundaries = [T0 + 100 + 900 * k for k in range(4)]
    assert [t for t, _ in clock] == pytest.approx(boundaries, abs=1e-6)
    for (_, call), at in zip(clock, boundaries, strict=True):
        assert call.payload["meterValue"][0]["timestamp"] == iso(at)
        if version == "1.6":
            assert call.action == "MeterValues" and call.payload["transactionId"] > 0
        else:
            assert call.payload["triggerReason"] == "MeterValueClock"
        assert [v.get("measurand", "Energy.Active.Import.Register") for v in _values(call)] == [
            "Energy.Active.Import.Register"
        ]
    assert all(c in tx_messages([c for _, c in b.csms.timed()]) for _, c in clock)  # queued
    if version != "1.6":  # seqNo runs on through the clock events
        seq = [c.payload["seqNo"] for c in b.csms.calls("TransactionEvent")]
        assert seq == list(range(len(seq)))


@pytest.mark.parametrize("version", VERSIONS)
def test_an_idle_station_sends_meter_values_per_connector(tmp_path: Path, version: str) -> None:
    variables = {**QUARTER, "AlignedDataCtrlr.Measurands": "Energy.Active.Import.Register,Voltage"}
    b = Bench(tmp_path, version, connectors=2, variables=variables).start()
    b.run(400)
    clock = _clock(b.csms.timed())
    assert [t for t, _ in clock] == pytest.approx([T0 + 100, T0 + 100], abs=1e-6)
    key = "connectorId" if version == "1.6" else "evseId"
    assert sorted(c.payload[key] for _, c in clock) == [1, 2]
    for _, call in clock:
        assert call.action == "MeterValues" and "transactionId" not in call.payload
        measurands = {v.get("measurand", "Energy.Active.Import.Register") for v in _values(call)}
        assert measurands == {"Energy.Active.Import.Register", "Voltage"}


def test_the_boundaries_are_on_the_back_ends_clock(tmp_path: Path) -> None:
    """The back end is 300 s ahead: its 14:30:00 is the station's T0 + 700."""
    b = Bench(tmp_path, "2.0.1", csms=Csms("2.0.1", clock_offset=300.0), variables=QUARTER)
    b.start()
    b.run(1700)
    clock = _clock(b.csms.timed())
    assert [t for t, _ in clock] == pytest.approx([T0 + 700, T0 + 1600], abs=1e-6)
    assert clock[0][1].payload["meterValue"][0]["timestamp"] == iso(T0 + 1000)


def test_periodic_samples_are_not_moved_by_aligned_ones(tmp_path: Path) -> None:
    evse = ScriptedEvse(1)
    variables = {**QUARTER, "SampledDataCtrlr.TxUpdatedInterval": "70"}
    b = Bench(tmp_path, "2.0.1", evse=evse, variables=variables).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(2000)
    periodic = [
        t for t, c in b.csms.timed("TransactionEvent")
        if c.payload["triggerReason"] == "MeterValuePeriodic"
    ]  # fmt: skip
    assert len(periodic) >= 25
    assert {round(b - a, 6) for a, b in zip(periodic, periodic[1:], strict=False)} == {70.0}
    assert len(_clock(b.csms.timed())) == 3  # T0 + 100, 1000, 1900


def test_setting_the_interval_starts_at_the_next_boundary_and_zero_stops(tmp_path: Path) -> None:
    b = Bench(tmp_path, "2.0.1", variables={"SampledDataCtrlr.TxUpdatedInterval": "0"}).start()
    b.run(100)
    answer = b.call("SetVariables", {"setVariableData": [{
        "component": {"name": "AlignedDataCtrlr"}, "variable": {"name": "Interval"},
        "attributeValue": "600"}]})  # fmt: skip
    assert answer.payload["setVariableResult"][0]["attributeStatus"] == "Accepted"
    b.run(1000)  # set at T0 + 100; 600 s boundaries: 14:20 (T0 + 400), 14:30 (T0 + 1000)
    assert [t for t, _ in _clock(b.csms.timed())] == pytest.approx([T0 + 400, T0 + 1000], abs=1e-6)
    b.call("SetVariables", {"setVariableData": [{
        "component": {"name": "AlignedDataCtrlr"}, "variable": {"name": "Interval"},
        "attributeValue": "0"}]})  # fmt: skip
    b.run(1800)
    assert len(_clock(b.csms.timed())) == 2


def test_the_schedule_takes_a_boundary_once_and_ends_the_day_at_midnight() -> None:
    s = AlignedSchedule()
    day = 86400 * 20000
    assert not s.due(day + 100, 0.0, 7000)  # first sight: waits for the next boundary
    assert s.next_at(0.0, 7000) == day + 7000
    assert s.due(day + 7000, 0.0, 7000) and not s.due(day + 7001, 0.0, 7000)
    s.due(day + 86000, 0.0, 7000)  # several boundaries slept through: one sample, the latest
    assert s.next_at(0.0, 7000) == day + 86400  # 12 x 7000 = 84000; the 13th ends at midnight
    assert s.due(day + 86400, 0.0, 7000) and s.next_at(0.0, 7000) == day + 86400 + 7000
    assert not s.due(day + 99999, 0.0, 0) and s.next_at(0.0, 0) is None
    assert not s.due(day, 0.0, 900) and not s.due(day + 10, 600.0, 900)  # the clock set: re-arm
    assert s.next_at(600.0, 900) == day + 900 - 600 and s.due(day + 300, 600.0, 900)
