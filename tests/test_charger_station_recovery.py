"""Power loss and long offline periods: a machine re-created on the same files ends the
transaction it finds in progress (PowerLoss, the last register known) and replays the queue in
order with the original message ids, each handled once by the back end; 1.6 messages queued
before StartTransaction.conf get the back end's transactionId; a full outbox drops intermediate
samples only (2.0.1 E04); and the machine's wake-ups neither go back in time nor spin."""

from __future__ import annotations

from collections import Counter
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

from ocpp_iot.charger_node.outbox import Outbox
from ocpp_iot.charger_node.scenario import parse_scenario
from ocpp_iot.charger_node.simulated import SimulatedEvse
from ocpp_iot.rpc import Call

OFFLINE_OK = {"AuthCtrlr.OfflineTxForUnknownIdEnabled": "true"}


def _handled_once(b: Bench) -> list[Call]:
    txm = tx_messages(b.csms.calls())
    counts = Counter(c.message_id for c in txm)
    assert all(n == 1 for n in counts.values()), counts
    return txm


@pytest.mark.parametrize("version", VERSIONS)
def test_power_loss_mid_transaction(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(100)
    # the next sample reaches the back end but its answer is lost; then the link drops and
    # samples queue up
    b.csms.lose_down = lambda f: True
    b.run_until_sent(lambda c: event_type(c) == "Updated")
    b.csms.lose_down = None
    b.link_down()
    b.run(300)
    queued = [(e.message_id, e.action, e.payload) for e in b.outbox.entries()]
    assert len(queued) == 6
    last_wh = max(register_of(Call(mid, a, p)) or 0 for mid, a, p in queued)
    # the power goes: the meter comes back lower (a new meter object that counted from 0)
    b.run(7)
    fresh = ScriptedEvse(1, start_wh=0.0)
    b.kill(evse=fresh)
    b.run(60)
    assert b.outbox.depth() == 0
    txm = _handled_once(b)
    replayed = [c for c in txm if c.message_id in {mid for mid, _, _ in queued}]
    assert [(c.message_id, c.action, c.payload) for c in replayed] == queued
    # the one whose answer was lost reached the back end twice, and was handled once
    copies = Counter(c.message_id for c in b.csms.calls(repeats=True))
    assert copies[queued[0][0]] == 2
    assert all(copies[mid] == 1 for mid, _, _ in queued[1:])
    ended = txm[-1]
    assert event_type(ended) == "Ended" and stop_reason(ended) == "PowerLoss"
    assert register_of(ended) == pytest.approx(last_wh, abs=1.0)
    assert [event_type(c) for c in txm].count("Ended") == 1
    if version in V2:
        assert [c.payload["seqNo"] for c in txm] == list(range(len(txm)))
        assert ended.payload["triggerReason"] == "AbnormalCondition"
        assert ended.payload.get("offline") is True  # it was made before the link was up
    else:
        assert {c.payload["transactionId"] for c in txm[1:]} == {1001}
    assert not b.machine.tx.active()
    assert b.machine.status(b.now)["connectors"]["1"] != "Charging"


@pytest.mark.parametrize("version", VERSIONS)
def test_power_loss_with_the_meter_kept(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(95)
    b.kill()  # same hardware: its meter says how far it got
    b.run(30)
    ended = tx_messages(b.csms.calls())[-1]
    assert stop_reason(ended) == "PowerLoss"
    assert register_of(ended) == pytest.approx(evse.register[1], abs=1.0)
    assert not evse.relay[1]


def test_power_loss_before_start_transaction_conf_16(tmp_path: Path) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, "1.6", evse=evse, variables=OFFLINE_OK).start()
    b.link_down()
    evse.at(b.now + 10, "plug")
    evse.at(b.now + 11, "token")
    b.run(200)
    b.kill()
    b.run(60)
    txm = _handled_once(b)
    assert [c.action for c in txm][0] == "StartTransaction"
    assert txm[-1].action == "StopTransaction" and txm[-1].payload["reason"] == "PowerLoss"
    assert {c.payload["transactionId"] for c in txm[1:]} == {1001}


@pytest.mark.parametrize("still_charging", [False, True])
def test_messages_queued_before_start_transaction_conf_get_its_id_16(
    tmp_path: Path, still_charging: bool
) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, "1.6", evse=evse, variables=OFFLINE_OK).start()
    b.link_down()
    evse.at(b.now + 10, "plug")
    evse.at(b.now + 11, "token")
    if not still_charging:
        evse.at(b.now + 200, "unplug")
    b.run(300)
    assert [e.payload.get("transactionId") for e in b.outbox.entries()][1:] == [-1] * (
        b.outbox.depth() - 1
    )
    b.link_up()
    b.run(30)
    txm = _handled_once(b)
    assert txm[0].action == "StartTransaction"
    assert len(txm) >= 5
    assert {c.payload["transactionId"] for c in txm[1:]} == {1001}
    if not still_charging:
        assert txm[-1].action == "StopTransaction"


