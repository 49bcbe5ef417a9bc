"""The reference charge system on its own: typed requests in, typed responses out, SQLite rows.

No broker and no bridge: the methods are called directly (and through ``dispatch`` where the
wire form matters). Writes inside a bridge CALL are collected with ``collect_effects`` and
committed with the bridge's answer by a ``SqliteStore``, as the bridge does.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rfc3339_validator import validate_rfc3339  # type: ignore[import-untyped]

from ocpp_iot.behaviours import Context, dispatch
from ocpp_iot.behaviours import v16 as b16
from ocpp_iot.behaviours import v21 as b21
from ocpp_iot.behaviours import v201 as b201
from ocpp_iot.bridge.reference import (
    Recorder,
    ReferenceChargeSystem16,
    ReferenceChargeSystem21,
    ReferenceChargeSystem201,
    build_reference,
    utc_now,
)
from ocpp_iot.bridge.store import Finish, SqliteStore, collect_effects
from ocpp_iot.model import parse, v16, v21, v201
from ocpp_iot.rpc import Call, CallResult

TX = "c3baea9e-13de-4f86-ab10-31d0f646e1f4"
T0 = "2026-06-05T12:53:48.074Z"
OCPP_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"  # what utc_now writes


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "bridge.sqlite3")


@pytest.fixture
def recorder(db: str) -> Iterator[Recorder]:
    r = Recorder(db)
    yield r
    r.close()


def rows(db: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def ctx(message_id: str = "m1", version: str = "2.0.1", station: str = "CP1") -> Context:
    return Context(station, message_id, version)


def assert_now(stamp: str) -> None:
    """``stamp`` is an OCPP time of about now."""
    assert validate_rfc3339(stamp)
    assert len(stamp) == len("2026-06-05T12:53:48.074Z") and stamp.endswith("Z")
    then = datetime.fromisoformat(stamp)
    assert abs(then - datetime.now(UTC)) < timedelta(seconds=5)


def tx_event(event: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {
        "eventType": event,
        "timestamp": f"2026-06-05T12:5{seq}:48.074Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq,
        "transactionInfo": {"transactionId": TX, **extra.pop("info", {})},
        **extra,
    }


def energy(wh: float, *more: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": T0,
            "sampledValue": [
                {
                    "value": wh,
                    "measurand": "Energy.Active.Import.Register",
                    "unitOfMeasure": {"unit": "Wh"},
                },
                *more,
            ],
        }
    ]


# --- the classes ------------------------------------------------------------------------------


def test_build_reference_makes_the_module_level_classes(db: str) -> None:
    handlers = build_reference(db, ["TOKEN-1"])
    assert sorted(handlers) == ["1.6", "2.0.1", "2.1"]
    assert type(handlers["1.6"]) is ReferenceChargeSystem16
    assert type(handlers["2.0.1"]) is ReferenceChargeSystem201
    assert type(handlers["2.1"]) is ReferenceChargeSystem21
    assert isinstance(handlers["1.6"], b16.ChargeSystem)
    assert isinstance(handlers["2.0.1"], b201.BasicChargeSystem)
    assert isinstance(handlers["2.1"], b21.BasicChargeSystem)
    for version, h in handlers.items():
        assert h.version == version
        assert getattr(h, "inline", False) is True  # the bridge runs it in its event loop
    # one recorder for all of them
    assert len({id(h.recorder) for h in handlers.values()}) == 1  # type: ignore[attr-defined]
    only = build_reference(db, versions=("2.0.1",))
    assert list(only) == ["2.0.1"]


def test_no_allow_list_is_warned_about(db: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ocpp_iot.bridge.reference"):
        build_reference(db, ["TOKEN-1"])
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="ocpp_iot.bridge.reference"):
        build_reference(db)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "allow-list" in caplog.records[0].getMessage()


# --- boot and heartbeat -------------------------------------------------------------------------


def test_boot_accepted_with_the_interval(recorder: Recorder, db: str) -> None:
    cs = ReferenceChargeSystem201(recorder, ["TOKEN-1"], 60)
    payload = {"chargingStation": {"model": "S", "vendorName": "V"}, "reason": "PowerUp"}
    c = ctx("boot-1")
    res = cs.boot_notification(parse(v201.BootNotificationRequest, payload), c)
    assert isinstance(res, v201.BootNotificationResponse)
    assert res.status is v201.RegistrationStatusEnumType.ACCEPTED
    assert res.interval == 60
    assert_now(res.current_time)
    assert c.state["booted"] == res.current_time
    assert rows(db, "SELECT station, message_id, version, action, payload FROM ref_events") == [
        ("CP1", "boot-1", "2.0.1", "BootNotification", json.dumps(payload, separators=(",", ":")))
    ]


def test_boot_of_21_and_16(recorder: Recorder) -> None:
    cs21 = ReferenceChargeSystem21(recorder, None, 30)
    boot21 = {"chargingStation": {"model": "S", "vendorName": "V"}, "reason": "PowerUp"}
    r21 = cs21.boot_notification(parse(v21.BootNotificationRequest, boot21), ctx(version="2.1"))
    assert isinstance(r21, v21.BootNotificationResponse)
    assert (r21.status, r21.interval) == ("Accepted", 30)
    cs16 = ReferenceChargeSystem16(recorder, None, 45)
    boot16 = {"chargePointVendor": "V", "chargePointModel": "M"}
    r16 = cs16.boot_notification(parse(v16.BootNotificationRequest, boot16), ctx(version="1.6"))
    assert isinstance(r16, v16.BootNotificationResponse)
    assert (r16.status, r16.interval) == ("Accepted", 45)
    assert_now(r16.current_time)


def test_build_reference_passes_the_interval_on(db: str) -> None:
    cs = build_reference(db, heartbeat_interval=123, versions=("2.0.1",))["2.0.1"]
    boot = {"chargingStation": {"model": "S", "vendorName": "V"}, "reason": "PowerUp"}
    answer = dispatch(cs, Call("b1", "BootNotification", boot), ctx("b1"))
    assert isinstance(answer, CallResult)
    assert answer.payload["interval"] == 123 and answer.payload["status"] == "Accepted"


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_heartbeat_current_time(db: str, version: str) -> None:
    cs = build_reference(db, versions=(version,))[version]
    before = rows(db, "SELECT COUNT(*) FROM ref_events")
    answer = dispatch(cs, Call("h1", "Heartbeat", {}), ctx("h1", version))
    assert isinstance(answer, CallResult)
    assert list(answer.payload) == ["currentTime"]
    assert_now(answer.payload["currentTime"])
    assert rows(db, "SELECT COUNT(*) FROM ref_events") == before  # heartbeats are not recorded


def test_utc_now_is_the_isoformat_with_milliseconds() -> None:
    import re

    for _ in range(1000):
        a = datetime.now(UTC)
        s = utc_now()
        b = datetime.now(UTC)
        assert re.fullmatch(OCPP_TIME, s), s
        got = datetime.fromisoformat(s)
        # truncated to the millisecond, like isoformat(timespec="milliseconds")
        assert a.replace(microsecond=a.microsecond // 1000 * 1000) <= got <= b


# --- authorization ----------------------------------------------------------------------------


def test_authorize_against_the_allow_list_201(recorder: Recorder, db: str) -> None:
    cs = ReferenceChargeSystem201(recorder, ["TOKEN-1"], 300)

    def status(token: str) -> str:
        req = parse(v201.AuthorizeRequest, {"idToken": {"idToken": token, "type": "ISO14443"}})
        res = cs.authorize(req, ctx(token))
        assert isinstance(res, v201.AuthorizeResponse)
        return res.id_token_info.status

    assert status("TOKEN-1") == "Accepted"
    assert status("TOKEN-2") == "Invalid"
    assert rows(db, "SELECT message_id, action FROM ref_events ORDER BY id") == [
        ("TOKEN-1", "Authorize"),
        ("TOKEN-2", "Authorize"),
    ]


def test_authorize_without_an_allow_list_accepts_every_token(recorder: Recorder) -> None:
    cs = ReferenceChargeSystem21(recorder, None, 300)
    req = parse(v21.AuthorizeRequest, {"idToken": {"idToken": "ANY", "type": "ISO14443"}})
    assert cs.authorize(req, ctx(version="2.1")).id_token_info.status == "Accepted"


def test_authorize_16_through_dispatch(db: str) -> None:
    cs = build_reference(db, ["TAG-1"], versions=("1.6",))["1.6"]
    ok = dispatch(cs, Call("a1", "Authorize", {"idTag": "TAG-1"}), ctx("a1", "1.6"))
    bad = dispatch(cs, Call("a2", "Authorize", {"idTag": "TAG-2"}), ctx("a2", "1.6"))
    assert isinstance(ok, CallResult) and isinstance(bad, CallResult)
    assert ok.payload == {"idTagInfo": {"status": "Accepted"}}
    assert bad.payload == {"idTagInfo": {"status": "Invalid"}}


# --- 2.0.1 / 2.1 transactions, committed with the bridge's answer -------------------------------


def commit(store: SqliteStore, c: Context, effects: list[Any]) -> None:
    """Store the answer of ``c``'s CALL with ``effects``, as the bridge does."""
    done = store.finish_calls(
        [Finish(c.station_id, c.message_id, b"[3]", c.version, 1.0, effects=effects)]
    )
    assert done == [None]


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_transaction_started_updated_ended(db: str, version: str) -> None:
    cs = build_reference(db, ["TOKEN-1"], versions=(version,))[version]
    store = SqliteStore(db)
    events = [
        tx_event(
            "Started",
            0,
            idToken={"idToken": "TOKEN-1", "type": "ISO14443"},
            meterValue=energy(1000.0),
        ),
        tx_event(
            "Updated",
            1,
            meterValue=energy(1500.5, {"value": 11000, "measurand": "Power.Active.Import"}),
        ),
        tx_event("Ended", 2, info={"stoppedReason": "EVDisconnected"}, meterValue=energy(2000.0)),
    ]
    answers = []
    for seq, payload in enumerate(events):
        c = ctx(f"tx-{seq}", version)
        with collect_effects(db) as effects:
            answers.append(dispatch(cs, Call(c.message_id, "TransactionEvent", payload), c))
        # nothing is written before the bridge commits the answer
        assert effects and rows(db, "SELECT COUNT(*) FROM ref_events") == [(seq,)]
        commit(store, c, effects)
    assert all(isinstance(a, CallResult) for a in answers)
    payloads = [a.payload for a in answers if isinstance(a, CallResult)]
    assert payloads == [{"idTokenInfo": {"status": "Accepted"}}, {}, {}]
    assert rows(
        db,
        "SELECT message_id, version, transaction_id, seq_no, event_type FROM ref_events"
        " ORDER BY id",
    ) == [
        ("tx-0", version, TX, 0, "Started"),
        ("tx-1", version, TX, 1, "Updated"),
        ("tx-2", version, TX, 2, "Ended"),
    ]
    stored = rows(db, "SELECT payload FROM ref_events ORDER BY id")
    assert [json.loads(p) for (p,) in stored] == events
    assert rows(
        db,
        "SELECT station, transaction_id, id_token, started, ended, stopped_reason, energy_wh "
        "FROM ref_transactions",
    ) == [
        (
            "CP1",
            TX,
            "TOKEN-1",
            events[0]["timestamp"],
            events[2]["timestamp"],
            "EVDisconnected",
            2000.0,
        )
    ]
    assert rows(
        db, "SELECT transaction_id, timestamp, measurand, value, unit FROM ref_meter_values"
    ) == [
        (TX, T0, "Energy.Active.Import.Register", 1000.0, "Wh"),
        (TX, T0, "Energy.Active.Import.Register", 1500.5, "Wh"),
        (TX, T0, "Power.Active.Import", 11000.0, None),
        (TX, T0, "Energy.Active.Import.Register", 2000.0, "Wh"),
    ]
    store.close()


