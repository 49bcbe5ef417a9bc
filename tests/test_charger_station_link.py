"""Link losses (OCPP 2.0.1 B04, E04; 1.6 4.x offline behaviour): the transaction message in
flight is sent again after the link is back with its message id and no attempt counted (the back
end's handler runs once); events while offline carry ``offline``; after an offline period longer
than OfflineThreshold every connector's status is sent again, after a shorter one only those
that changed; a status lost with the link is sent again."""

from __future__ import annotations

from pathlib import Path

import pytest
from station_harness import T0, V2, VERSIONS, Bench, ScriptedEvse, event_type, tx_messages

from ocpp_iot.rpc import Call, CallResult


def _charging(tmp_path: Path, version: str, **kw: object) -> tuple[Bench, ScriptedEvse]:
    evse = ScriptedEvse(kw.pop("connectors", 1))  # type: ignore[arg-type]
    b = Bench(tmp_path, version, evse=evse, **kw).start()  # type: ignore[arg-type]
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(20)
    assert b.machine.tx.active()
    return b, evse


@pytest.mark.parametrize("version", VERSIONS)
def test_message_in_flight_is_resent_with_its_id_after_link_up(
    tmp_path: Path, version: str
) -> None:
    b, evse = _charging(tmp_path, version, latency=2.0)
    # the next periodic sample goes out; its answer takes 2 s
    in_flight = b.run_until_sent(lambda c: event_type(c) == "Updated")
    assert b.machine.tx.active()
    assert b.csms.calls(repeats=True)[-1].message_id == in_flight.message_id
    b.link_down()  # the answer is lost with the link
    b.run(30)
    head = b.outbox.head()
    assert head is not None and head.message_id == in_flight.message_id
    assert head.attempts == 0  # a link loss is not an attempt
    b.link_up()
    resent = [c for c in b.calls() if c.message_id == in_flight.message_id]
    assert len(resent) == 2 and resent[0] == resent[1]
    b.run(5)
    handled = [c for c in b.csms.calls() if c.message_id == in_flight.message_id]
    assert len(handled) == 1  # the repeat was answered from the back end's cache
    assert b.outbox.head() is None or b.outbox.head().message_id != in_flight.message_id