class _PowerCut(BaseException):
    """Raised inside the outbox: the process dies there, nothing after it runs."""


@pytest.mark.parametrize("step", ["bind_transaction", "answered"])
def test_a_power_cut_while_the_start_transaction_conf_is_taken_in_loses_no_id_16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """The answer's transactionId goes into the queued messages before the StartTransaction
    row is deleted: a cut at either step sends the StartTransaction again (same message id:
    the back end answers the repeat), never MeterValues or StopTransaction with the -1
    placeholder (a delete first lost the id when the cut came before the rewrite)."""
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, "1.6", evse=evse, variables=OFFLINE_OK).start()
    b.link_down()
    evse.at(b.now + 10, "plug")
    evse.at(b.now + 11, "token")
    evse.at(b.now + 200, "unplug")
    b.run(300)

    def cut(self: Outbox, *args: object) -> object:
        raise _PowerCut  # before its commit

    monkeypatch.setattr(Outbox, step, cut)
    with pytest.raises(_PowerCut):
        b.link_up()
    monkeypatch.undo()
    b.kill()
    b.run(60)
    txm = tx_messages(b.csms.calls())
    assert [c.action for c in txm][0] == "StartTransaction"
    assert txm[-1].action == "StopTransaction"
    assert {c.payload["transactionId"] for c in txm[1:]} == {1001}
    assert b.outbox.depth() == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_full_outbox_drops_intermediate_samples_only(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse, variables=OFFLINE_OK, max_queue=10).start()
    b.link_down()
    evse.at(b.now + 10, "plug")
    evse.at(b.now + 11, "token")
    evse.at(b.now + 1800, "unplug")
    b.run(1900)
    assert b.outbox.depth() <= 10
    assert b.outbox.stats().dropped >= 20
    b.link_up()
    b.run(120)
    txm = _handled_once(b)
    kinds = [event_type(c) for c in txm]
    assert kinds[0] == "Started" and kinds[-1] == "Ended"
    assert kinds.count("Started") == 1 and kinds.count("Ended") == 1
    assert 2 < len(txm) <= 10
    registers = [register_of(c) for c in txm]
    assert registers == sorted(registers)
    assert registers[-1] - registers[0] == pytest.approx(11_000 * (1800 - 11) / 3600, abs=1)
    if version in V2:
        seq = [c.payload["seqNo"] for c in txm]
        assert seq == sorted(seq) and seq[0] == 0 and len(set(seq)) == len(seq)


@pytest.mark.parametrize("version", VERSIONS)
def test_hours_of_random_traffic_take_bounded_ticks(tmp_path: Path, version: str) -> None:
    evse = SimulatedEvse(2, seed=3, start=T0)
    sparse = {"SampledDataCtrlr.TxUpdatedInterval": "900"}  # fewer commits: a faster test
    b = Bench(tmp_path, version, evse=evse, latency=0.4, variables=sparse).start()
    b.run(12 * 3600)
    txm = tx_messages(b.csms.calls())
    ends = [c for c in txm if event_type(c) == "Ended"]
    assert len(ends) >= 5
    frames = len(b.sent)
    assert b.ticks < 6 * frames + 2000, (b.ticks, frames)


