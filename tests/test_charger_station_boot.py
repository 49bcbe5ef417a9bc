"""Registration (OCPP 2.0.1 B01-B03, 1.6 4.2): Pending and Rejected retried at the back end's
interval with nothing else sent meanwhile (but answers, and what TriggerMessage asks for),
no answer retried with a growing back-off, and the clock offset learnt from currentTime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from station_harness import T0, V2, VERSIONS, Bench, Csms, ScriptedEvse, tx_messages

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
    trigger: dict[str, Any] = {"requestedMessage": "StatusNotification"}
    if version == "1.6":
        trigger["connectorId"] = 1
    else:
        trigger["evse"] = {"id": 1, "connectorId": 1}  # F06.FR.12
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


def _started_token(b: Bench, version: str) -> str | None:
    """The id token of the station's first transaction message that carries one."""
    for call in tx_messages(b.calls()):
        if version == "1.6":
            return str(call.payload["idTag"])  # StartTransaction
        token = call.payload.get("idToken")
        if token is not None:
            return str(token["idToken"])
    return None


@pytest.mark.parametrize("version", VERSIONS)
def test_a_token_shown_while_pending_is_asked_once_accepted(tmp_path: Path, version: str) -> None:
    """B02 keeps the Authorize back while Pending; the card is held, not refused: once the
    boot is accepted it is asked, and its transaction starts (it used to be dropped, and the
    driver stood at a plugged charger that did nothing)."""
    evse = ScriptedEvse(1)
    csms = Csms(version, boot_statuses=["Pending"], boot_interval=30)
    b = Bench(tmp_path, version, evse=evse, csms=csms).start()
    evse.at(T0 + 5, "plug")
    evse.at(T0 + 6, "token", token="EARLY")
    b.run(25)
    assert b.calls("Authorize") == [] and tx_messages(b.calls()) == []
    b.run(40)
    assert b.machine.registration == "accepted"
    (boot_at, _), *_ = b.timed_calls("BootNotification")[1:]
    (asked_at, asked), *_ = b.timed_calls("Authorize")
    token = asked.payload["idTag"] if version == "1.6" else asked.payload["idToken"]["idToken"]
    assert asked_at >= boot_at and token == "EARLY"
    assert _started_token(b, version) == "EARLY"
    assert [t.view.id_token for t in b.machine.tx.active()] == ["EARLY"]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_held_token_goes_with_its_cable_or_its_time(tmp_path: Path, version: str) -> None:
    """A held token waits while its cable is in; without a cable it waits
    ``EVConnectionTimeOut`` (60 s); the cable going drops it. Either way, nothing is asked once
    the boot is accepted."""
    for case in ("no cable", "unplugged"):
        evse = ScriptedEvse(1)
        csms = Csms(version, boot_statuses=["Pending"], boot_interval=100)
        where = tmp_path / case.replace(" ", "_")
        where.mkdir()
        b = Bench(where, version, evse=evse, csms=csms).start()
        if case == "no cable":
            evse.at(T0 + 5, "token", token="EARLY")
            evse.at(T0 + 70, "plug")  # past the 60 s
        else:
            evse.at(T0 + 5, "plug")
            evse.at(T0 + 6, "token", token="EARLY")
            evse.at(T0 + 50, "unplug")
            evse.at(T0 + 60, "plug")
        b.run(130)
        assert b.machine.registration == "accepted", case
        assert b.calls("Authorize") == [], case
        assert b.machine.tx.active() == [] and _started_token(b, version) is None, case
        assert b.machine.tx.connectors[1].held is None, case


@pytest.mark.parametrize("version", VERSIONS)
def test_a_token_shown_offline_is_asked_when_the_link_is_back(tmp_path: Path, version: str) -> None:
    """With the link down the offline rules decide at once: an unknown token starts nothing
    (C15, OfflineTxForUnknownIdEnabled false). It is held, not forgotten: once the link is
    back and the boot accepted, it is asked, and charging starts."""
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start(link=False)
    evse.at(T0 + 5, "plug")
    evse.at(T0 + 6, "token", token="EARLY")
    b.run(300)
    assert b.machine.tx.active() == [] and b.machine.tx.connectors[1].held is not None
    b.link_up()
    b.run(30)
    assert b.machine.registration == "accepted"
    assert len(b.calls("Authorize")) == 1 and _started_token(b, version) == "EARLY"


@pytest.mark.parametrize("version", VERSIONS)
def test_an_authorize_lost_with_the_link_is_asked_again(tmp_path: Path, version: str) -> None:
    """The link goes while the Authorize waits for its answer: the token is held (the cable
    is in) and asked again once the link is back; one transaction, with that token."""
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, latency=2.0).start()
    b.run(20)
    evse.at(b.now + 5, "plug")
    evse.at(b.now + 6, "token", token="LATE")
    b.run_until_sent(lambda c: c.action == "Authorize")
    b.link_down()
    b.run(120)
    assert b.machine.tx.active() == [] and b.machine.tx.connectors[1].held is not None
    b.link_up()
    b.run(30)
    assert len(b.calls("Authorize")) == 2
    assert [t.view.id_token for t in b.machine.tx.active()] == ["LATE"]
    assert _started_token(b, version) == "LATE"