def test_transaction_event_with_an_unknown_token_is_invalid(recorder: Recorder, db: str) -> None:
    cs = ReferenceChargeSystem201(recorder, ["TOKEN-1"], 300)
    payload = tx_event("Started", 0, idToken={"idToken": "STRANGER", "type": "ISO14443"})
    res = cs.transaction_event(parse(v201.TransactionEventRequest, payload), ctx())
    assert isinstance(res, v201.TransactionEventResponse)
    assert res.id_token_info is not None and res.id_token_info.status == "Invalid"
    # recorded all the same: the station reports what happened, the verdict is the answer's
    assert rows(db, "SELECT id_token, started FROM ref_transactions") == [
        ("STRANGER", payload["timestamp"])
    ]


def test_an_event_without_meter_values_keeps_the_energy(recorder: Recorder, db: str) -> None:
    cs = ReferenceChargeSystem201(recorder, None, 300)
    for seq, payload in enumerate(
        [tx_event("Started", 0, meterValue=energy(700.0)), tx_event("Updated", 1)]
    ):
        cs.transaction_event(parse(v201.TransactionEventRequest, payload), ctx(f"m{seq}"))
    assert rows(db, "SELECT energy_wh, id_token, ended FROM ref_transactions") == [
        (700.0, None, None)
    ]


