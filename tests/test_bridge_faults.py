"""Faults in the middle of a stream of TransactionEvents: every event reaches the handler exactly
once, in order. ``bridge serve`` runs as a real subprocess against a real mosquitto."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import BridgeProcess, rows, station

from ocpp_iot.bridge.reference import utc_now
from ocpp_iot.rpc import Call, CallResult
from ocpp_iot.testing import Mosquitto


def transaction_events(n: int, tx: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        kind = "Started" if i == 0 else "Ended" if i == n - 1 else "Updated"
        out.append(
            {
                "eventType": kind,
                "timestamp": utc_now(),
                "triggerReason": "Authorized" if i == 0 else "MeterValuePeriodic",
                "seqNo": i,
                "transactionInfo": {"transactionId": tx},
                "meterValue": [
                    {
                        "timestamp": utc_now(),
                        "sampledValue": [{"value": 100.0 * i, "unitOfMeasure": {"unit": "Wh"}}],
                    }
                ],
            }
        )
    return out


class Stream:
    """What the stations of :func:`stream_with_fault` have done so far (read by the fault, in a
    thread of its own, while the loop's thread updates the counts)."""

    def __init__(self, stations: list[str]) -> None:
        self.answers = dict.fromkeys(stations, 0)
        self.sent: dict[str, list[str]] = {sid: [] for sid in stations}  # message ids, repeats too

    def answered(self) -> int:
        return sum(self.answers.values())

    def repeats(self, sid: str) -> int:
        return len(self.sent[sid]) - len(set(self.sent[sid]))

    def wait(self, cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.005)

    def wait_answers(self, more: int, timeout: float = 30.0) -> None:
        """Until the stations got ``more`` answers than now (the bridge is serving)."""
        want = self.answered() + more
        self.wait(lambda: self.answered() >= want, f"{more} more answers", timeout)


def stream_with_fault(
    broker: Mosquitto,
    stations: list[str],
    n: int,
    fault: Callable[[Stream], None],
    fault_after: int,
    timeout: float = 120.0,
    repeat_after: float = 1.0,
) -> None:
    """Each station sends ``n`` TransactionEvents back to back (repeating a CALL with the same id
    when no answer comes in ``repeat_after`` s, so outages leave duplicates queued in the broker);
    ``fault`` runs once the first station has ``fault_after`` answers."""
    stream = Stream(stations)

    async def scenario() -> None:
        async def run(sid: str) -> None:
            def observe(direction: str, _sid: str, frame: Any, data: bytes) -> None:
                if direction == "up" and isinstance(frame, Call):
                    stream.sent[sid].append(frame.message_id)

            async with station(broker, sid, call_timeout=repeat_after, observer=observe) as st:
                for ev in transaction_events(n, f"tx-{sid}"):
                    answer = await st.call("TransactionEvent", ev)
                    assert isinstance(answer, CallResult), answer
                    stream.answers[sid] += 1

        tasks = [asyncio.create_task(run(s)) for s in stations]
        while stream.answers[stations[0]] < fault_after:
            await asyncio.sleep(0.005)
            for t in tasks:
                if t.done():
                    t.result()
        await asyncio.to_thread(fault, stream)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout)

    asyncio.run(scenario())


def assert_exactly_once_in_order(db: Path, stations: list[str], n: int) -> None:
    for sid in stations:
        seqs = rows(
            db,
            "SELECT seq_no FROM ref_events WHERE station=? AND action='TransactionEvent' "
            "ORDER BY id",
            sid,
        )
        assert [s for (s,) in seqs] == list(range(n)), f"{sid}: {seqs}"
        tx = rows(db, "SELECT ended IS NOT NULL FROM ref_transactions WHERE station=?", sid)
        assert tx == [(1,)]


def test_sigkill_bridge_mid_stream(broker: Mosquitto, bridge_process: Any) -> None:
    bp: BridgeProcess = bridge_process()
    stations = ["CP1", "CP2", "CP3"]

    def fault(stream: Stream) -> None:
        before = {sid: stream.repeats(sid) for sid in stations}
        bp.kill()  # SIGKILL, mid-stream
        # every station repeats its CALL meanwhile: duplicates queue up in the broker
        stream.wait(
            lambda: all(stream.repeats(sid) > before[sid] for sid in stations),
            "every station to repeat a CALL",
        )
        bp.start()

    stream_with_fault(broker, stations, 40, fault, fault_after=15)
    assert "repeated CALL" in bp.log()  # the duplicates were recognised
    assert_exactly_once_in_order(bp.db, stations, 40)


def test_sigkill_bridge_repeatedly(broker: Mosquitto, bridge_process: Any) -> None:
    bp: BridgeProcess = bridge_process()
    stations = ["CP1", "CP2"]

    def fault(stream: Stream) -> None:
        for _ in range(3):
            bp.kill()
            bp.start()
            stream.wait_answers(3)  # it served a little before the next kill

    stream_with_fault(broker, stations, 40, fault, fault_after=5)
    assert_exactly_once_in_order(bp.db, stations, 40)


def test_restart_mosquitto_mid_stream(broker: Mosquitto, bridge_process: Any) -> None:
    bp: BridgeProcess = bridge_process()
    stations = ["CP1", "CP2"]

    def fault(stream: Stream) -> None:
        broker.restart(down_for=1.0)

    stream_with_fault(broker, stations, 40, fault, fault_after=15)
    assert_exactly_once_in_order(bp.db, stations, 40)
    assert bp.proc is not None and bp.proc.poll() is None  # it rode it out
    assert bp.terminate() == 0


def test_kill_one_of_two_workers_mid_stream(broker: Mosquitto, bridge_process: Any) -> None:
    bp: BridgeProcess = bridge_process("--workers", "2")
    for _ in range(100):
        if len(bp.worker_pids()) == 2:
            break
        time.sleep(0.1)
    pids = bp.worker_pids()
    assert len(pids) == 2, bp.log()
    stations = ["CP1", "CP2", "CP3", "CP4"]

    def fault(stream: Stream) -> None:
        os.kill(pids[0], signal.SIGKILL)

    stream_with_fault(broker, stations, 40, fault, fault_after=15)
    assert_exactly_once_in_order(bp.db, stations, 40)
    log = bp.log()
    assert "restarting" in log, log
    # both workers served traffic (shared subscription)
    assert bp.terminate() == 0


def test_sigkill_bridge_many_times_long_stream(broker: Mosquitto, bridge_process: Any) -> None:
    """Six SIGKILLs while five stations stream: the store's answers and the broker's
    persistent session carry every event across each restart (ran only under ``-m slow``
    before; now in every run, sized for CI)."""
    bp: BridgeProcess = bridge_process()
    stations = [f"CP{i}" for i in range(1, 6)]

    def fault(stream: Stream) -> None:
        for _ in range(6):
            bp.kill()
            bp.start()
            stream.wait_answers(10)  # it served a while before the next kill

    stream_with_fault(broker, stations, 80, fault, fault_after=5, timeout=300)
    assert_exactly_once_in_order(bp.db, stations, 80)


def test_sigterm_is_a_clean_shutdown(broker: Mosquitto, bridge_process: Any, probe: Any) -> None:
    bp: BridgeProcess = bridge_process()
    watch = probe(["ocpp/bridge/status"])
    assert watch.wait_for(lambda m: m.payload == b"online").retain
    assert bp.terminate() == 0
    assert watch.wait_for(lambda m: m.payload == b"offline")
    assert "shutting down" in bp.log()
