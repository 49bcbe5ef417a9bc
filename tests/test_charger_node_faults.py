"""Faults around real ``charger-node`` processes, a real mosquitto and a real ``bridge serve``
(issue 16, "How it is checked"): the broker stops for 30 s while charging; a node is SIGKILLed
while offline with events queued and restarted; the bridge is SIGKILLed while stations charge;
a node is SIGKILLed at random moments fifty times.

After each, from the bridge's records (``ref_events``: one row per run of the reference charge
system's handler): every transaction's events arrived exactly once (per message id and per
(transaction, seqNo)), in seqNo order from 0 without gaps, one Started and one Ended each, and
in 2.x ``offline: true`` on the events that happened while the link was down, on no others.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import USERS
from node_processes import (
    Event,
    check_exactly_once,
    check_offline_flags,
    check_registers,
    check_transactions,
    ended,
    outbox_depth,
    ref_events,
    run_node,
    simulate,
    started,
    station_users,
    summary,
    transactions,
    tx_energy,
    wait_until,
    write_password_file,
    write_scenario,
)

from ocpp_iot.charger_node.node import read_status
from ocpp_iot.testing import Mosquitto

NODES = {"1.6": "CP1", "2.0.1": "CP2", "2.1": "CP3"}
#: A station that does nothing (started again after a kill, only to deliver what it kept).
IDLE = [{"at": 3600.0, "plug": 1}]


def invariants(events: list[Event], *, complete: bool = True) -> list[str]:
    return check_exactly_once(events) + check_transactions(events, complete=complete)


def station_txs(events: list[Event], sid: str) -> list[list[Event]]:
    """The station's transactions, in the order they started."""
    txs = [tx for (s, _), tx in transactions(events).items() if s == sid]
    return sorted(txs, key=lambda tx: started(tx).row)


def reason(e: Event) -> str:
    return str(e.payload.get("reason") or e.payload["transactionInfo"]["stoppedReason"])


def all_ended(db: Path, sid: str, at_least: int) -> bool:
    txs = station_txs(ref_events(db, sid), sid)
    return len(txs) >= at_least and all(any(e.event_type == "Ended" for e in t) for t in txs)


def updates(db: Path, sid: str) -> int:
    """Periodic meter values of ``sid`` the back end has (2.x Updated, 1.6 MeterValues)."""
    return sum(
        e.event_type == "Updated" or (e.action == "MeterValues" and e.transaction_id is not None)
        for e in ref_events(db, sid)
    )


def wait_charging(db: Path, sid: str, updated: int) -> None:
    wait_until(lambda: updates(db, sid) >= updated, 30, f"{sid} charging")


def wait_delivered(db: Path, data: Path, sid: str, sessions: int, timeout: float) -> None:
    """``sessions`` transactions (at least) ended at the back end, nothing left to send."""
    wait_until(
        lambda: all_ended(db, sid, sessions) and outbox_depth(data) == 0,
        timeout,
        f"{sid}: {sessions} session(s) delivered",
        details=lambda: summary(ref_events(db, sid)),
    )


# -- a: the broker stops for 30 s while charging ----------------------------------------------


def test_broker_down_30s_while_charging(
    broker: Mosquitto, bridge_process: Any, tmp_path: Path
) -> None:
    """One station per version. The first session runs into the outage and ends in it (the EV
    is full and leaves), a second one happens entirely in it (the token authorized from the
    cache), a third after it."""
    bp = bridge_process()
    scenario = write_scenario(
        tmp_path / "three.json",
        [
            {"at": 0.0, "plug": 1, "charge_kwh": 0.06, "power_kw": 11},
            {"after": 2.5, "token": "T1"},
            {"unplug": 1, "after_full": 1.0},
            {"after": 2.0, "plug": 1, "charge_kwh": 0.02, "power_kw": 11},
            {"after": 0.5, "token": "T1"},
            {"unplug": 1, "after_full": 1.0},
            {"after": 2.0, "plug": 1, "charge_kwh": 0.02, "power_kw": 11},
            {"after": 0.5, "token": "T1"},
            {"unplug": 1, "after_full": 1.0},
        ],
    )
    nodes = {
        v: run_node(
            broker.url,
            sid,
            USERS[sid],
            tmp_path / "nodes" / sid,
            v,
            scenario=scenario,
            variables={"SampledDataCtrlr.TxUpdatedInterval": 3},
        )
        for v, sid in NODES.items()
    }
    try:
        for n in nodes.values():
            n.start()
        for sid in NODES.values():  # charging, and said so once at least
            wait_charging(bp.db, sid, 1)
        down_at = time.time()
        broker.stop()  # SIGTERM: it saves the sessions (persistence on)
        time.sleep(30.0)  # the outage itself (what the issue asks for), not a wait for an event
        up_at = time.time()
        broker.start()
        for sid in NODES.values():  # three sessions, all ended and delivered
            wait_delivered(bp.db, nodes_dir(tmp_path, sid), sid, 3, 90)
        for n in nodes.values():
            assert n.terminate() == 0, n.log()[-2000:]
    finally:
        for n in nodes.values():
            n.close()
    events = ref_events(bp.db)
    problems = invariants(events)
    problems += check_offline_flags([e for e in events if e.version != "1.6"], down_at, up_at)
    for v, sid in NODES.items():
        txs = station_txs(events, sid)
        assert len(txs) == 3, summary(events, sid)
        for tx, wh in zip(txs, (60, 20, 20), strict=True):
            slack = 1.0 if v == "1.6" else 0.11
            if abs(tx_energy(tx) - wh) > slack:
                problems.append(f"{sid}: {tx_energy(tx)} Wh, the EV took {wh}")
            if reason(ended(tx)) != "EVDisconnected":
                problems.append(f"{sid}: ended {reason(ended(tx))}")
        if v != "1.6":
            # the outage is in there: the first session's end and all of the second offline
            first, second, _ = txs
            if not (ended(first).offline and all(e.offline for e in second)):
                problems.append(f"{sid}: not offline as expected\n{summary(events, sid)}")
    assert not problems, "\n".join(problems)