def test_meter_values_status_and_events_recorded(recorder: Recorder, db: str) -> None:
    cs = ReferenceChargeSystem201(recorder, None, 300)
    c = ctx("mv-1")
    res = cs.meter_values(
        parse(v201.MeterValuesRequest, {"evseId": 1, "meterValue": energy(5.0)}), c
    )
    assert isinstance(res, v201.MeterValuesResponse) and res.to_payload() == {}
    status = {
        "timestamp": T0,
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 1,
    }
    cs.status_notification(parse(v201.StatusNotificationRequest, status), ctx("st-1"))
    event = {
        "generatedAt": T0,
        "seqNo": 0,
        "eventData": [
            {
                "eventId": 1,
                "timestamp": T0,
                "trigger": "Alerting",
                "actualValue": "x",
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": "C"},
                "variable": {"name": "V"},
            }
        ],
    }
    cs.notify_event(parse(v201.NotifyEventRequest, event), ctx("ev-1"))
    assert rows(db, "SELECT message_id, action FROM ref_events ORDER BY id") == [
        ("mv-1", "MeterValues"),
        ("st-1", "StatusNotification"),
        ("ev-1", "NotifyEvent"),
    ]
    assert rows(db, "SELECT transaction_id, value FROM ref_meter_values") == [(None, 5.0)]


