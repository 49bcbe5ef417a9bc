"""A damaged ``outbox.db`` (a page torn by a power cut, a failing SD card): the outbox opens
anyway, with the rows SQLite can still read, the damaged file set aside and an error logged;
counters above every id kept; a recovery a crash interrupted is finished on the next open; and
a station whose file was damaged boots and charges again. Real SQLite files, no broker."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from station_harness import T0, Bench, ScriptedEvse, event_type, tx_messages

from ocpp_iot.charger_node import tx_records
from ocpp_iot.charger_node.outbox import PAGE_SIZE, Outbox
from ocpp_iot.charger_node.outbox_recovery import TX_KEY, salvage


def tx_event(event: str, tid: str) -> dict[str, Any]:
    return {
        "eventType": event,
        "timestamp": "2026-12-02T03:00:00Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 0,
        "transactionInfo": {"transactionId": tid},
        "meterValue": [{"timestamp": "2026-12-02T03:00:00Z", "sampledValue": [{"value": 1.0}]}]
        * 20,  # a few rows a page: the queue spans many pages
    }


def queued_file(path: Path, updates: int = 60) -> tuple[str, list[str]]:
    """An outbox with a transaction queued (Started and ``updates`` Updated), closed."""
    with Outbox(path) as box:
        tid = box.next_transaction_id()
        ids = [box.put("TransactionEvent", tx_event("Started", tid), now=1.0).entry.message_id]
        ids += [
            box.put("TransactionEvent", tx_event("Updated", tid), now=2.0).entry.message_id
            for _ in range(updates)
        ]
    return tid, ids


def leaf_pages(path: Path, table: str) -> list[int]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
            (table,),
        ).fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


def scribble(path: Path, page: int, at: int = 8, size: int = 200) -> None:
    with open(path, "r+b") as f:
        f.seek((page - 1) * PAGE_SIZE + at)
        f.write(b"\xff" * size)


def damaged_copies(path: Path) -> list[str]:
    """The damaged files set aside (their -wal and -shm beside them not counted)."""
    return sorted(p.name for p in path.parent.glob(path.name + ".damaged-*[0-9]"))


def test_a_file_that_is_not_a_database_is_set_aside_and_the_outbox_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.db"
    queued_file(path)
    with open(path, "r+b") as f:
        f.write(b"\x00garbage" * 16)  # the header: "file is not a database"
    with caplog.at_level(logging.ERROR), Outbox(path) as box:
        assert box.depth() == 0
        tid = box.next_transaction_id()
        box.put("TransactionEvent", tx_event("Started", tid), now=3.0)
    assert damaged_copies(path) == ["outbox.db.damaged-1"]
    assert any("was damaged" in r.getMessage() for r in caplog.records)
    with Outbox(path) as box:  # the new file is sound: no second recovery
        assert box.depth() == 1
    assert damaged_copies(path) == ["outbox.db.damaged-1"]


def test_a_torn_page_keeps_the_rows_before_it_and_the_counters_above_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    tid, ids = queued_file(path)
    pages = leaf_pages(path, "outbox")
    assert len(pages) > 6
    scribble(path, pages[len(pages) // 2])
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):  # a station died of it
        db.execute("SELECT payload FROM outbox").fetchall()
    db.close()
    with Outbox(path) as box:
        kept = [e.message_id for e in box.entries()]
        assert 0 < len(kept) < len(ids)
        assert kept == ids[: len(kept)]  # the head of the queue, in order
        new = box.put("TransactionEvent", tx_event("Updated", tid), now=3.0).entry
        assert new.message_id not in ids  # no id handed out twice
        assert new.payload["seqNo"] >= len(kept)  # no seqNo again for this transaction
        assert box.next_transaction_id() != tid
    assert damaged_copies(path) == ["outbox.db.damaged-1"]


def test_with_the_counters_lost_the_ids_go_on_above_the_rows_kept(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    tid, ids = queued_file(path)
    with Outbox(path) as box:  # a transaction record, as TxRecords keeps one
        box.keep(TX_KEY + "z", {"connector": 1}, durable=True)  # base 36: 35
    (page,) = leaf_pages(path, "counters")
    scribble(path, page, at=0, size=PAGE_SIZE)
    with Outbox(path) as box:
        assert [e.message_id for e in box.entries()] == ids
        assert TX_KEY + "z" in box.kept(TX_KEY)
        new = box.put("TransactionEvent", tx_event("Updated", tid), now=3.0).entry
        assert new.message_id not in ids
        assert new.payload["seqNo"] == len(ids)  # from the seq_no table or the queue
        assert box.next_transaction_id() == "10"  # 36


def test_the_transaction_record_key_is_the_one_tx_records_keeps() -> None:
    assert TX_KEY == tx_records.TX_KEY


def test_damage_only_quick_check_sees_is_recovered_too(tmp_path: Path) -> None:
    """The last leaf page of the queue torn: SQLite opens the file and reads its schema
    without a complaint (before, the station died later, at the first read of its queue)."""
    path = tmp_path / "outbox.db"
    _, ids = queued_file(path)
    scribble(path, leaf_pages(path, "outbox")[-1])
    with Outbox(path) as box:
        assert [e.message_id for e in box.entries()] == ids[: box.depth()]
        assert box.depth() < len(ids)
    assert len(damaged_copies(path)) == 1


def test_a_recovery_cut_short_before_its_last_rename_is_finished(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    _, ids = queued_file(path, updates=3)
    os.replace(path, path.with_name("outbox.db.recovered"))  # step 3 done, step 4 not
    with Outbox(path) as box:
        assert [e.message_id for e in box.entries()] == ids
    assert not path.with_name("outbox.db.recovered").exists()


def test_salvage_of_random_bytes_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(os.urandom(4096))
    tables = {"outbox": ["pos", "payload"], "kept": ["key"]}
    assert salvage(path, tables) == {"outbox": [], "kept": []}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_station_whose_outbox_was_damaged_boots_and_charges(tmp_path: Path, version: str) -> None:
    evse = ScriptedEvse(1)
    b = Bench(tmp_path, version, evse=evse).start()
    evse.at(T0 + 10, "plug")
    evse.at(T0 + 11, "token")
    b.run(120)
    assert b.machine.tx.active()
    path = b.dir / "outbox.db"
    b.machine.outbox.close()
    with open(path, "r+b") as f:
        f.write(b"\xff" * 100)  # a torn first page
    evse.at(b.now + 30, "unplug")
    b.kill()  # made again from the same files: the outbox recovers on open
    assert b.machine.registration == "accepted"
    evse.at(b.now + 60, "plug")
    evse.at(b.now + 61, "token")
    evse.at(b.now + 200, "unplug")
    b.run(300)
    txm = tx_messages(b.csms.calls())
    assert txm[-1].action == ("StopTransaction" if version == "1.6" else "TransactionEvent")
    if version != "1.6":
        assert event_type(txm[-1]) == "Ended"
    assert b.outbox.depth() == 0
    assert damaged_copies(path) == ["outbox.db.damaged-1"]
