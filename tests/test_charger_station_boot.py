"""Registration (OCPP 2.0.1 B01-B03, 1.6 4.2): Pending and Rejected retried at the back end's
interval with nothing else sent meanwhile (but answers, and what TriggerMessage asks for),
no answer retried with a growing back-off, and the clock offset learnt from currentTime."""

from __future__ import annotations

from pathlib import Path

import pytest
from station_harness import T0, V2, VERSIONS, Bench, Csms, ScriptedEvse

from ocpp_iot.charger_node.messages import iso
from ocpp_iot.rpc import CallError, CallResult


def _rel(times: list[float]) -> list[float]:
    return [round(t - T0, 3) for t in times]


@pytest.mark.parametrize("version", VERSIONS)
def test_pending_is_retried_at_the_interval_and_nothing_else_is_sent(
    tmp_path: Path, version: str
) -> None:
    evse = ScriptedEvse(1)
    csms = Csms(version, boot_statuses=["Pending", "Pending"], boot_interval=20)
    b = Bench(tmp_path, version, evse=evse, csms=csms).start()
    evse.at(T0 + 5, "plug")
    evse.at(T0 + 6, "token")
    b.run(15)
    assert b.machine.registration == "pending"
    # the back end may ask things while Pending: they are answered
    answer = b.call("GetConfiguration" if version == "1.6" else "GetBaseReport", (
        {"key": ["HeartbeatInterval"]} if version == "1.6"
        else {"requestId": 1, "reportBase": "SummaryInventory"}
    ))  # fmt: skip
    assert isinstance(answer, CallResult)
    trigger = {"requestedMessage": "StatusNotification"}
    if version == "1.6":
        trigger["connectorId"] = 1  # type: ignore[assignment]
    answer = b.call("TriggerMessage", trigger)
    assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
    b.run(100)
    assert b.machine.registration == "accepted"
    sent = b.timed_calls()
    boots = [t for t, c in sent if c.action == "BootNotification"]
    assert _rel(boots) == [0, 20, 40]
    before = [c.action for t, c in sent if t < boots[-1]]
    extra = ["NotifyReport"] if version in V2 else []  # asked for by GetBaseReport
    assert sorted(before) == sorted(["BootNotification"] * 2 + extra + ["StatusNotification"])
    assert "Heartbeat" not in before and "Authorize" not in before
    # once accepted: every connector's status (it is occupied now)
    after = [c for t, c in sent if t >= boots[-1]]
    assert after[1].action == "StatusNotification"
    status = after[1].payload.get("status") or after[1].payload["connectorStatus"]
    assert status in ("Preparing", "Occupied")


@pytest.mark.parametrize("version", VERSIONS)
def test_rejected_is_retried_at_the_interval_and_silent_meanwhile(
    tmp_path: Path, version: str
) -> None:
    evse = ScriptedEvse(1)
    csms = Csms(version, boot_statuses=["Rejected"], boot_interval=50)
    b = Bench(tmp_path, version, evse=evse, csms=csms).start()
    evse.at(T0 + 10, "plug")
    b.run(49)
    assert b.machine.registration == "rejected"
    assert [c.action for c in b.calls()] == ["BootNotification"]
    b.run(10)
    assert b.machine.registration == "accepted"
    assert _rel([t for t, _ in b.timed_calls("BootNotification")]) == [0, 50]


@pytest.mark.parametrize("version", VERSIONS)
def test_boot_without_answer_backs_off(tmp_path: Path, version: str) -> None:
    csms = Csms(version)
    lost = [7]  # the first seven BootNotifications never arrive

    def lose(frame: object) -> bool:
        if getattr(frame, "action", None) == "BootNotification" and lost[0] > 0:
            lost[0] -= 1
            return True
        return False

    csms.lose_up = lose
    b = Bench(tmp_path, version, csms=csms).start()
    b.run(2000)
    boots = _rel([t for t, _ in b.timed_calls("BootNotification")])
    # 30 s without an answer (MessageTimeout), then 10, 20, 40 ... at most 300 s
    assert boots == [0, 40, 90, 160, 270, 460, 790, 1120]
    assert b.machine.registration == "accepted"
    assert [c.action for c in b.calls()][:8] == ["BootNotification"] * 8


@pytest.mark.parametrize("version", VERSIONS)
def test_boot_callerror_backs_off(tmp_path: Path, version: str) -> None:
    csms = Csms(version)
    errors = [2]

    def boot(call: object, now: float) -> object:
        if errors[0] > 0:
            errors[0] -= 1
            return CallError(call.message_id, "InternalError", "busy")  # type: ignore[attr-defined]
        return None

    csms.script["BootNotification"] = boot
    b = Bench(tmp_path, version, csms=csms).start()
    b.run(100)
    assert _rel([t for t, _ in b.timed_calls("BootNotification")]) == [0, 10, 30]
    assert b.machine.registration == "accepted"


@pytest.mark.parametrize("version", VERSIONS)
def test_clock_offset_from_current_time_is_used_in_timestamps(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    csms = Csms(version, clock_offset=3600.25, boot_interval=100)
    no_samples = {"SampledDataCtrlr.TxUpdatedInterval": "0"}
    b = Bench(tmp_path, version, evse=evse, csms=csms, variables=no_samples).start()
    status = b.calls("StatusNotification")[0]
    assert status.payload["timestamp"] == iso(T0 + 3600.25)
    evse.at(T0 + 50, "plug")
    evse.at(T0 + 51, "token")
    b.run(60)
    started = b.calls("TransactionEvent", "StartTransaction")[0]
    assert started.payload["timestamp"] == iso(T0 + 51 + 3600.25)
    # a Heartbeat's currentTime sets it again
    csms.clock_offset = -7.5
    b.run(200)
    assert b.calls("Heartbeat")
    evse.at(b.now + 1, "unplug")
    b.run(5)
    ended = b.calls("TransactionEvent", "StopTransaction")[-1]
    assert ended.payload["timestamp"] == iso(b.now - 4 - 7.5)
