"""``bridge demo``'s stations (bridge/demo_stations.py): the scenario waits for the boot, and
finished sessions are counted from the frames."""

from __future__ import annotations

import asyncio

from ocpp_iot.bridge.demo_stations import AfterBoot, Sessions, meter_interval, scenario
from ocpp_iot.charger_node.evse import Plugged, TokenPresented, Unplugged
from ocpp_iot.rpc import Call, CallResult


def test_the_scenario_starts_once_the_boot_is_accepted() -> None:
    accepted = [False]
    evse = AfterBoot("CP1", scenario("TOKEN-CP1", 1, 2, 0.5), lambda: accepted[0])
    assert [evse.events(t) for t in (0.0, 5.0, 50.0)] == [[], [], []]  # nothing happens before
    assert evse.next_event_at() != 0.0
    accepted[0] = True
    assert evse.next_event_at() == 0.0  # wake up now: the scenario starts at the next events()
    assert evse.events(100.0) == []  # it counts from here: the plug-in is at 100.5
    got = evse.events(101.0)
    assert [type(e) for e in got] == [Plugged, TokenPresented]
    assert isinstance(got[1], TokenPresented) and got[1].id_token == "TOKEN-CP1"
    # unplugged after the token, a pace and 2.5 meter intervals
    assert evse.events(101.0 + 0.5 + 2.4) == []
    assert [type(e) for e in evse.events(101.0 + 0.5 + 2.6)] == [Unplugged]


def test_meter_interval_is_whole_seconds() -> None:
    assert [meter_interval(p) for p in (0.01, 0.3, 1.0, 1.2)] == [1, 1, 1, 2]


def test_sessions_counts_answered_ends() -> None:
    async def scenario_() -> list[bool]:
        done = Sessions(["CP1", "CP2"], 1)
        ended = Call("9", "TransactionEvent", {"eventType": "Ended"})
        seen = []
        done("up", "CP1", ended)
        done("down", "CP2", CallResult("9", {}, "TransactionEvent"))  # another station's id
        seen.append(done.all_done.is_set())
        done("down", "CP1", CallResult("9", {}, "TransactionEvent"))
        done("up", "CP2", Call("3", "TransactionEvent", {"eventType": "Updated"}))
        done("down", "CP2", CallResult("3", {}, "TransactionEvent"))
        seen.append(done.all_done.is_set())
        done("up", "CP2", Call("4", "TransactionEvent", {"eventType": "Ended"}))
        done("down", "CP2", CallResult("4", {}, "TransactionEvent"))
        seen.append(done.all_done.is_set())
        return seen

    assert asyncio.run(scenario_()) == [False, False, True]