def nodes_dir(tmp_path: Path, sid: str) -> Path:
    return tmp_path / "nodes" / sid


# -- b: the node is SIGKILLed while offline with events queued, then restarted ---------------


CHARGING = [{"at": 0.0, "plug": 1, "power_kw": 11}, {"after": 3.0, "token": "T1"}]


@pytest.mark.parametrize(
    ("down", "version"),
    [("broker", "2.0.1"), ("bridge", "1.6"), ("bridge-before-start", "1.6")],
)
def test_node_killed_with_events_queued(
    broker: Mosquitto, bridge_process: Any, tmp_path: Path, down: str, version: str
) -> None:
    """The station charges; the broker (its link is down: 2.x offline events) or the bridge
    (the link is up, nothing answers) goes away; the station queues meter values; it is
    SIGKILLed; everything comes back. The queued events arrive once each, in order, and the
    interrupted transaction ends with reason PowerLoss at the register last reported.
    ``bridge-before-start``: the bridge goes before the transaction starts, so in 1.6 the
    station is killed before it learnt the transaction's id: the StartTransaction answered
    after the restart gives it to the queued MeterValues and the StopTransaction."""
    bp = bridge_process()
    sid = NODES[version]
    data = nodes_dir(tmp_path, sid)
    charging = write_scenario(tmp_path / "charging.json", CHARGING)
    idle = write_scenario(tmp_path / "idle.json", IDLE)
    tx_vars: dict[str, object] = {"SampledDataCtrlr.TxUpdatedInterval": 1}
    if down == "bridge-before-start":  # nobody to ask: the card starts the charge at once
        tx_vars["AuthCtrlr.Enabled"] = "false"
    node = run_node(
        broker.url, sid, USERS[sid], data, version, scenario=charging, variables=tx_vars
    )
    again = run_node(broker.url, sid, USERS[sid], data, version, scenario=idle, variables=tx_vars)
    try:
        node.start()
        if down == "bridge-before-start":  # registered, the card not shown yet
            wait_until(lambda: ref_events(bp.db, sid), 30, f"{sid} registered")
        else:
            wait_until(lambda: updates(bp.db, sid) >= 2, 30, f"{sid} charging")
        down_at = time.time()
        if down == "broker":
            broker.stop()
        else:
            bp.kill()
        wait_until(lambda: outbox_depth(data) >= 4, 20, "meter values queued in the outbox")
        node.kill()
        queued = outbox_depth(data)
        up_at = time.time()
        if down == "broker":
            broker.start()
        else:
            bp.start()
        again.start()
        wait_until(
            lambda: all_ended(bp.db, sid, 1) and outbox_depth(data) == 0,
            60,
            "the queued events and the PowerLoss end delivered",
            details=lambda: summary(ref_events(bp.db, sid)) + "\n" + again.log()[-3000:],
        )
        assert again.terminate() == 0, again.log()[-2000:]
    finally:
        node.close()
        again.close()
    events = ref_events(bp.db, sid)
    problems = invariants(events)
    (tx,) = station_txs(events, sid)
    end = ended(tx)
    assert reason(end) == "PowerLoss", end.payload
    # the end is at the last register the station reported, or later (never below it)
    before = [e.energy_wh() for e in tx if e is not end]
    last = max(wh for wh in before if wh is not None)
    end_wh = end.energy_wh()
    assert end_wh is not None and end_wh >= last - (1.0 if version == "1.6" else 0.0), (end, last)
    periodic = [e for e in tx if e.event_type not in ("Started", "Ended")]
    late = [e for e in periodic if (e.timestamp or 0) > down_at + 0.5]
    assert len(late) >= queued - 1, f"{queued} queued at the kill, {len(late)} arrived"
    if version != "1.6":
        if down == "broker":
            problems += check_offline_flags(events, down_at, up_at)
            assert late and all(e.offline for e in late), summary(events)
        else:  # the link stayed up: nothing happened offline, but the end after the restart
            assert not any(e.offline for e in tx if e is not end), summary(events)
    assert not problems, "\n".join(problems)