@pytest.mark.parametrize("version", VERSIONS)
def test_no_spin_while_a_slow_answer_is_awaited(tmp_path: Path, version: str) -> None:
    """A heartbeat, a boot retry or an outbox retry falls due while another CALL waits for its
    answer: the machine must sleep until the answer or the timeout, not spin."""
    evse = ScriptedEvse(1)
    csms = Csms(version, boot_statuses=["Pending"], boot_interval=5)
    variables = {"OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]": "1",
                 "SampledDataCtrlr.TxUpdatedInterval": "7"}  # fmt: skip
    b = Bench(tmp_path, version, evse=evse, csms=csms, latency=25.0, variables=variables)
    b.start()
    evse.at(T0 + 100, "plug")
    evse.at(T0 + 101, "token")
    b.run(1800)  # SpinError if it spins
    assert b.machine.registration == "accepted"
    assert tx_messages(b.csms.calls())
    assert b.ticks < 5_000


ROUNDS = parse_scenario({
    "repeat": 6,
    "steps": [
        {"at": 60, "plug": 1, "charge_kwh": 3, "power_kw": 7},
        {"after": 5, "token": "A"},
        {"after": 300, "plug": 2, "charge_kwh": 2, "power_kw": 11},
        {"after": 5, "token": "B", "connector": 2},
        {"after": 1800, "unplug": 1},  # not after_full: a kill leaves the EV unpowered
        {"after": 60, "unplug": 2},
    ],
})  # fmt: skip


@pytest.mark.parametrize("version", VERSIONS)
def test_kills_and_link_losses_at_random_moments(tmp_path: Path, version: str) -> None:
    """Sessions with the station killed and the link lost at random moments (seeded): every
    transaction reaches the back end once, in order, started once and ended once."""
    import random

    rng = random.Random(f"kills-{version}")
    evse = SimulatedEvse(2, seed=11, scenario=ROUNDS, start=T0)
    sparse = {"SampledDataCtrlr.TxUpdatedInterval": "300"}
    b = Bench(tmp_path, version, evse=evse, latency=0.3, variables=sparse).start()
    end = T0 + 3 * 3600
    while b.now < end:
        b.run(rng.uniform(30, 900))
        what = rng.random()
        if what < 0.3:
            b.kill(link=rng.random() < 0.7)
        elif what < 0.6 and b.up:
            b.link_down()
        elif not b.up:
            b.link_up()
    if not b.up:
        b.link_up()
    b.run(3600)
    assert b.machine.settled, b.outbox.entries()
    txm = _handled_once(b)
    by_tx: dict[object, list[Call]] = {}
    for c in txm:
        if version == "1.6":
            key = c.payload.get("transactionId", ("start", c.message_id))
        else:
            key = c.payload["transactionInfo"]["transactionId"]
        by_tx.setdefault(key, []).append(c)
    if version == "1.6":
        starts = [c for c in txm if c.action == "StartTransaction"]
        stops = [c for c in txm if c.action == "StopTransaction"]
        assert len(stops) == len(starts) >= 5
        assert len({c.payload["transactionId"] for c in stops}) == len(stops)
        assert -1 not in {c.payload.get("transactionId") for c in txm}
    else:
        for key, msgs in by_tx.items():
            kinds = [event_type(c) for c in msgs]
            assert kinds[0] == "Started" and kinds.count("Started") == 1, (key, kinds)
            assert kinds[-1] == "Ended" and kinds.count("Ended") == 1, (key, kinds)
            assert [c.payload["seqNo"] for c in msgs] == list(range(len(msgs))), key
        assert len(by_tx) >= 5
    assert b.restarts >= 3


@pytest.mark.parametrize("version", VERSIONS)
def test_a_cable_in_at_the_restart_is_known(tmp_path: Path, version: str) -> None:
    """The hardware outlives the machine (a Reset, a kill): a cable that went in before is
    still in. An EVSE that can say so (``plugged(connector)``) tells the new machine, which
    reports the connector occupied and starts at once on a token."""
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(100)
    b.kill()
    status = b.calls("StatusNotification")[-1].payload
    expected = "Finishing" if version == "1.6" else "Occupied"  # ended as PowerLoss
    assert (status.get("status") or status["connectorStatus"]) == expected
    evse.at(b.now + 5, "token")
    b.run(10)
    assert b.machine.tx.active() and evse.relay[1]