@pytest.mark.parametrize("version", V2)
def test_events_while_offline_carry_offline_true(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    # the token is known (cached Accepted): LocalAuthorizeOffline lets it start offline
    evse.at(T0 + 10, "token", token="T1")
    b.run(20)
    assert b.calls("Authorize")
    b.run(100)  # EVConnectionTimeOut: the authorization expires without a cable
    b.link_down()
    evse.at(b.now + 10, "plug")
    evse.at(b.now + 11, "token", token="T1")
    evse.at(b.now + 200, "unplug")
    b.run(100)
    b.link_up()  # mid-transaction
    b.run(200)
    txm = tx_messages(b.csms.calls())
    assert [event_type(c) for c in txm][0] == "Started"
    offline = [c.payload.get("offline", False) for c in txm]
    # Started and the samples while offline: true; the samples and Ended after: not
    sent_at = {id(c): t for t, c in b.csms.timed()}
    link_up_at = T0 + 120 + 100
    made_offline = [c for c in txm if _event_time(c) < link_up_at]
    made_online = [c for c in txm if _event_time(c) >= link_up_at]
    assert made_offline and made_online
    assert all(c.payload.get("offline") is True for c in made_offline)
    assert not any(c.payload.get("offline") for c in made_online)
    assert offline.count(True) == len(made_offline)
    assert min(sent_at[id(c)] for c in txm) >= link_up_at
    assert [c.payload["seqNo"] for c in txm] == list(range(len(txm)))


def _event_time(call: Call) -> float:
    from datetime import datetime

    return datetime.fromisoformat(call.payload["timestamp"].replace("Z", "+00:00")).timestamp()


def _statuses(calls: list[Call]) -> list[tuple[int, str]]:
    out = []
    for c in calls:
        if c.action != "StatusNotification":
            continue
        p = c.payload
        out.append(
            (
                p["connectorId"] if "status" in p else p["evseId"],
                p.get("status") or p["connectorStatus"],
            )
        )
    return out


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("offline_s", [100, 400])
def test_statuses_after_reconnect_follow_offline_threshold(
    tmp_path: Path, version: str, offline_s: int
) -> None:
    evse = ScriptedEvse(2)
    b = Bench(tmp_path, version, evse=evse).start()  # OfflineThreshold 300 s
    assert b.model.offline_threshold == 300
    assert len(_statuses(b.calls())) == 2
    b.link_down()
    evse.at(b.now + 10, "plug", connector=2)
    b.run(offline_s)
    n = len(b.calls())
    b.link_up()
    again = _statuses(b.calls()[n:])
    occupied = "Preparing" if version == "1.6" else "Occupied"
    if offline_s > 300:
        assert sorted(again) == [(1, "Available"), (2, occupied)]
    else:
        assert again == [(2, occupied)]


@pytest.mark.parametrize("version", VERSIONS)
def test_status_lost_with_the_link_is_sent_again(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    b.csms.lose_up = lambda f: getattr(f, "action", None) == "StatusNotification"
    evse.at(b.now + 10, "plug")
    b.run(15)  # the status went out and was lost; the link drops before its timeout
    b.csms.lose_up = None
    b.link_down()
    b.run(5)
    b.link_up()
    assert _statuses(b.csms.calls()) == [
        (1, "Available"),
        (1, "Preparing" if version == "1.6" else "Occupied"),
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_status_not_answered_is_sent_again(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    lost = [1]

    def lose(f: object) -> bool:
        if getattr(f, "action", None) == "StatusNotification" and lost[0]:
            lost[0] -= 1
            return True
        return False

    b.csms.lose_up = lose
    evse.at(b.now + 10, "plug")
    b.run(100)
    statuses = _statuses(b.csms.calls())
    assert statuses == [(1, "Available"), (1, "Preparing" if version == "1.6" else "Occupied")]


@pytest.mark.parametrize("version", V2)
def test_a_message_timeout_set_by_the_back_end_applies_at_once(
    tmp_path: Path, version: str
) -> None:
    """SetVariables MessageTimeout Accepted times the next CALL without a reconnect (before,
    the session kept 30 s until the link came up again)."""
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    item = {
        "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": "MessageTimeout", "instance": "Default"},
        "attributeValue": "5",
    }
    answer = b.call("SetVariables", {"setVariableData": [item]})
    assert isinstance(answer, CallResult)
    assert answer.payload["setVariableResult"][0]["attributeStatus"] == "Accepted"
    sent: list[float] = []

    def lose(f: object) -> bool:
        if getattr(f, "action", None) == "StatusNotification":
            sent.append(b.now)
            return len(sent) == 1  # the first one is lost: it times out
        return False

    b.csms.lose_up = lose
    evse.at(b.now + 10, "plug")
    b.run(60)
    assert len(sent) == 2 and sent[1] - sent[0] <= 6.0


@pytest.mark.parametrize("version", VERSIONS)
def test_link_up_twice_does_not_wedge_the_outbox(tmp_path: Path, version: str) -> None:
    b, evse = _charging(tmp_path, version, latency=2.0)
    b.run_until_sent(lambda c: event_type(c) == "Updated")
    b.machine.link_up(b.now)  # a reconnect reported without the link-down before it
    b.settle()
    n = len(tx_messages(b.csms.calls()))
    b.run(300)
    assert b.outbox.depth() <= 1  # the last sample may be on its way
    assert len(tx_messages(b.csms.calls())) >= n + 4


@pytest.mark.parametrize("version", VERSIONS)
def test_replay_after_a_long_offline_period_is_paced(tmp_path: Path, version: str) -> None:
    from ocpp_iot.charger_node.outbox import ReplayPace

    evse = ScriptedEvse(1)
    pace = ReplayPace(per_minute=30.0, burst=5)
    variables = {"SampledDataCtrlr.TxUpdatedInterval": "30"}
    b = Bench(tmp_path, version, evse=evse, pace=pace, variables=variables).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(20)
    b.link_down()
    b.run(30 * 20)  # 20 samples queue up
    assert b.outbox.depth() >= 20
    b.run(120)  # the bucket fills again meanwhile (at most 5)
    up = b.now
    b.link_up()
    b.run(120)
    times = [t - up for t, c in b.csms.timed() if tx_messages([c]) and t >= up]
    assert [round(t) for t in times[:5]] == [0] * 5  # the burst
    gaps = [round(y - x, 3) for x, y in zip(times[5:15], times[6:15], strict=False)]
    assert gaps and all(g == 2.0 for g in gaps)  # then one every 2 s (30 a minute)