# -- c: the bridge is SIGKILLed while stations are charging, then restarted ------------------


def test_bridge_killed_while_charging(
    broker: Mosquitto, bridge_process: Any, tmp_path: Path
) -> None:
    """Three stations per version in three ``simulate`` processes, short sessions over and
    over; the bridge is SIGKILLed in the middle of it and started again a few seconds later.
    ``simulate --duration`` ends and exits 0 once everything is answered."""
    prefix = {"1.6": "K", "2.0.1": "L", "2.1": "M"}
    ids = [f"{p}{n}" for p in prefix.values() for n in (1, 2, 3)]
    users = station_users(ids)
    broker.users.update(users)
    broker.add_user(ids[0], users[ids[0]])  # the broker reloads its password file
    passwords = write_password_file(tmp_path / "passwords", users)
    session = write_scenario(
        tmp_path / "sessions.json",
        [
            {"at": 2.0, "plug": 1, "charge_kwh": 0.02, "power_kw": 22},
            {"after": 0.3, "token": "T1"},
            {"unplug": 1, "after_full": 0.5},
            {"after": 0.5, "plug": 1},  # every round ends with the cable out
            {"after": 0.2, "unplug": 1},
        ],
        repeat=True,
    )
    bp = bridge_process()
    runs = {
        v: simulate(
            broker.url,
            3,
            passwords,
            tmp_path / v,
            v,
            id_prefix=p,
            duration=22.0,
            scenario=session,
            variables={"SampledDataCtrlr.TxUpdatedInterval": 1},
        )
        for v, p in prefix.items()
    }
    try:
        for r in runs.values():
            r.start()
        wait_until(
            lambda: sum(e.event_type == "Started" for e in ref_events(bp.db)) >= 9,
            30,
            "every station charging",
        )
        killed_at = time.time()
        bp.kill()
        time.sleep(3.0)  # the bridge is away a while (the stations keep going), by design
        bp.start()
        codes = {v: r.wait(90) for v, r in runs.items()}
        assert set(codes.values()) == {0}, {v: runs[v].log()[-2000:] for v in codes}
    finally:
        for r in runs.values():
            r.close()
    events = ref_events(bp.db)
    problems = invariants(events)
    for v, p in prefix.items():
        for n in (1, 2, 3):
            sid = f"{p}{n}"
            txs = station_txs(events, sid)
            spanning = [
                tx
                for tx in txs
                if (started(tx).timestamp or 0) < killed_at < (ended(tx).timestamp or 0)
            ]
            assert len(txs) >= 3 and spanning or len(txs) >= 4, summary(events, sid)
            for tx in txs:
                v16 = v == "1.6"
                found = check_registers(tx, lower_bound=not v16, tolerance_wh=1.0 if v16 else 0.15)
                problems += [f"{sid}: {p}" for p in found]
                if reason(ended(tx)) == "EVDisconnected" and abs(tx_energy(tx) - 20) > 1.0:
                    problems.append(f"{sid}: {tx_energy(tx)} Wh, the EV took 20")
            if any(e.offline for e in events if e.station == sid):  # the link never went down
                problems.append(f"{sid}: offline events\n{summary(events, sid)}")
            status = read_status(tmp_path / v / sid)
            assert status is not None and status["queue_depth"] == 0, status
    assert not problems, "\n".join(problems[:40])


# -- d: the node is SIGKILLed at random moments, fifty times ----------------------------------


