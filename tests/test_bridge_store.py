"""The bridge's shared store (SQLite): duplicate detection, calls to stations, deferred writes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ocpp_iot.bridge.store import (
    Claim,
    EffectsFailed,
    Finish,
    SqliteStore,
    collect_effects,
    defer_sql,
)


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(str(tmp_path / "s.sqlite3"), lease=10.0)
    s._db.execute("CREATE TABLE effects (v TEXT)")
    return s


def finish(station: str, mid: str, data: bytes, **kw: object) -> Finish:
    return Finish(station, mid, data, "2.0.1", 100.0, **kw)  # type: ignore[arg-type]


def test_claim_then_finish_then_repeat(store: SqliteStore) -> None:
    assert store.claim_call("CP1", "1", "w0", 100.0, mark=False).claim is Claim.NEW
    assert store.finish_calls([finish("CP1", "1", b"answer", state={"n": 1})]) == [None]
    again = store.claim_call("CP1", "1", "w0", 101.0, mark=False)
    assert (again.claim, again.response) == (Claim.DONE, b"answer")
    new = store.claim_call("CP1", "2", "w0", 101.0, mark=False)
    assert new.claim is Claim.NEW and new.state == {"n": 1}
    assert store.station_version("CP1") == "2.0.1"
    # the same message id from another station is another CALL
    assert store.claim_call("CP2", "1", "w0", 101.0).claim is Claim.NEW


def test_in_progress_marks_between_workers(store: SqliteStore) -> None:
    assert store.claim_call("CP1", "1", "w0", 100.0).claim is Claim.NEW
    assert store.claim_call("CP1", "1", "w1", 101.0).claim is Claim.BUSY  # w0 has it in hand
    assert store.claim_call("CP1", "1", "w1", 111.0).claim is Claim.NEW  # lease over: taken
    assert store.release_owner("w1") == 1  # w1 restarted: its marks go
    assert store.claim_call("CP1", "1", "w0", 112.0).claim is Claim.NEW


@pytest.mark.parametrize("mark", [False, True])
def test_another_call_under_an_answered_id_is_new(store: SqliteStore, mark: bool) -> None:
    """A fingerprint that differs from the stored answer's (a station whose ids started over)
    is another CALL: NEW, and its answer replaces the old one; the same fingerprint, or none
    on either side (an answer stored by an earlier layout), is a repeat."""
    assert store.finish_calls([finish("CP1", "1", b"old", fingerprint=11)]) == [None]
    same = store.claim_call("CP1", "1", "w0", 101.0, mark=mark, fingerprint=11)
    assert (same.claim, same.response) == (Claim.DONE, b"old")
    unknown = store.claim_call("CP1", "1", "w0", 101.0, mark=mark)
    assert unknown.claim is Claim.DONE
    other = store.claim_call("CP1", "1", "w0", 102.0, mark=mark, fingerprint=22)
    assert other.claim is Claim.NEW
    assert store.finish_calls([finish("CP1", "1", b"new", fingerprint=22)]) == [None]
    assert store.claim_call("CP1", "1", "w1", 103.0, fingerprint=22).response == b"new"
    # a second copy of the new CALL, answered late, finds the new answer (not a third)
    assert store.finish_calls([finish("CP1", "1", b"again", fingerprint=22)]) == [b"new"]
    assert store.claim_call("CP1", "1", "w1", 104.0, fingerprint=11).claim is Claim.NEW


def test_a_late_answer_of_a_claim_taken_over_keeps_the_newer_one(store: SqliteStore) -> None:
    """Two workers (marks): w1's claim of CALL A lapses, w2 claims CALL B under the same id and
    answers it; w1's late answer to A must not replace B's (a repeat of B would run again)."""
    assert store.claim_call("CP1", "1", "w1", 0.0, fingerprint=111).claim is Claim.NEW
    assert store.claim_call("CP1", "1", "w2", 100.0, fingerprint=222).claim is Claim.NEW
    shared = {"replaces": False}
    assert store.finish_calls([finish("CP1", "1", b"B", fingerprint=222, **shared)]) == [None]
    late = store.finish_calls([finish("CP1", "1", b"A", fingerprint=111, **shared)])
    assert late == [b"B"]
    again = store.claim_call("CP1", "1", "w2", 103.0, fingerprint=222)
    assert (again.claim, again.response) == (Claim.DONE, b"B")


def test_an_earlier_layout_gets_the_fingerprint_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE bridge_calls (station TEXT NOT NULL, message_id TEXT NOT NULL, owner TEXT,"
        " started REAL NOT NULL, finished REAL, response BLOB, PRIMARY KEY (station, message_id))"
        " WITHOUT ROWID"
    )
    db.execute("INSERT INTO bridge_calls VALUES ('CP1', '1', NULL, 1.0, 1.0, x'6f6c64')")
    db.commit()
    db.close()
    store = SqliteStore(str(path))
    try:
        assert store.claim_call("CP1", "1", "w0", 2.0, fingerprint=5).response == b"old"
        assert store.finish_calls([finish("CP1", "2", b"two", fingerprint=6)]) == [None]
        assert store.claim_call("CP1", "2", "w0", 3.0, fingerprint=7).claim is Claim.NEW
    finally:
        store.close()


def test_claims_of_one_read_together(store: SqliteStore) -> None:
    """claim_calls: one result per key, in order; answered ones DONE; with marks, a key given
    twice is BUSY the second time and every NEW one is marked for other workers."""
    assert store.finish_calls([finish("CP1", "1", b"one", state={"n": 1})]) == [None]
    keys = [("CP1", "1", None), ("CP1", "2", None), ("CP2", "1", None), ("CP2", "1", None)]
    looked = store.claim_calls(keys, "w0", 101.0, mark=False)
    assert [c.claim for c in looked] == [Claim.DONE, Claim.NEW, Claim.NEW, Claim.NEW]
    assert looked[0].response == b"one" and looked[1].state == {"n": 1}
    marked = store.claim_calls(keys, "w0", 101.0)
    assert [c.claim for c in marked] == [Claim.DONE, Claim.NEW, Claim.NEW, Claim.BUSY]
    assert marked[1].state == {"n": 1}
    other = store.claim_calls(
        [("CP1", "2", None), ("CP2", "1", None), ("CP3", "1", None)], "w1", 102.0
    )
    assert [c.claim for c in other] == [Claim.BUSY, Claim.BUSY, Claim.NEW]
    assert store.claim_calls([], "w0", 103.0) == []


def test_second_copy_loses_and_its_writes_are_dropped(store: SqliteStore) -> None:
    first = finish("CP1", "1", b"first", effects=[("INSERT INTO effects VALUES (?)", ("a",))])
    second = finish("CP1", "1", b"second", effects=[("INSERT INTO effects VALUES (?)", ("b",))])
    assert store.finish_calls([first]) == [None]
    assert store.finish_calls([second]) == [b"first"]
    assert store._db.execute("SELECT v FROM effects").fetchall() == [("a",)]


def test_failed_writes_spoil_only_their_item(store: SqliteStore) -> None:
    """The batch is first tried without savepoints; when one item's writes fail it is done
    again item by item, so the others' writes are there once and the failed item's not at all."""
    good = finish(
        "CP1", "1", b"ok", state={"n": 1}, effects=[("INSERT INTO effects VALUES (?)", ("a",))]
    )
    bad = finish("CP2", "1", b"ok", effects=[("INSERT INTO nowhere VALUES (?)", ("b",))])
    plain = finish("CP3", "1", b"ok", state={"n": 3})
    res = store.finish_calls([good, bad, plain])
    assert res[0] is None and isinstance(res[1], EffectsFailed) and res[2] is None
    assert "nowhere" in str(res[1])
    assert store.claim_call("CP2", "1", "w0", 101.0, mark=False).claim is Claim.NEW
    assert store.claim_call("CP1", "1", "w0", 101.0, mark=False).claim is Claim.DONE
    assert store._db.execute("SELECT v FROM effects").fetchall() == [("a",)]
    assert [store.station_state(s) for s in ("CP1", "CP2", "CP3")] == [{"n": 1}, {}, {"n": 3}]
    assert [s["station"] for s in store.stations()] == ["CP1", "CP3"]


def test_state_given_or_kept_with_the_version(store: SqliteStore) -> None:
    store.finish_calls([finish("CP1", "1", b"a", state={"n": 1})])
    store.finish_calls([Finish("CP1", "2", b"b", "2.1", 101.0)])  # state unchanged
    assert (store.station_state("CP1"), store.station_version("CP1")) == ({"n": 1}, "2.1")
    store.finish_calls([finish("CP1", "3", b"c", state={}, touch_station=False)])
    assert (store.station_state("CP1"), store.station_version("CP1")) == ({}, "2.0.1")


def test_defer_sql_only_inside_the_bridge_and_for_its_database(store: SqliteStore) -> None:
    assert not defer_sql(store.path, [("SELECT 1", ())])
    with collect_effects(store.path) as effects:
        assert defer_sql(store.path, [("INSERT INTO effects VALUES (?)", ("x",))])
        assert not defer_sql("/elsewhere.sqlite3", [("SELECT 1", ())])
        same_file = str(Path(store.path).parent / "." / Path(store.path).name)
        assert defer_sql(same_file, [("INSERT INTO effects VALUES (?)", ("y",))])
    assert effects == [
        ("INSERT INTO effects VALUES (?)", ("x",)),
        ("INSERT INTO effects VALUES (?)", ("y",)),
    ]
    assert not defer_sql(store.path, [("SELECT 1", ())])


def test_prune_forgets_old_answers(store: SqliteStore) -> None:
    store.finish_calls([finish("CP1", "1", b"x")])
    assert store.prune(older_than=50.0) == 0
    assert store.prune(older_than=150.0) == 1
    assert store.claim_call("CP1", "1", "w0", 200.0, mark=False).claim is Claim.NEW


def _worker(path: str, worker: int, n: int, q: Any) -> None:
    s = SqliteStore(path)
    won = 0
    for i in range(n):
        if s.claim_call("CP1", str(i), f"w{worker}", 100.0).claim is Claim.NEW:
            if s.finish_calls([finish("CP1", str(i), b"w%d" % worker)]) == [None]:
                won += 1
    q.put(won)


def test_two_processes_claim_each_call_once(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    SqliteStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(path, w, 200, q)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert q.get(timeout=5) + q.get(timeout=5) == 200


def push(item: object) -> Callable[[Any], tuple[list[object], int]]:
    """An update for update_station_state: append ``item`` to a list; result: the new length."""

    def fn(value: list[object] | None) -> tuple[list[object], int]:
        new = [*(value or []), item]
        return new, len(new)

    return fn


def test_station_state_update_reads_writes_and_deletes(store: SqliteStore) -> None:
    seen: list[object] = []

    def look(value: object) -> tuple[object, str]:
        seen.append(value)
        return value, "looked"

    assert store.update_station_state("CP1", "queue", look, 100.0) == "looked"
    assert seen == [None]  # nothing stored yet
    assert store.scan_station_state("queue") == []  # and None stores nothing
    assert store.update_station_state("CP1", "queue", push({"id": "a"}), 100.0) == 1
    assert store.update_station_state("CP1", "queue", push({"id": "b"}), 101.0) == 2
    assert store.update_station_state("CP2", "queue", push("x"), 101.0) == 1
    assert store.update_station_state("CP2", "other", push("y"), 101.0) == 1
    assert store.scan_station_state("queue") == [
        ("CP1", [{"id": "a"}, {"id": "b"}]),
        ("CP2", ["x"]),
    ]
    assert store.update_station_state("CP1", "queue", lambda v: (None, v), 102.0) == [
        {"id": "a"},
        {"id": "b"},
    ]
    assert store.scan_station_state("queue") == [("CP2", ["x"])]
    assert store.scan_station_state("other") == [("CP2", ["y"])]
    # the values are not the bridge's per-station state (claim results)
    assert store.station_state("CP2") == {}


def test_station_state_update_that_raises_writes_nothing(store: SqliteStore) -> None:
    store.update_station_state("CP1", "n", lambda v: (1, None), 100.0)
    boom = ValueError("no")

    def fail(value: object) -> tuple[object, None]:
        raise boom

    with pytest.raises(ValueError) as info:
        store.update_station_state("CP1", "n", fail, 101.0)
    assert info.value is boom
    with pytest.raises(TypeError):  # not JSON: fails before the write, so nothing is written
        store.update_station_state("CP1", "n", lambda v: ({1, 2}, None), 101.0)
    assert store.scan_station_state("n") == [("CP1", 1)]
    assert not store._db.in_transaction  # rolled back, the connection is usable
    assert store.update_station_state("CP1", "n", lambda v: (v + 1, v + 1), 102.0) == 2  # type: ignore[operator]


def _increment(path: str, n: int, q: Any, start: Any) -> None:
    s = SqliteStore(path)
    start.wait(30)  # both processes opened: now they overlap
    for _ in range(n):
        s.update_station_state("CP1", "counter", lambda v: ((v or 0) + 1, None), 100.0)
    s.close()
    q.put(n)


def test_two_processes_update_one_value_without_losing_any(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    SqliteStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    q, start = ctx.Queue(), ctx.Barrier(2)
    procs = [ctx.Process(target=_increment, args=(path, 200, q, start)) for _ in range(2)]
    for p in procs:
        p.start()
    assert q.get(timeout=60) + q.get(timeout=60) == 400
    for p in procs:
        p.join(10)
    assert SqliteStore(path).scan_station_state("counter") == [("CP1", 400)]


def test_a_repeat_in_the_same_batch_gets_the_first_answer(store: SqliteStore) -> None:
    first = finish("CP1", "1", b"first", effects=[("INSERT INTO effects VALUES (?)", ("a",))])
    again = finish("CP1", "1", b"again", effects=[("INSERT INTO effects VALUES (?)", ("b",))])
    bad = finish("CP2", "1", b"ok", effects=[("INSERT INTO nowhere VALUES (?)", ("c",))])
    assert store.finish_calls([first, again]) == [None, b"first"]
    assert store.finish_calls([finish("CP3", "1", b"x"), finish("CP3", "1", b"y")]) == [None, b"x"]
    # the same when the batch is redone item by item (a handler's writes failed)
    first2 = finish("CP1", "2", b"first", effects=[("INSERT INTO effects VALUES (?)", ("d",))])
    again2 = finish("CP1", "2", b"again", effects=[("INSERT INTO effects VALUES (?)", ("e",))])
    res = store.finish_calls([first2, bad, again2])
    assert res[0] is None and isinstance(res[1], EffectsFailed) and res[2] == b"first"
    assert store._db.execute("SELECT v FROM effects ORDER BY v").fetchall() == [("a",), ("d",)]


def test_a_worker_takes_its_own_abandoned_mark_again(store: SqliteStore) -> None:
    """A worker whose code gave up on a CALL (its session forgot it, the message was left for
    redelivery) claims it again: its own mark from an earlier claim is NEW, not BUSY, or the
    redelivered copy would be acknowledged unanswered. Another worker's mark stays BUSY."""
    assert store.claim_call("CP1", "7", "w0", 100.0).claim is Claim.NEW
    assert store.claim_call("CP1", "7", "w1", 101.0).claim is Claim.BUSY  # in hand at w0
    assert store.claim_call("CP1", "7", "w0", 102.0).claim is Claim.NEW  # w0 asks again
    # within one claim, the second copy of a key is still BUSY
    twice = store.claim_calls([("CP1", "8", None), ("CP1", "8", None)], "w0", 103.0)
    assert [c.claim for c in twice] == [Claim.NEW, Claim.BUSY]


def test_look_up_calls_reads_committed_answers_on_its_own_connection(tmp_path: Path) -> None:
    """One worker's lookups run in the event loop on a read-only connection (WAL: the writer
    never holds them up); an in-memory database, which no second connection sees, says None."""
    store = SqliteStore(str(tmp_path / "b.db"))
    assert store.finish_calls([finish("CP1", "1", b"x")]) == [None]
    got = store.look_up_calls([("CP1", "1", None), ("CP1", "2", None)])
    assert got is not None and [c.claim for c in got] == [Claim.DONE, Claim.NEW]
    assert got[0].response == b"x"
    # the writer holding its write lock does not make the reader wait
    store._db.execute("BEGIN IMMEDIATE")
    try:
        t0 = time.monotonic()
        again = store.look_up_calls([("CP1", "1", None)])
        assert again is not None and again[0].claim is Claim.DONE
        assert time.monotonic() - t0 < 0.5
    finally:
        store._db.execute("ROLLBACK")
    store.close()
    assert SqliteStore(":memory:").look_up_calls([("CP1", "1", None)]) is None