def test_a_failed_write_leaves_nothing(recorder: Recorder, db: str) -> None:
    """Outside the bridge each record is one transaction of its own: all rows or none."""
    cs = ReferenceChargeSystem201(recorder, None, 300)
    rows(db, "DROP TABLE ref_meter_values")
    with pytest.raises(sqlite3.OperationalError):
        cs.transaction_event(
            parse(v201.TransactionEventRequest, tx_event("Started", 0, meterValue=energy(1.0))),
            ctx(),
        )
    assert rows(db, "SELECT COUNT(*) FROM ref_events") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM ref_transactions") == [(0,)]


# --- 1.6 transactions -------------------------------------------------------------------------


def test_16_start_and_stop_transaction(db: str) -> None:
    cs = build_reference(db, ["TAG-1"], versions=("1.6",))["1.6"]
    assert isinstance(cs, ReferenceChargeSystem16)
    start = {"connectorId": 1, "idTag": "TAG-1", "meterStart": 100, "timestamp": T0}
    first = cs.start_transaction(parse(v16.StartTransactionRequest, start), ctx("s1", "1.6"))
    other = cs.start_transaction(
        parse(v16.StartTransactionRequest, {**start, "idTag": "TAG-9"}),
        ctx("s2", "1.6", station="CP2"),
    )
    assert isinstance(first, v16.StartTransactionResponse)
    assert first.id_tag_info.status == "Accepted" and other.id_tag_info.status == "Invalid"
    assert other.transaction_id > first.transaction_id > 0  # numbered by the charge system
    stop = {
        "meterStop": 2500,
        "timestamp": "2026-06-05T13:13:38.074Z",
        "transactionId": first.transaction_id,
        "reason": "EVDisconnected",
        "transactionData": [
            {
                "timestamp": T0,
                "sampledValue": [
                    {"value": "2400", "unit": "Wh"},
                    {"value": "0A1B", "format": "SignedData"},  # not a number: left out
                ],
            }
        ],
    }
    c = ctx("s3", "1.6")
    with collect_effects(db) as effects:
        answer = dispatch(cs, Call("s3", "StopTransaction", stop), c)
    assert isinstance(answer, CallResult) and answer.payload == {}
    commit(SqliteStore(db), c, effects)
    tx = str(first.transaction_id)
    assert rows(
        db,
        "SELECT station, id_token, started, ended, stopped_reason, energy_wh "
        "FROM ref_transactions WHERE transaction_id=?",
        tx,
    ) == [("CP1", "TAG-1", T0, stop["timestamp"], "EVDisconnected", 2500.0)]
    assert rows(db, "SELECT transaction_id, event_type FROM ref_events ORDER BY id") == [
        (tx, "Started"),
        (str(other.transaction_id), "Started"),
        (tx, "Ended"),
    ]
    assert rows(db, "SELECT transaction_id, measurand, value, unit FROM ref_meter_values") == [
        (tx, "Energy.Active.Import.Register", 2400.0, "Wh")
    ]


