"""The charger's durable outbox (issue 16): order, seqNo, short ids, retries, link loss, a full
queue, a SIGKILL right after put(), and the commits a charging hour costs. Real SQLite files in
tmp_path; no broker, no clock (``now`` is passed in)."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ocpp_iot.charger_node.outbox import PAGE_SIZE, Outbox, OutboxStore, ReplayPace, RetryPolicy
from ocpp_iot.charger_node.outbox_policy import to_base36
from ocpp_iot.charger_node.outbox_store import SCHEMA_VERSION


def tx_event(event: str, tid: str, trigger: str = "MeterValuePeriodic") -> dict[str, Any]:
    return {
        "eventType": event,
        "timestamp": "2026-12-02T03:00:00Z",
        "triggerReason": trigger,
        "seqNo": 99,  # overwritten by the outbox
        "transactionInfo": {"transactionId": tid},
    }


def deliver(box: Outbox, now: float) -> str:
    """Send the due head and answer it; return its message id."""
    entry = box.due(now)
    assert entry is not None
    assert box.sent(entry.message_id, now)
    assert box.answered(entry.message_id) is not None
    return entry.message_id


def test_order_one_at_a_time_and_answered_deletes(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        tid = box.next_transaction_id()
        ids = [
            box.put("TransactionEvent", tx_event(ev, tid), now=1.0).entry.message_id
            for ev in ("Started", "Updated", "Updated", "Ended")
        ]
        assert [e.message_id for e in box.entries()] == ids
        head = box.due(2.0)
        assert head is not None and head.message_id == ids[0]
        assert box.sent(head.message_id, 2.0)
        assert box.due(2.0) is None  # one outstanding at a time
        assert not box.sent(ids[1], 2.0)  # only the head can go
        assert box.answered("nope") is None
        assert box.answered(ids[0]) == head
        assert box.depth() == 3
        assert [deliver(box, 3.0) for _ in range(3)] == ids[1:]
        assert box.depth() == 0 and box.due(4.0) is None and box.head() is None


def test_seq_no_per_transaction_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    a, b = box.next_transaction_id(), box.next_transaction_id()
    started = tx_event("Started", a)
    assert box.put("TransactionEvent", started, now=0).entry.payload["seqNo"] == 0
    assert started["seqNo"] == 99  # the caller's dict is left alone
    assert box.put("TransactionEvent", tx_event("Started", b), now=0).entry.payload["seqNo"] == 0
    box.close()
    box = Outbox(path)
    assert box.put("TransactionEvent", tx_event("Updated", a), now=1).entry.payload["seqNo"] == 1
    # a second opening without closing the first: what a crash leaves behind
    box = Outbox(path)
    assert box.put("TransactionEvent", tx_event("Updated", a), now=2).entry.payload["seqNo"] == 2
    assert box.put("TransactionEvent", tx_event("Updated", b), now=2).entry.payload["seqNo"] == 1
    assert box.put("TransactionEvent", tx_event("Ended", a), now=3).entry.payload["seqNo"] == 3
    stored = [(e.transaction_id, e.payload["seqNo"]) for e in box.entries()]
    assert stored == [(a, 0), (b, 0), (a, 1), (a, 2), (b, 1), (a, 3)]
    box.close()


def test_bad_puts_change_nothing(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        tid = box.next_transaction_id()
        first = box.put("TransactionEvent", tx_event("Started", tid), now=0).entry
        with pytest.raises(ValueError, match="started before"):
            box.put("TransactionEvent", tx_event("Started", tid), now=1)
        with pytest.raises(ValueError, match="payload names"):
            box.put("TransactionEvent", tx_event("Updated", tid), transaction_id="x", now=1)
        with pytest.raises(ValueError, match="eventType"):
            box.put("TransactionEvent", tx_event("Paused", tid), now=1)
        with pytest.raises(ValueError, match="needs a transaction_id"):
            box.put("StartTransaction", {"connectorId": 1}, now=1)
        with pytest.raises(ValueError, match="QueueAllMessages"):
            box.put("StatusNotification", {"connectorId": 1}, now=1)
        assert box.depth() == 1
        nxt = box.put("TransactionEvent", tx_event("Updated", tid), now=2).entry
        assert (int(nxt.message_id), nxt.payload["seqNo"]) == (int(first.message_id) + 1, 1)


def test_ids_short_and_never_reused_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    message_ids: list[str] = []
    transaction_ids: list[str] = []
    for round_ in range(4):
        box = Outbox(path, id_block=5)
        transaction_ids.append(tid := box.next_transaction_id())
        message_ids.append(box.next_message_id())
        message_ids.append(
            box.put("StartTransaction", {}, transaction_id=tid, now=0).entry.message_id
        )
        message_ids += [box.next_message_id() for _ in range(round_ * 3)]
        if round_ % 2:
            box.close()  # and otherwise just abandoned, as a crash would
    numbers = [int(m) for m in message_ids]
    assert numbers == sorted(set(numbers)), "message ids repeat or go back"
    assert message_ids[0] == "1" and all(m == str(int(m)) for m in message_ids)
    assert max(numbers) < 40  # a restart skips at most the rest of one block of 5
    assert transaction_ids == ["1", "2", "3", "4"]
    assert [to_base36(n) for n in (0, 9, 10, 35, 36, 1295, 1296)] == [
        "0", "9", "a", "z", "10", "zz", "100",
    ]  # fmt: skip


def test_failed_retries_after_interval_times_attempts_then_discards(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path, retry=RetryPolicy(attempts=3, interval=10.0))
    tid = box.next_transaction_id()
    mid = box.put("TransactionEvent", tx_event("Started", tid), now=0).entry.message_id
    later = box.put("TransactionEvent", tx_event("Updated", tid), now=0).entry.message_id
    assert box.sent(mid, 0)
    first = box.failed(mid, 1.0, "CALLERROR InternalError")
    assert first is not None and (first.attempts, first.next_attempt) == (1, 11.0)
    assert not first.discarded
    box.close()
    box = Outbox(path, retry=RetryPolicy(attempts=3, interval=10.0))  # attempts are kept
    assert box.due(10.9) is None  # the head waits; nothing overtakes it
    again = box.due(11.0)
    assert again is not None and (again.message_id, again.attempts) == (mid, 1)
    box.sent(mid, 11.0)
    second = box.failed(mid, 12.0, "timeout")
    assert second is not None and second.next_attempt == 32.0  # interval x 2
    assert box.due(31.9) is None and box.due(32.0) is not None
    box.sent(mid, 32.0)
    with caplog.at_level(logging.WARNING, logger="ocpp_iot.charger_node.outbox"):
        third = box.failed(mid, 33.0, "CALLERROR FormatViolation")
    assert third is not None and third.discarded and third.attempts == 3
    assert "gave up" in caplog.text and "FormatViolation" in caplog.text
    nxt = box.due(33.0)
    assert nxt is not None and nxt.message_id == later  # the next message goes
    assert box.stats().discarded == 1
    assert box.failed("unknown", 34.0) is None
    box.close()


def test_a_clock_stepped_back_does_not_hold_a_retry(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", retry=RetryPolicy(attempts=5, interval=10.0)) as box:
        mid = box.put("StartTransaction", {}, transaction_id="1", now=1000).entry.message_id
        box.sent(mid, 1000)
        box.failed(mid, 1000)
        assert box.next_attempt_at(1005) == 1010
        assert box.due(1005) is None
        assert box.due(500) is not None  # 510 s ahead of a 10 s interval: the clock went back
        # and the timer agrees: due now, not at 1010 (it waited for the next wake-up)
        assert box.next_attempt_at(500) == 500


def test_a_message_stamped_ahead_by_a_clock_stepped_back_is_due_at_once(tmp_path: Path) -> None:
    """Queued at 10,000 s; the Pi restarts without a real-time clock and reads 1,000 s: the
    message is due now, and the wake-up time the runtime asks for says so."""
    with Outbox(tmp_path / "o.db") as box:
        box.put("TransactionEvent", tx_event("Started", box.next_transaction_id()), now=10_000.0)
    with Outbox(tmp_path / "o.db") as box:
        assert box.due(1_000.0) is not None
        assert box.next_attempt_at(1_000.0) == 1_000.0


def test_link_loss_keeps_message_id_and_attempts(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path, retry=RetryPolicy(attempts=2, interval=5.0))
    mid = box.put("StartTransaction", {}, transaction_id="1", now=0).entry.message_id
    box.sent(mid, 0)
    box.failed(mid, 1)  # a real failure: attempt 1
    box.sent(mid, 6)
    for _ in range(5):  # the link drops again and again: never an attempt, never discarded
        box.link_lost()
        entry = box.due(7)
        assert entry is not None and (entry.message_id, entry.attempts) == (mid, 1)
        box.sent(mid, 7)
    assert box.due(7) is None
    # a restart with the message in flight: the same id goes again
    box = Outbox(path, retry=RetryPolicy(attempts=2, interval=5.0))
    entry = box.due(8)
    assert entry is not None and (entry.message_id, entry.attempts) == (mid, 1)
    assert box.next_message_id() != mid
    box.close()


def test_full_queue_drops_every_second_intermediate_never_started_or_ended(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Outbox(tmp_path / "o.db", max_messages=10, drop_batch=3) as box:
        a, b = box.next_transaction_id(), box.next_transaction_id()
        box.put("TransactionEvent", tx_event("Started", a), now=0)
        ups = [box.put("TransactionEvent", tx_event("Updated", a), now=i).entry for i in range(8)]
        box.put("TransactionEvent", tx_event("Ended", a), now=9)
        assert box.depth() == 10 and box.stats().dropped == 0
        with caplog.at_level(logging.WARNING, logger="ocpp_iot.charger_node.outbox"):
            stored, dropped = box.put("TransactionEvent", tx_event("Started", b), now=10)
        # the 1st, 3rd, 5th intermediate message of the queue, oldest first (2.0.1 E04)
        assert [e.message_id for e in dropped] == [ups[i].message_id for i in (0, 2, 4)]
        assert "dropped" in caplog.text
        left = [(e.kind, e.payload["seqNo"]) for e in box.entries()]
        assert left == [
            ("start", 0), ("update", 2), ("update", 4), ("update", 6), ("update", 7),
            ("update", 8), ("end", 9), ("start", 0),
        ]  # fmt: skip
        assert stored.payload["seqNo"] == 0 and box.stats().dropped == 3


def test_full_queue_drops_meter_samples_before_an_updated_that_tells_more(
    tmp_path: Path,
) -> None:
    """The Updated that brings the token of a transaction begun at the cable (trigger
    Authorized) or a charging state goes only once no sample is left: before, a full queue
    dropped it like any other, and the back end never learnt who charged."""
    with Outbox(tmp_path / "o.db", max_messages=6, drop_batch=1) as box:
        tid = box.next_transaction_id()
        box.put("TransactionEvent", tx_event("Started", tid, "CablePluggedIn"), now=0)
        token = {
            **tx_event("Updated", tid, "Authorized"),
            "idToken": {"idToken": "A", "type": "ISO14443"},
        }
        told = box.put("TransactionEvent", token, now=1).entry
        state = box.put(
            "TransactionEvent", tx_event("Updated", tid, "ChargingStateChanged"), now=2
        ).entry
        clock = box.put(
            "TransactionEvent", tx_event("Updated", tid, "MeterValueClock"), now=3
        ).entry
        periodic = [
            box.put("TransactionEvent", tx_event("Updated", tid), now=4 + i).entry for i in range(2)
        ]
        dropped, new = [], []
        for i in range(4):  # each one over the limit of 6: one sample goes
            stored, gone = box.put("TransactionEvent", tx_event("Updated", tid), now=10 + i)
            new.append(stored)
            dropped += [e.message_id for e in gone]
        samples = [clock, *periodic, *new]
        assert dropped == [e.message_id for e in samples[:4]]  # oldest first, batches of one
        left = [e.message_id for e in box.entries()]
        assert told.message_id in left and state.message_id in left


def test_full_queue_spares_the_message_in_flight_and_the_new_one(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", max_messages=4) as box:  # drop_batch 1
        box.put("StartTransaction", {}, transaction_id="1", now=0)
        deliver(box, 0)
        meter = {"connectorId": 1, "transactionId": 7, "meterValue": []}  # 1.6
        ups = [box.put("MeterValues", meter, transaction_id="1", now=i).entry for i in range(4)]
        assert {e.kind for e in ups} == {"update"} and "seqNo" not in ups[0].payload
        assert box.sent(ups[0].message_id, 5)
        new, dropped = box.put("MeterValues", meter, transaction_id="1", now=5)
        assert [e.message_id for e in dropped] == [ups[1].message_id]
        ids = [e.message_id for e in box.entries()]
        assert ids == [ups[0].message_id, ups[2].message_id, ups[3].message_id, new.message_id]


def test_full_queue_then_other_messages_and_never_transaction_bounds(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", max_messages=3, queue_all_messages=True) as box:
        box.put("StartTransaction", {}, transaction_id="1", now=0)
        status = box.put("StatusNotification", {"connectorId": 1}, now=1).entry
        assert status.kind == "other"
        box.put("StopTransaction", {}, transaction_id="1", now=2)
        _, dropped = box.put("StartTransaction", {}, transaction_id="2", now=3)
        assert dropped == (status,)
        _, dropped = box.put("StopTransaction", {}, transaction_id="2", now=4)
        assert dropped == () and box.depth() == 4  # over the limit: Start/Stop are never lost
        assert [e.kind for e in box.entries()] == ["start", "end", "start", "end"]


def test_bind_transaction_fills_the_back_ends_id_into_queued_16_messages(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        start = box.put("StartTransaction", {"connectorId": 1}, transaction_id="1", now=0).entry
        box.put("MeterValues", {"connectorId": 1, "meterValue": []}, transaction_id="1", now=1)
        box.put("StopTransaction", {"meterStop": 5}, transaction_id="1", now=2)
        box.put("StartTransaction", {"connectorId": 2}, transaction_id="2", now=3)
        assert box.bind_transaction("1", {"transactionId": 4711}) == 2  # not StartTransaction
        assert box.answered(start.message_id) == start
        durable = box.stats().durable_commits
        assert box.bind_transaction("3", {"transactionId": 1}) == 0
        assert box.stats().durable_commits == durable  # nothing to write, no fsync
    with Outbox(path) as box:
        assert [e.payload for e in box.entries()] == [
            {"connectorId": 1, "meterValue": [], "transactionId": 4711},
            {"meterStop": 5, "transactionId": 4711},
            {"connectorId": 2},
        ]


def test_queue_all_messages_and_messages_in_queue(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        with pytest.raises(ValueError):
            box.put("Heartbeat", {}, now=0)
        box.queue_all_messages = True
        hb = box.put("Heartbeat", {}, now=0).entry
        assert hb.kind == "other"
        assert not box.messages_in_queue() and not box.messages_in_queue("1")
        box.put("TransactionEvent", tx_event("Started", "1"), now=1)
        assert box.messages_in_queue() and box.messages_in_queue("1")
        assert not box.messages_in_queue("2")
        deliver(box, 2)  # the Heartbeat, in order
        deliver(box, 2)
        assert not box.messages_in_queue("1") and box.depth() == 0


def test_replay_on_start_up_in_order_with_ids(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    puts = [box.put("TransactionEvent", tx_event("Started", "9"), now=0).entry]
    puts += [box.put("TransactionEvent", tx_event("Updated", "9"), now=i).entry for i in (1, 2)]
    del box  # no close: the process died
    box = Outbox(path)
    assert box.entries() == puts
    assert [deliver(box, 10) for _ in puts] == [e.message_id for e in puts]
    box.close()


CHILD = textwrap.dedent(
    """
    import sys
    from ocpp_iot.charger_node.outbox import Outbox

    box = Outbox(sys.argv[1])
    pause = sys.argv[2] == "pause"
    tid = box.next_transaction_id()
    event = {"eventType": "Started", "timestamp": "2026-12-02T03:00:00Z",
             "triggerReason": "Authorized", "seqNo": 0, "transactionInfo": {"transactionId": tid}}
    n = 0
    while True:
        entry = box.put("TransactionEvent", event, now=n).entry
        print(entry.message_id, entry.payload["seqNo"], flush=True)  # put() has returned
        if pause and n == 24:
            sys.stdin.readline()  # nothing more happens: the kill comes right after put()
        event = dict(event, eventType="Updated", triggerReason="MeterValuePeriodic")
        n += 1
    """
)


@pytest.mark.parametrize("mode", ["pause", "busy"])
def test_sigkill_right_after_put_returns_loses_nothing(tmp_path: Path, mode: str) -> None:
    """``pause``: killed right after the 25th put() returned; ``busy``: killed in the middle of
    later puts. Either way every put() that returned is there, in order, seqNo without gaps."""
    path = tmp_path / "o.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    acknowledged = [child.stdout.readline().split() for _ in range(25)]
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()
    child.stdin.close()
    assert child.returncode == -signal.SIGKILL
    with Outbox(path) as box:
        stored = [(e.message_id, e.payload["seqNo"]) for e in box.entries()]
        assert [(m, int(s)) for m, s in acknowledged] == stored[: len(acknowledged)]
        if mode == "pause":
            assert len(stored) == 25
        assert [s for _, s in stored] == list(range(len(stored)))  # no gap, no repeat
        assert int(box.next_message_id()) > max(int(m) for m, _ in stored)
        entry = box.put("TransactionEvent", tx_event("Updated", "1"), now=0).entry
        assert entry.payload["seqNo"] == len(stored)


def test_fsyncs_per_charging_hour(tmp_path: Path) -> None:
    """One charging hour at a 60 s meter interval (2.0.1): Started, 60 Updated, Ended, each
    answered. Durable commits (one WAL fsync each) are the stored messages and the
    transaction id; answers cost lazy commits only; no checkpoint falls in the hour."""
    with Outbox(tmp_path / "o.db") as box:
        tid = box.next_transaction_id()
        events = ["Started"] + ["Updated"] * 60 + ["Ended"]
        for minute, event in enumerate(events):
            box.put("TransactionEvent", tx_event(event, tid), now=minute * 60.0)
            deliver(box, minute * 60.0)
        stats = box.stats()
    assert (stats.durable_commits, stats.lazy_commits, stats.checkpoints) == (63, 62, 0)
    assert stats.fsyncs == 63 and stats.depth == 0


def test_checkpoint_every_n_commits(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", checkpoint_every=10) as box:
        for i in range(25):
            box.put("StartTransaction", {}, transaction_id=str(i), now=i)
        assert box.stats().checkpoints == 2
        assert box.stats().fsyncs == 25 + 3 * 2


def test_replay_pace_token_bucket() -> None:
    pace = ReplayPace(per_minute=6, burst=2)
    assert pace.take(100.0) and pace.take(100.0)
    assert not pace.take(100.0)
    assert pace.wait(100.0) == pytest.approx(10.0)
    assert not pace.take(109.9)
    assert pace.take(110.0)
    assert pace.wait(1000.0) == 0.0 and pace.take(1000.0) and pace.take(1000.0)
    assert not pace.take(1000.0)  # a long idle period refills only up to the burst
    with pytest.raises(ValueError):
        ReplayPace(per_minute=0)


def test_retry_policy() -> None:
    policy = RetryPolicy(attempts=3, interval=60.0)
    assert [policy.delay(n) for n in (1, 2)] == [60.0, 120.0]
    assert not policy.exhausted(2) and policy.exhausted(3)
    assert RetryPolicy(attempts=1).exhausted(1)  # 1 = never retried
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_a_new_file_has_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    def page_size(path: Path) -> int:
        with sqlite3.connect(path) as conn:
            return int(conn.execute("PRAGMA page_size").fetchone()[0])

    new = tmp_path / "new.db"
    with Outbox(new) as box:
        box.put("TransactionEvent", tx_event("Started", "t1"), now=1.0)
    assert page_size(new) == PAGE_SIZE == 1024
    old = tmp_path / "old.db"  # made with SQLite's default pages (before this change)
    with sqlite3.connect(old) as conn:
        conn.execute("PRAGMA page_size=4096")
        conn.execute("CREATE TABLE before (x)")
    with Outbox(old) as box:
        box.put("TransactionEvent", tx_event("Started", "t1"), now=1.0)
    with Outbox(old) as box:  # reopened: the queue is there, the page size unchanged
        head = box.head()
        assert head is not None and head.payload["seqNo"] == 0
    assert page_size(old) == 4096


# -- one store for many stations (charger-node simulate) -------------------------------------


def test_stations_in_one_shared_store_keep_their_own_queues_and_counters(tmp_path: Path) -> None:
    with OutboxStore(tmp_path / "shared.db", shared=True) as store:
        a, b = Outbox(store, station="CP1"), Outbox(store, station="CP2")
        assert a.next_transaction_id() == b.next_transaction_id() == "1"  # counters per station
        assert a.next_message_id() == b.next_message_id() == "1"
        ma = [a.put("TransactionEvent", tx_event(ev, "1"), now=1.0).entry for ev in ("Started",
              "Updated")]  # fmt: skip
        mb = b.put("TransactionEvent", tx_event("Started", "1"), now=1.0).entry
        assert [e.payload["seqNo"] for e in ma] == [0, 1] and mb.payload["seqNo"] == 0
        a.keep("tx:1", {"wh": 5})
        assert b.kept() == {} and a.kept("tx:") == {"tx:1": {"wh": 5}}
        assert (a.depth(), b.depth()) == (2, 1)
        assert b.messages_in_queue("1") and a.messages_in_queue()
        assert a.answered(mb.message_id) is not None  # the id is CP2's too: CP1's own goes
        assert (a.depth(), b.depth()) == (1, 1) and b.head() == mb
        b.close()  # the store stays open for the others
        assert a.head() == replace(ma[1]) and store.stations() == ["CP1", "CP2"]
        a.close()
    with OutboxStore(tmp_path / "shared.db", shared=True) as store:  # and all of it persists
        again = Outbox(store, station="CP2")
        assert again.head() == mb and again.next_message_id() == "101"  # the block skipped


def test_a_file_of_the_first_layout_is_upgraded_with_its_queue(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # layout 0: one station a file, no station column
        conn.executescript(
            """
            CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
            CREATE TABLE outbox (pos INTEGER PRIMARY KEY, message_id TEXT NOT NULL,
                action TEXT NOT NULL, kind TEXT NOT NULL, transaction_id TEXT,
                payload TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt REAL NOT NULL,
                created REAL NOT NULL);
            CREATE TABLE seq_no (transaction_id TEXT PRIMARY KEY, next INTEGER NOT NULL)
                WITHOUT ROWID;
            CREATE TABLE kept (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
            INSERT INTO counters VALUES ('message_id', 201), ('transaction_id', 8);
            INSERT INTO outbox VALUES (5, '150', 'TransactionEvent', 'update', '7',
                '{"eventType":"Updated","seqNo":3}', 1, 10.0, 9.0);
            INSERT INTO seq_no VALUES ('7', 4);
            INSERT INTO kept VALUES ('tx:7', '{"wh":12}');
            """
        )
    with Outbox(path) as box:
        head = box.head()
        assert head is not None
        assert (head.position, head.message_id, head.attempts, head.payload["seqNo"]) == (
            5, "150", 1, 3)  # fmt: skip
        assert box.kept() == {"tx:7": {"wh": 12}}
        assert box.next_message_id() == "201" and box.next_transaction_id() == "8"
        nxt = box.put("TransactionEvent", tx_event("Ended", "7"), now=11.0).entry
        assert nxt.payload["seqNo"] == 4  # the transaction's counter came along
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert not {t for t in tables if t.startswith("old_")}


def test_a_layout_newer_than_this_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        Outbox(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0


def test_a_store_that_is_not_power_safe_makes_no_durable_commit(tmp_path: Path) -> None:
    with OutboxStore(tmp_path / "sim.db", shared=True, power_safe=False) as store:
        box = Outbox(store, station="CP1")
        box.put("TransactionEvent", tx_event("Started", box.next_transaction_id()), now=1.0)
        deliver(box, 2.0)
        stats = box.stats()
        assert stats.durable_commits == 0 and stats.lazy_commits == 3 and stats.fsyncs == 0
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with Outbox(tmp_path / "own.db") as own:  # a station's own file is power safe
        own.put("TransactionEvent", tx_event("Started", own.next_transaction_id()), now=1.0)
        assert own.stats().durable_commits == 2  # the transaction id; the message with its id block


def test_a_shared_store_adopts_a_stations_own_file_once(tmp_path: Path) -> None:
    own = tmp_path / "CP1" / "outbox.db"
    own.parent.mkdir()
    with Outbox(own) as box:
        tid = box.next_transaction_id()
        box.put("TransactionEvent", tx_event("Started", tid), now=1.0)
        box.put("TransactionEvent", tx_event("Updated", tid), now=2.0)
        box.keep("tx:1", {"connector": 1, "last_wh": 12.5})
        ids = [e.message_id for e in box.entries()]
    copy = own.read_bytes()
    with OutboxStore(tmp_path / "shared.db", shared=True) as store:
        assert store.adopt(own, "CP1") == 2
        assert not own.exists()
        own.write_bytes(copy)  # as if a crash came between the commit and the delete
        assert store.adopt(own, "CP1") == 0  # nothing twice
        box = Outbox(store, station="CP1")
        assert [e.message_id for e in box.entries()] == ids
        assert box.kept("tx:") == {"tx:1": {"connector": 1, "last_wh": 12.5}}
        assert int(box.next_message_id()) > max(map(int, ids))
        assert box.next_transaction_id() != tid
        nxt = box.put("TransactionEvent", tx_event("Ended", tid), now=3.0)
        assert nxt.entry.payload["seqNo"] == 2
        assert store.stations() == ["CP1"]


def test_a_station_leaves_a_shared_store_for_a_file_of_its_own_once(tmp_path: Path) -> None:
    """A station of ``simulate`` run on its own (``charger-node run``): its rows move from the
    shared store into its own file, under the file's station ``""``, and leave the store; the
    other stations' rows stay. A crash between the commit in the file and the delete in the
    store (here: the store's old bytes put back) moves nothing twice."""
    shared = tmp_path / "outbox.db"
    with OutboxStore(shared, shared=True) as store:
        box = Outbox(store, station="CP1")
        tid = box.next_transaction_id()
        box.put("TransactionEvent", tx_event("Started", tid), now=1.0)
        box.put("TransactionEvent", tx_event("Updated", tid), now=2.0)
        box.keep("tx:1", {"connector": 1, "last_wh": 7.5})
        ids = [e.message_id for e in box.entries()]
        other = Outbox(store, station="CP2")
        other.put("TransactionEvent", tx_event("Started", other.next_transaction_id()), now=1.0)
    before = shared.read_bytes()
    own = tmp_path / "CP1" / "outbox.db"
    own.parent.mkdir()
    with OutboxStore(own) as mine:
        assert mine.adopt(shared, "", source_station="CP1") == 2
        with OutboxStore(shared) as store:
            assert store.stations() == ["CP2"]
            assert len(Outbox(store, station="CP2").entries()) == 1
        for suffix in ("-wal", "-shm"):
            shared.with_name(shared.name + suffix).unlink(missing_ok=True)
        shared.write_bytes(before)  # as if the process died before the delete
        assert mine.adopt(shared, "", source_station="CP1") == 0
        with OutboxStore(shared) as store:
            assert store.stations() == ["CP2"]
    with Outbox(own) as box:
        assert [e.message_id for e in box.entries()] == ids
        assert box.kept("tx:") == {"tx:1": {"connector": 1, "last_wh": 7.5}}
        assert not [k for k in box.kept() if "adoption-token" in k]
        assert int(box.next_message_id()) > max(map(int, ids))
        assert box.next_transaction_id() != tid
        nxt = box.put("TransactionEvent", tx_event("Ended", tid), now=3.0)
        assert nxt.entry.payload["seqNo"] == 2


def _thin(box: Outbox, updates: int) -> str:
    """Queue a Started and ``updates`` Updated events into a box of 3: some are dropped."""
    tid = box.next_transaction_id()
    box.put("TransactionEvent", tx_event("Started", tid), now=1.0)
    for n in range(updates):
        box.put("TransactionEvent", tx_event("Updated", tid), now=2.0 + n)
    return tid


def test_adopting_adds_the_tallies_once_and_keeps_the_larger_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "CP1" / "outbox.db"
    own.parent.mkdir()
    with Outbox(own, max_messages=3, drop_batch=1) as box:
        _thin(box, 4)  # 5 messages into 3: 2 dropped
        own_dropped, own_mid = box.stats().dropped, int(box.next_message_id())
    assert own_dropped == 2
    with OutboxStore(tmp_path / "shared.db", shared=True) as store:
        shared = Outbox(store, station="CP1", max_messages=3, drop_batch=1, id_block=1)
        _thin(shared, 3)  # this station already ran in the shared store: 1 dropped
        assert shared.stats().dropped == 1
        shared_mid = int(shared.next_message_id())
        assert shared_mid < own_mid  # ids: the adopted file's larger block wins
        with monkeypatch.context() as m:  # the process dies between the commit and the delete
            m.setattr(Path, "unlink", lambda *a, **k: (_ for _ in ()).throw(OSError("killed")))
            with pytest.raises(OSError):
                store.adopt(own, "CP1")
        assert own.exists()
        assert store.adopt(own, "CP1") == 0  # started again: nothing twice
        box = Outbox(store, station="CP1", max_messages=3)
        assert box.stats().dropped == 3  # 2 + 1, not 2 + 2 + 1 nor max(2, 1)
        assert int(box.next_message_id()) >= own_mid
        assert not [k for k in box.kept() if "adoption-token" in k]
        other = tmp_path / "CP1" / "outbox.db"  # a new own file later: adopted as a new one
        with Outbox(other, max_messages=3, drop_batch=1) as again:
            _thin(again, 4)
        store.adopt(other, "CP1")
        assert Outbox(store, station="CP1").stats().dropped == 5


def test_adopting_next_to_a_queue_of_the_store_gives_a_reused_id_a_new_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The station ran in the shared store and with its own file (``charger-node run`` and
    ``simulate`` on one data directory): both counted message ids from 1. The file's message
    with an id the store handed out already is kept (it was skipped as if it were the same
    message, and lost) and takes an id neither used; one the store never handed out keeps its
    own."""
    with OutboxStore(tmp_path / "shared.db", shared=True) as store:
        box = Outbox(store, station="CP1", id_block=1)
        t1 = box.next_transaction_id()
        box.put("TransactionEvent", tx_event("Started", t1), now=1.0)  # id "1" here
        own = tmp_path / "own.db"
        with Outbox(own, id_block=1) as obox:
            for n in range(4):  # ids "1" .. "4" there
                obox.put("TransactionEvent", tx_event("Updated", "zz"), now=2.0 + n)
            own_ids = [e.message_id for e in obox.entries()]
        issued = int(Outbox(store, station="CP1", id_block=1).next_message_id())  # "2" spent
        with caplog.at_level(logging.WARNING):
            assert store.adopt(own, "CP1") == 4
        entries = Outbox(store, station="CP1").entries()
        assert [e.transaction_id for e in entries] == [t1, "zz", "zz", "zz", "zz"]
        ids = [e.message_id for e in entries]
        assert len(set(ids)) == 5, ids
        kept = [m for m in own_ids if int(m) >= issued + 1]  # the store never gave those
        assert kept and ids[-len(kept) :] == kept
        renamed = ids[1 : 5 - len(kept)]
        assert all(int(m) >= max(map(int, own_ids)) + 1 for m in renamed), ids
        assert "take new message ids" in caplog.text
        later = int(Outbox(store, station="CP1").next_message_id())
        assert later > max(map(int, ids))


def test_a_failed_checkpoint_after_the_commit_hands_out_no_id_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The WAL checkpoint that follows a commit fails (an I/O error, a full SD card): the row is
    stored, so put() must not raise as if it were not (it then kept its counter and gave the
    next message the same id: the bridge answered that one from its store, and it was lost)."""
    box = Outbox(tmp_path / "o.db", checkpoint_every=2)
    tid = box.next_transaction_id()
    real = box.store.checkpoint
    failures = iter([True])

    def checkpoint() -> None:
        if next(failures, False):
            raise sqlite3.OperationalError("disk I/O error")
        real()

    monkeypatch.setattr(box.store, "checkpoint", checkpoint)
    with caplog.at_level(logging.WARNING):
        for i in range(3):
            box.put("TransactionEvent", tx_event("Started" if i == 0 else "Updated", tid), now=i)
    ids = [e.message_id for e in box.entries()]
    assert len(ids) == 3 and len(set(ids)) == 3, ids
    assert "checkpoint failed" in caplog.text
    box.close()


def test_over_by_more_than_every_other_updated_drops_the_rest_before_others(
    tmp_path: Path,
) -> None:
    """E04: the intermediate Updated events go before anything else. Over the limit by more
    than every other one of them (the limit lowered between runs), the rest of them go too,
    before a queued non-transaction message."""
    status = {"timestamp": "2026-12-02T03:00:00Z", "connectorStatus": "Available",
              "evseId": 1, "connectorId": 1}  # fmt: skip
    with Outbox(tmp_path / "o.db", max_messages=100, queue_all_messages=True) as box:
        box.put("StatusNotification", status, now=0.0)
        tid = box.next_transaction_id()
        box.put("TransactionEvent", tx_event("Started", tid), now=1.0)
        box.put("TransactionEvent", tx_event("Updated", tid), now=2.0)
        box.put("TransactionEvent", tx_event("Updated", tid), now=3.0)
    with Outbox(tmp_path / "o.db", max_messages=3, queue_all_messages=True, drop_batch=1) as box:
        stored = box.put("TransactionEvent", tx_event("Updated", tid), now=4.0)
        assert [(e.action, e.payload.get("eventType")) for e in stored.dropped] == [
            ("TransactionEvent", "Updated"), ("TransactionEvent", "Updated")]  # fmt: skip
        left = [(e.action, e.payload.get("eventType")) for e in box.entries()]
        assert left == [("StatusNotification", None), ("TransactionEvent", "Started"),
                        ("TransactionEvent", "Updated")]  # fmt: skip
