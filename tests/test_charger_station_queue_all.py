"""QueueAllMessages (OCPP 2.0.1 OCPPCommCtrlr; 2.1 the same): with it on, the station's own
messages made while offline wait in the outbox instead of being dropped, and go after the link
is back in the order they were made, with the time they were made (a StatusNotification per
change, between the transaction messages); BootNotification, Heartbeat, Authorize and what the
back end asked for are not queued. Off (the default, and 1.6, which has no such key), a short
offline period reports only the statuses that differ from the last one reported (B04)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from station_harness import V2, Bench, ScriptedEvse, event_type

from ocpp_iot.rpc import Call


def _time(call: Call) -> float:
    return datetime.fromisoformat(call.payload["timestamp"].replace("Z", "+00:00")).timestamp()


def _offline_plug_and_unplug(tmp_path: Path, version: str, queue_all: bool) -> tuple[Bench, float]:
    evse = ScriptedEvse(1)
    variables = {"OCPPCommCtrlr.QueueAllMessages": "true"} if queue_all else None
    b = Bench(tmp_path, version, evse=evse, variables=variables).start()
    assert b.model.queue_all_messages is queue_all
    b.run(30)
    b.link_down()
    down_at = b.now
    evse.at(down_at + 10, "plug")  # no token: no transaction, only two status changes
    evse.at(down_at + 50, "unplug")
    b.run(100)  # shorter than OfflineThreshold (300 s)
    return b, down_at


@pytest.mark.parametrize("version", V2)
def test_status_changes_while_offline_are_delivered_in_order_with_their_times(
    tmp_path: Path, version: str
) -> None:
    b, down_at = _offline_plug_and_unplug(tmp_path, version, queue_all=True)
    assert [e.action for e in b.outbox.entries()] == ["StatusNotification"] * 2
    n = len(b.csms.calls())
    b.link_up()
    b.run(30)
    late = [c for c in b.csms.calls()[n:] if c.action == "StatusNotification"]
    assert [c.payload["connectorStatus"] for c in late] == ["Occupied", "Available"]
    assert [round(_time(c) - down_at) for c in late] == [10, 50]  # made then, sent now
    assert b.outbox.entries() == []  # answered, gone


@pytest.mark.parametrize("version", V2)
def test_without_queue_all_messages_the_changes_meanwhile_are_not_sent(
    tmp_path: Path, version: str
) -> None:
    b, _ = _offline_plug_and_unplug(tmp_path, version, queue_all=False)
    assert b.outbox.entries() == []
    n = len(b.csms.calls())
    b.link_up()
    b.run(30)
    # Available again, as last reported: B04 sends nothing for it
    assert [c for c in b.csms.calls()[n:] if c.action == "StatusNotification"] == []


@pytest.mark.parametrize("version", V2)
def test_queued_statuses_and_transaction_events_keep_the_order_they_were_made(
    tmp_path: Path, version: str
) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse,
              variables={"OCPPCommCtrlr.QueueAllMessages": "true"}).start()  # fmt: skip
    evse.at(b.now + 5, "token", token="T1")  # cached Accepted for the offline start below
    b.run(20)
    b.run(100)  # the authorization expires without a cable
    b.link_down()
    evse.at(b.now + 10, "plug")
    evse.at(b.now + 11, "token", token="T1")  # LocalAuthorizeOffline: starts offline
    evse.at(b.now + 60, "unplug")
    b.run(120)
    n = len(b.csms.calls())
    b.link_up()
    b.run(120)
    late = [c for c in b.csms.calls()[n:] if c.action in ("StatusNotification", "TransactionEvent")]
    made = sorted(late, key=_time)
    assert [c.message_id for c in late] == [c.message_id for c in made]  # sent as made
    statuses = [c.payload["connectorStatus"] for c in late if c.action == "StatusNotification"]
    assert statuses == ["Occupied", "Available"]
    events = [event_type(c) for c in late if c.action == "TransactionEvent"]
    assert events[0] == "Started" and events[-1] == "Ended"
    assert [c.payload["seqNo"] for c in late if c.action == "TransactionEvent"] == list(
        range(len(events))
    )
    # no Authorize was kept for later: the token was authorized from the cache offline
    assert [c for c in b.csms.calls()[n:] if c.action == "Authorize"] == []


def test_a_1_6_station_has_no_queue_all_messages(tmp_path: Path) -> None:
    b, _ = _offline_plug_and_unplug(tmp_path, "1.6", queue_all=False)
    assert b.outbox.entries() == []