def test_16_meter_values_with_and_without_a_transaction(recorder: Recorder, db: str) -> None:
    cs = ReferenceChargeSystem16(recorder, None, 300)
    mv = [{"timestamp": T0, "sampledValue": [{"value": "12.5", "measurand": "Current.Import"}]}]
    for mid, extra in (("mv1", {"transactionId": 7}), ("mv2", {})):
        req = parse(v16.MeterValuesRequest, {"connectorId": 1, "meterValue": mv, **extra})
        assert cs.meter_values(req, ctx(mid, "1.6")).to_payload() == {}
    assert rows(db, "SELECT transaction_id, measurand, value FROM ref_meter_values") == [
        ("7", "Current.Import", 12.5),
        (None, "Current.Import", 12.5),
    ]


def test_16_transaction_ids_survive_a_restart(db: str) -> None:
    start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": T0}
    ids = []
    for _ in range(2):  # a new recorder on the same file: no id is given twice
        cs = build_reference(db, versions=("1.6",))["1.6"]
        for i in range(2):
            res = dispatch(cs, Call(f"s{i}", "StartTransaction", start), ctx(f"s{i}", "1.6"))
            assert isinstance(res, CallResult)
            ids.append(res.payload["transactionId"])
        cs.recorder.close()  # type: ignore[attr-defined]
    assert len(set(ids)) == 4 and ids == sorted(ids)


def test_received_time_is_recorded(recorder: Recorder, db: str) -> None:
    cs = ReferenceChargeSystem201(recorder, None, 300)
    status = {"timestamp": T0, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
    t0 = time.time()
    cs.status_notification(parse(v201.StatusNotificationRequest, status), ctx())
    [(received,)] = rows(db, "SELECT received FROM ref_events")
    assert_now(received)
    assert datetime.fromisoformat(received).timestamp() >= t0 - 0.001


def test_the_energy_is_the_last_register_reading(recorder: Recorder, db: str) -> None:
    cs = ReferenceChargeSystem201(recorder, None, 300)
    later = {**energy(1600.0)[0], "timestamp": "2026-06-05T12:54:48.074Z"}
    payload = tx_event("Updated", 1, meterValue=[*energy(1500.0), later])
    cs.transaction_event(parse(v201.TransactionEventRequest, payload), ctx())
    assert rows(db, "SELECT energy_wh FROM ref_transactions") == [(1600.0,)]