def test_node_killed_at_random_moments(
    broker: Mosquitto, bridge_process: Any, tmp_path: Path
) -> None:
    """A station that charges from the moment it starts (authorization off: no round trip
    before the transaction), SIGKILLed at a random moment of each run (seeded), fifty times,
    restarted right away; then once more to deliver what it kept. Every transaction arrives
    whole: once each, seqNo in order, Started to Ended (PowerLoss, the kill ended each)."""
    bp = bridge_process()
    sid = NODES["2.0.1"]
    data = nodes_dir(tmp_path, sid)
    variables = {"SampledDataCtrlr.TxUpdatedInterval": 1, "AuthCtrlr.Enabled": "false"}
    # something happens every few tenths of a second: Started, then the EV pausing and going
    # on (Updated, ChargingStateChanged), then meter values every second
    charging = write_scenario(
        tmp_path / "charging.json",
        [
            {"at": 0.0, "plug": 1, "power_kw": 22},
            {"after": 0.05, "token": "T1"},
            {"after": 0.25, "suspend": 1},
            {"after": 0.2, "resume": 1},
            {"after": 0.2, "suspend": 1},
            {"after": 0.2, "resume": 1},
        ],
    )
    idle = write_scenario(tmp_path / "idle.json", IDLE)
    rng = random.Random(16)
    node = run_node(
        broker.url, sid, USERS[sid], data, "2.0.1", scenario=charging, variables=variables
    )
    last = run_node(broker.url, sid, USERS[sid], data, "2.0.1", scenario=idle, variables=variables)
    delays = []
    try:
        for _ in range(50):
            node.start()
            # the kill falls anywhere from the runtime's start (status.json names the new pid:
            # the imports, a second or so, are not worth killing) to 1.2 s in
            wait_until(
                lambda: (read_status(data) or {}).get("pid") == node.pid,
                20,
                "the node running",
                every=0.01,
                details=lambda: node.log()[-2000:],
            )
            delays.append(rng.uniform(0.0, 1.2))
            time.sleep(delays[-1])
            node.kill()
        last.start()
        wait_until(
            lambda: outbox_depth(data) == 0 and all_ended(bp.db, sid, 1),
            90,
            "everything kept delivered",
            details=lambda: summary(ref_events(bp.db, sid)) + last.log()[-2000:],
        )
        assert last.terminate() == 0, last.log()[-2000:]
    finally:
        node.close()
        last.close()
    events = ref_events(bp.db, sid)
    problems = invariants(events)
    txs = station_txs(events, sid)
    assert len(txs) >= 25, f"only {len(txs)} transactions in 50 runs\n{summary(events)}"
    for tx in txs:
        if reason(ended(tx)) != "PowerLoss":
            problems.append(f"tx {tx[0].transaction_id} ended {reason(ended(tx))}")
        before = [e.energy_wh() for e in tx[:-1]]
        top = max((wh for wh in before if wh is not None), default=None)
        end_wh = ended(tx).energy_wh()
        if top is not None and end_wh is not None and end_wh < top:
            problems.append(f"tx {tx[0].transaction_id} ended at {end_wh} below {top}")
    assert not problems, "\n".join(problems[:40]) + "\n" + summary(events)
    # (the meter running backwards from one transaction to the next after a kill: see
    # test_meter_register_survives_a_kill)


def test_meter_register_survives_a_kill(
    broker: Mosquitto, bridge_process: Any, tmp_path: Path
) -> None:
    """After a power cut the simulated meter goes on from where it was: the next transaction
    starts at the register the interrupted one ended at (PowerLoss), or above. Found: it
    starts from the register status.json had, written every 10 s, so the back end sees the
    meter run backwards by what was charged since."""
    bp = bridge_process()
    sid = NODES["2.0.1"]
    data = nodes_dir(tmp_path, sid)
    charging = write_scenario(tmp_path / "charging.json", CHARGING)
    tx_vars = {"SampledDataCtrlr.TxUpdatedInterval": 1}
    node = run_node(
        broker.url, sid, USERS[sid], data, "2.0.1", scenario=charging, variables=tx_vars
    )
    try:
        node.start()
        wait_until(lambda: updates(bp.db, sid) >= 2, 30, f"{sid} charging")
        node.kill()
        node.start()  # the same scenario: plugged in again, the same card
        wait_until(
            lambda: len(station_txs(ref_events(bp.db, sid), sid)) == 2,
            30,
            "the next transaction",
            details=lambda: summary(ref_events(bp.db, sid)),
        )
    finally:
        node.close()
    events = ref_events(bp.db, sid)
    assert not invariants(events, complete=False)
    first, second = station_txs(events, sid)
    assert reason(ended(first)) == "PowerLoss"
    end_wh, start_wh = ended(first).energy_wh(), started(second).energy_wh()
    assert end_wh is not None and start_wh is not None
    assert start_wh >= end_wh, (
        f"the meter ran backwards: transaction {first[0].transaction_id} ended at {end_wh} Wh, "
        f"{second[0].transaction_id} started at {start_wh} Wh"
    )
