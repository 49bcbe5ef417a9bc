"""The bridge's logic on the in-memory broker (no mosquitto): sessions, acknowledgement only
once handled, calls to stations and their timeouts, answers in order, OCPP-J stations, operator
CALL validation, duplicates, the station summary and two workers.

Every wait is on an event (a message, or a condition polled with a deadline); the few waits of
a fixed length check that nothing *more* arrives. End-to-end and fault tests on a real broker
are in ``test_bridge_session.py``, ``test_bridge_faults.py`` and ``test_bridge_malformed.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from bridge_memory_helpers import (
    BRIDGE_ID,
    T0,
    Acks,
    Counting,
    Operator,
    Station,
    more_messages,
    next_message,
    running,
    until,
)
from conftest import rows
from raw_station import MODEL, charging_session_201

from ocpp_iot.behaviours import Context
from ocpp_iot.bridge import _wire
from ocpp_iot.bridge.config import CallTimeout
from ocpp_iot.bridge.reference import build_reference
from ocpp_iot.bridge.store import SqliteStore
from ocpp_iot.rpc import Call, CallError, CallResult, ErrorCode
from ocpp_iot.transports.memory import MemoryBroker
from ocpp_iot.transports.settings import Message, MqttSettings

BOOT = charging_session_201("X")[0][1]
JSON = "application/json"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def db_of(tmp_path: Path) -> str:
    return str(tmp_path / "bridge.sqlite3")


class FlakyStore(SqliteStore):
    """A SQLite store whose ``method`` fails its first ``failures`` calls as a locked database
    does. The last failing call holds until :attr:`release` is set, so a test can look at the
    bridge while the store is failing (:attr:`failing` says it is there)."""

    def __init__(self, path: str, method: str, failures: int = 2) -> None:
        super().__init__(path)
        self.method = method
        self.left = failures
        self.calls = 0
        self.failing = threading.Event()
        self.release = threading.Event()

    def _maybe_fail(self, name: str) -> None:
        if name != self.method:
            return
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            if self.left == 0:
                self.failing.set()
                self.release.wait(5)
            raise sqlite3.OperationalError("database is locked")

    def claim_calls(self, *args: Any, **kw: Any) -> Any:
        self._maybe_fail("claim_calls")
        return super().claim_calls(*args, **kw)

    def look_up_calls(self, keys: Any) -> Any:
        # a failing lookup goes to the database thread's claim_calls (as when busy), which fails
        return None if self.method == "claim_calls" else super().look_up_calls(keys)

    def claim_calls_now(self, *args: Any) -> Any:
        # failing, the loop's connection gives up (as when locked): the database thread's
        # claim_calls, which fails
        return None if self.method == "claim_calls" else super().claim_calls_now(*args)

    def finish_calls(self, *args: Any, **kw: Any) -> Any:
        self._maybe_fail("finish_calls")
        return super().finish_calls(*args, **kw)

    def finish_calls_now(self, items: Any) -> Any:
        return None if self.method == "finish_calls" else super().finish_calls_now(items)

    def update_station_state(self, *args: Any, **kw: Any) -> Any:
        self._maybe_fail("update_station_state")
        return super().update_station_state(*args, **kw)


# -- 1. a whole session ------------------------------------------------------------------------


def test_whole_201_session_with_the_reference_system(tmp_path: Path) -> None:
    """Every CALL of a charging session, published back to back, is answered, in order, by
    the reference charge system, which recorded each event once."""
    db = db_of(tmp_path)
    calls = charging_session_201("CP1", updates=3, transaction_id="tx-1")
    calls.append(("Authorize", {"idToken": {"idToken": "STOLEN", "type": "ISO14443"}}))

    async def scenario() -> list[Any]:
        broker = MemoryBroker()
        async with running(broker, db, build_reference(db, allow=["TOKEN-1"])):
            st = await Station(broker, "CP1").start()
            for i, (action, payload) in enumerate(calls, 1):
                st.call(str(i), action, payload)
            return [await st.frame() for _ in calls]

    answers = run(scenario())
    assert [a.message_id for a in answers] == [str(i) for i in range(1, len(calls) + 1)]
    assert all(isinstance(a, CallResult) for a in answers), answers
    assert [a.action for a in answers] == [action for action, _ in calls]
    assert answers[0].payload["status"] == "Accepted"
    assert answers[2].payload == {"idTokenInfo": {"status": "Accepted"}}
    assert answers[-1].payload == {"idTokenInfo": {"status": "Invalid"}}
    assert "currentTime" in answers[-2].payload
    events = rows(
        Path(db),
        "SELECT seq_no, event_type FROM ref_events WHERE action='TransactionEvent' ORDER BY id",
    )
    assert events == [(0, "Started"), (1, "Updated"), (2, "Updated"), (3, "Updated"), (4, "Ended")]
    assert rows(Path(db), "SELECT id_token, stopped_reason, energy_wh FROM ref_transactions") == [
        ("TOKEN-1", "EVDisconnected", 3 * 1850.0)
    ]
    assert rows(Path(db), "SELECT version FROM bridge_stations WHERE station='CP1'") == [("2.0.1",)]
    recorded = len(calls) - 1  # every CALL but the Heartbeat, each once
    assert rows(Path(db), "SELECT COUNT(*), COUNT(DISTINCT message_id) FROM ref_events") == [
        (recorded, recorded)
    ]


# -- 2-4. acknowledged only when handled -------------------------------------------------------


@pytest.mark.parametrize("method", ["claim_calls", "finish_calls"])
def test_store_failure_leaves_the_call_unacknowledged_until_handled(
    tmp_path: Path, method: str
) -> None:
    """While the store fails (looking the CALL up, or storing its answer), nothing is sent on
    ``down`` and the CALL stays unacknowledged in the bridge's session; once the store answers
    again, the CALL is answered once, its handler has run once, and it is acknowledged."""
    store = FlakyStore(db_of(tmp_path), method)
    handler = Counting()
    up = "ocpp/CP1/up"

    async def scenario() -> None:
        broker = MemoryBroker()
        acks = Acks(broker)
        mirror = broker.client(MqttSettings(client_id="explorer"))
        mirror.subscribe("ocpp/CP1/json/down")
        assert await mirror.start(5)
        try:
            async with running(broker, store, {"2.0.1": handler}, acks=acks, store_retry=0.05):
                st = await Station(broker, "CP1").start()
                data = st.call("h1", "Heartbeat", {})
                await until(store.failing.is_set, f"the second failing {method}")
                # the store is failing now
                assert handler.runs == (
                    [] if method == "claim_calls" else [("CP1", "Heartbeat", "h1")]
                )
                assert await more_messages(st.client, 0.05) == []
                assert await more_messages(mirror, 0) == []
                assert acks.of(up) == []
                assert broker.session_queue(BRIDGE_ID) == 1
                store.release.set()
                answer = await st.frame()
                assert isinstance(answer, CallResult) and answer.message_id == "h1"
                await until(lambda: broker.session_queue(BRIDGE_ID) == 0, "the ack")
                assert acks.of(up) == [data]
                assert await more_messages(st.client, 0.1) == []  # exactly one answer
                assert len(await more_messages(mirror, 0)) == 1
        finally:
            store.release.set()

    run(scenario())
    assert handler.runs == [("CP1", "Heartbeat", "h1")]
    assert store.calls == 3  # two failures, then the one that worked


def test_another_workers_write_lock_holds_answers_not_the_loop(tmp_path: Path) -> None:
    """The answers are stored in the event loop only when that never waits: while another
    connection (another worker) holds the database's write lock, the answers wait for it on
    the database thread, unsent and unacknowledged, and the loop keeps running; once the lock
    is released each CALL is answered once, in order, and acknowledged."""
    db = db_of(tmp_path)
    handler = Counting()
    up = "ocpp/CP1/up"

    async def scenario() -> None:
        broker = MemoryBroker()
        acks = Acks(broker)
        async with running(broker, db, {"2.0.1": handler}, acks=acks):
            st = await Station(broker, "CP1").start()
            assert isinstance(await st.rpc("h0", "Heartbeat", {}), CallResult)
            other = sqlite3.connect(db, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                sent = [st.call(f"h{i}", "Heartbeat", {}) for i in (1, 2, 3)]
                await until(lambda: len(handler.runs) == 4, "the handler runs")
                loop = asyncio.get_running_loop()
                start = loop.time()
                for _ in range(20):  # a loop waiting for the lock would stall these
                    await asyncio.sleep(0.01)
                assert loop.time() - start < 2.0
                assert await more_messages(st.client, 0.05) == []
                assert len(acks.of(up)) == 1  # h0's only
            finally:
                other.execute("COMMIT")
                other.close()
            answers = [await st.frame() for _ in sent]
            assert [a.message_id for a in answers] == ["h1", "h2", "h3"]
            await until(lambda: len(acks.of(up)) == 4, "the acks")
            assert acks.of(up)[1:] == sent
            assert await more_messages(st.client, 0.05) == []

    run(scenario())
    assert [mid for _, _, mid in handler.runs] == ["h0", "h1", "h2", "h3"]


def test_routing_failure_leaves_the_frame_for_redelivery(tmp_path: Path) -> None:
    """A frame whose routing raised is not acknowledged: after the connection drops, the
    broker delivers it again (persistent session) and that copy is handled and answered once."""
    handler = Counting()
    seen: list[Message] = []

    async def scenario() -> None:
        broker = MemoryBroker()
        acks = Acks(broker)
        async with running(broker, db_of(tmp_path), {"2.0.1": handler}, acks=acks) as bridge:
            real_up = bridge._up

            def up_once(station: str, msg: Message) -> None:
                seen.append(msg)
                if len(seen) == 1:
                    raise RuntimeError("a routing bug")
                real_up(station, msg)

            bridge._up = up_once  # type: ignore[method-assign]
            st = await Station(broker, "CP1").start()
            data = st.call("r1", "Heartbeat", {})
            await until(lambda: len(seen) == 1, "the failing route")
            assert await more_messages(st.client, 0.05) == []
            assert acks.of("ocpp/CP1/up") == []
            assert broker.session_queue(BRIDGE_ID) == 1
            assert broker.disconnect(BRIDGE_ID)  # it reconnects on its own
            answer = await st.frame()
            assert isinstance(answer, CallResult) and answer.message_id == "r1"
            await until(lambda: broker.session_queue(BRIDGE_ID) == 0, "the ack")
            assert acks.of("ocpp/CP1/up") == [data]
            assert await more_messages(st.client, 0.1) == []

    run(scenario())
    assert [m.dup for m in seen] == [False, True]
    assert handler.runs == [("CP1", "Heartbeat", "r1")]


def test_store_failure_on_an_operator_call_leaves_it_unacknowledged(tmp_path: Path) -> None:
    """An operator's CALL that could not be queued (the store failed) is not acknowledged:
    after the connection drops it is delivered again and reaches the station."""
    store = FlakyStore(db_of(tmp_path), "update_station_state", failures=1)
    store.release.set()

    async def scenario() -> None:
        broker = MemoryBroker()
        acks = Acks(broker)
        async with running(broker, store, {"2.0.1": Counting()}, acks=acks):
            st = await Station(broker, "CP1").start()
            op = await Operator(broker, "CP1").start()
            op.call("op-1", "Reset", {"type": "Immediate"})
            await until(lambda: store.calls == 1, "the failing store")
            await more_messages(st.client, 0.05)
            assert acks.of("ocpp/CP1/json/call") == []
            assert broker.session_queue(BRIDGE_ID) == 1
            assert broker.disconnect(BRIDGE_ID)
            call = await st.frame(2)
            assert isinstance(call, Call) and call.action == "Reset"

    run(scenario())


# -- 5-6. calls to stations and their timeouts ---------------------------------------------------


def _reset_error(result: list[Any], op_id: str) -> None:
    assert result[:3] == [4, op_id, ErrorCode.GENERIC_ERROR], result
    assert result[4] == {}  # nothing signalled through error_details


def test_queued_operator_call_is_never_sent_after_its_patience(tmp_path: Path) -> None:
    """OCPP-J 4.1.1: one CALL outstanding per station. The second operator CALL waits behind
    the first, which the station never answers; both give up (GenericError under the operator's
    own ids) and the second is never sent, then or later."""

    async def scenario() -> None:
        broker = MemoryBroker()
        async with running(broker, db_of(tmp_path), {"2.0.1": Counting()}, call_timeout=0.3):
            st = await Station(broker, "CP1").start()
            op = await Operator(broker, "CP1").start()
            op.call("op-1", "Reset", {"type": "Immediate"})
            op.call("op-2", "Reset", {"type": "OnIdle"})
            first = await st.frame()
            assert isinstance(first, Call)
            assert (first.action, first.payload) == ("Reset", {"type": "Immediate"})
            results = [await op.result(3), await op.result(3)]
            _reset_error(results[0], "op-1")
            _reset_error(results[1], "op-2")
            # past two call timeouts and the bridge's next housekeeping round: nothing more
            assert await more_messages(st.client, 1.2) == []
            assert await more_messages(op.client, 0) == []

    run(scenario())


def test_queued_call_not_sent_when_the_outstanding_one_is_answered_late(tmp_path: Path) -> None:
    """The station answers the first CALL after the second ran out of patience: the answer
    frees the slot, but the abandoned CALL is not sent."""

    async def scenario() -> None:
        broker = MemoryBroker()
        async with running(broker, db_of(tmp_path), {"2.0.1": Counting()}, call_timeout=0.3):
            st = await Station(broker, "CP1").start()
            op = await Operator(broker, "CP1").start()
            op.call("op-1", "Reset", {"type": "Immediate"})
            first = await st.frame()
            sent = time.monotonic()
            op.call("op-2", "Reset", {"type": "OnIdle"})
            await until(lambda: time.monotonic() - sent > 0.4, "the second CALL's patience")
            assert isinstance(first, Call)
            st.answer(first, {"status": "Accepted"})
            results = {r[1]: r for r in [await op.result(3), await op.result(3)]}
            assert set(results) == {"op-1", "op-2"}
            _reset_error(results["op-2"], "op-2")
            assert await more_messages(st.client, 1.2) == []

    run(scenario())


def test_call_station_timeout_abandons_the_queued_call(tmp_path: Path) -> None:
    """``Bridge.call_station(..., timeout=)``: a CALL queued behind an outstanding one whose
    caller stopped waiting (CallTimeout) is never sent afterwards."""

    async def scenario() -> None:
        broker = MemoryBroker()
        async with running(
            broker, db_of(tmp_path), {"2.0.1": Counting()}, call_timeout=5.0
        ) as bridge:
            st = await Station(broker, "CP1").start()
            op = await Operator(broker, "CP1").start()
            op.call("op-1", "Reset", {"type": "Immediate"})
            first = await st.frame()
            with pytest.raises(CallTimeout):
                await bridge.call_station("CP1", "Reset", {"type": "OnIdle"}, timeout=0.2)
            assert isinstance(first, Call)
            st.answer(first, {"status": "Accepted"})
            assert (await op.result(3))[:2] == [3, "op-1"]
            assert await more_messages(st.client, 0.3) == []  # the abandoned CALL stays unsent

    run(scenario())


class CallingBack(Counting):
    """On Heartbeat, asks the station to reset (``ctx.call`` in an ``async def``) and keeps
    what came back: the answer or the exception."""

    def __init__(self, runs: list[tuple[str, str, str]] | None = None) -> None:
        super().__init__(runs)
        self.got: list[tuple[str, object]] = []

    async def _call_back(self, action: str, ctx: Context) -> None:
        self._ran(action, ctx)
        try:
            self.got.append((ctx.message_id, await ctx.call("Reset", {"type": "OnIdle"})))
        except CallTimeout as exc:
            self.got.append((ctx.message_id, exc))

    async def heartbeat(self, request: Any, ctx: Context) -> Any:
        await self._call_back("Heartbeat", ctx)
        return {"currentTime": T0}

    async def status_notification(self, request: Any, ctx: Context) -> Any:
        await self._call_back("StatusNotification", ctx)
        return {}


def test_handler_calls_its_station_and_sees_a_timeout(tmp_path: Path) -> None:
    """A handler's ``ctx.call`` returns the station's answer; when the station stays silent it
    raises CallTimeout (not a CALLERROR carrying a marker in its details)."""
    handler = CallingBack()

    async def scenario() -> None:
        broker = MemoryBroker()
        async with running(broker, db_of(tmp_path), {"2.0.1": handler}, call_timeout=0.3):
            st = await Station(broker, "CP1").start()
            st.call("h1", "Heartbeat", {})
            reset = await st.frame()
            assert isinstance(reset, Call) and reset.action == "Reset"
            st.answer(reset, {"status": "Accepted"})
            answer = await st.frame()
            assert isinstance(answer, CallResult) and answer.message_id == "h1"

            st.call("h2", "Heartbeat", {})
            silent = await st.frame()
            assert isinstance(silent, Call) and silent.message_id != reset.message_id
            answer = await st.frame(5)  # once the handler gave up
            assert isinstance(answer, CallResult) and answer.message_id == "h2"
            assert await more_messages(st.client, 0.1) == []

    run(scenario())
    assert handler.got[0] == ("h1", CallResult("1", {"status": "Accepted"}, "Reset"))
    mid, outcome = handler.got[1]
    assert mid == "h2" and type(outcome) is CallTimeout, outcome
    assert len(handler.got) == 2


# -- 7-8. answers in order, OCPP-J stations ----------------------------------------------------


class SlowFirst(Counting):
    """An async Heartbeat that holds CALL "1" until :attr:`gate` opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def heartbeat(self, request: Any, ctx: Context) -> Any:
        self._ran("Heartbeat", ctx)
        if ctx.message_id == "1":
            await self.gate.wait()
        return {"currentTime": T0}


@pytest.mark.parametrize("slow", [False, True], ids=["plain", "async-slow-first"])
def test_answers_in_arrival_order(tmp_path: Path, slow: bool) -> None:
    """CALL, undecodable frame, CALL, back to back: the CALLERROR for the unreadable frame
    (id "-1", OCPP-J 2.0.1 4.2.3) waits its turn between the two answers, also when the first
    CALL's handler is slow."""

    async def scenario() -> list[Any]:
        broker = MemoryBroker()
        handler = SlowFirst() if slow else Counting()
        async with running(broker, db_of(tmp_path), {"2.0.1": handler}) as bridge:
            st = await Station(broker, "CP1").start()
            st.call("1", "Heartbeat", {})
            st.raw(b"\x00garbage")
            st.call("2", "Heartbeat", {})
            if isinstance(handler, SlowFirst):
                await until(
                    lambda: bridge.stats["up"] == 3 and bool(handler.runs), "all three frames"
                )
                assert await more_messages(st.client, 0.05) == []  # nothing overtakes "1"
                handler.gate.set()
            return [await st.frame() for _ in range(3)]

    first, error, second = run(scenario())
    assert isinstance(first, CallResult) and first.message_id == "1"
    assert isinstance(error, CallError)
    assert (error.message_id, error.error_code) == ("-1", ErrorCode.RPC_FRAMEWORK_ERROR)
    assert isinstance(second, CallResult) and second.message_id == "2"


def test_ocppj_stations_are_answered_in_kind(tmp_path: Path) -> None:
    """OCPP-J text on ``up`` (with the MQTT 5 content type, or recognisably JSON without it) is
    answered with OCPP-J marked application/json; compact CBOR with CBOR; a station may move
    from JSON to CBOR."""
    boot = json.dumps(BOOT)

    async def scenario() -> None:
        broker = MemoryBroker()
        async with running(broker, db_of(tmp_path), {"2.0.1": Counting()}):
            typed = await Station(broker, "CP1").start()
            bare = await Station(broker, "CP2").start()
            cbor = await Station(broker, "CP3").start()

            typed.raw(f'[2,"1","BootNotification",{boot}]'.encode(), content_type=JSON)
            bare.raw(f'[2,"1","BootNotification",{boot}]'.encode())
            for st in (typed, bare):
                m = await st.message()
                assert m.content_type == JSON
                msg_type, mid, payload = json.loads(m.payload)
                assert (msg_type, mid, payload["status"]) == (3, "1", "Accepted")
            bare.raw(b'\n[2,"2","Heartbeat",{}]')
            m = await bare.message()
            assert m.content_type == JSON and json.loads(m.payload) == [
                3,
                "2",
                {"currentTime": ANY_TIME},
            ]

            for mid, action, payload in (("1", "BootNotification", BOOT), ("2", "Heartbeat", {})):
                cbor.call(mid, action, payload)
                m = await cbor.message()
                assert m.content_type is None
                version, frame = _wire.decode(m.payload)
                assert version == "2.0.1" and isinstance(frame, CallResult)
                assert frame.message_id == mid

            typed.call("2", "Heartbeat", {})  # now on CBOR
            m = await typed.message()
            assert m.content_type is None
            assert _wire.decode(m.payload)[1].message_id == "2"

    run(scenario())


class _AnyTime:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith("2026-01-01T")

    def __hash__(self) -> int:  # pragma: no cover - not hashed
        return 0


ANY_TIME = _AnyTime()


# -- 9. operators' CALLs validated before they leave -------------------------------------------


def test_invalid_operator_calls_never_reach_the_station(tmp_path: Path) -> None:
    """OCPP-J 4.3: an unknown action is NotImplemented, a payload against the schema a
    constraint violation, an action only stations send NotSupported, unreadable text a
    FormatViolation; all answered on ``json/result``, none sent. A valid CALL goes through."""

    async def scenario() -> None:
        broker = MemoryBroker()
        async with running(broker, db_of(tmp_path), {"2.0.1": Counting()}):
            st = await Station(broker, "CP1").start()
            op = await Operator(broker, "CP1").start()
            op.call("o1", "Rest", {})
            assert (await op.result())[:3] == [4, "o1", ErrorCode.NOT_IMPLEMENTED]
            op.call("o2", "Reset", {"type": "Sometime"})
            assert (await op.result())[:3] == [4, "o2", ErrorCode.PROPERTY_CONSTRAINT_VIOLATION]
            op.call("o3", "BootNotification", BOOT)
            assert (await op.result())[:3] == [4, "o3", ErrorCode.NOT_SUPPORTED]
            op.raw(b"not json")
            assert (await op.result())[:3] == [4, "-1", ErrorCode.FORMAT_VIOLATION]

            op.call("o4", "Reset", {"type": "Immediate"})
            call = await st.frame()
            assert isinstance(call, Call) and call.payload == {"type": "Immediate"}
            assert await more_messages(st.client, 0.05) == []
            st.answer(call, {"status": "Accepted"})
            assert await op.result() == [3, "o4", {"status": "Accepted"}]

    run(scenario())


# -- 10. duplicates ----------------------------------------------------------------------------


def test_repeated_call_runs_its_handler_once_across_a_restart(tmp_path: Path) -> None:
    """A CALL repeated (same id: right away, after its answer, and after the bridge restarted
    on the same database) runs its handler once; every copy gets the same answer bytes."""
    handler = Counting()
    db = db_of(tmp_path)

    async def scenario() -> list[bytes]:
        broker = MemoryBroker()
        st = Station(broker, "CP1")
        async with running(broker, db, {"2.0.1": handler}):
            await st.start()
            data = st.call("d1", "Heartbeat", {})
            st.raw(data)
            answers = [(await st.message()).payload, (await st.message()).payload]
            st.raw(data)
            answers.append((await st.message()).payload)
        async with running(broker, db, {"2.0.1": handler}):
            st.raw(data)
            answers.append((await st.message()).payload)
            st.call("d2", "Heartbeat", {})  # a new CALL is still handled
            fresh = _wire.decode((await st.message()).payload)[1]
            assert isinstance(fresh, CallResult) and fresh.message_id == "d2"
        return answers

    answers = run(scenario())
    assert len(set(answers)) == 1, answers
    assert _wire.decode(answers[0])[1] == CallResult(
        "d1", {"currentTime": "2026-01-01T00:00:01Z"}, "Heartbeat"
    )
    assert handler.runs == [("CP1", "Heartbeat", "d1"), ("CP1", "Heartbeat", "d2")]


def test_a_reused_message_id_with_another_call_is_handled(tmp_path: Path) -> None:
    """A station that starts its message ids again (its data directory made anew, a second
    ``simulate`` run) sends another CALL under an id answered before: that is a new CALL, not a
    repeat (OCPP-J asks ids to be unique only within a connection), so its handler runs and it
    gets its own answer; from the bridge's memory and, after a restart, from its store. The
    very same CALL again is still a repeat."""
    handler = Counting()
    db = db_of(tmp_path)

    async def scenario() -> list[Any]:
        broker = MemoryBroker()
        st = Station(broker, "CP1")
        got: list[Any] = []
        async with running(broker, db, {"2.0.1": handler}):
            await st.start()
            st.call("7", "Heartbeat", {})
            got.append(_wire.decode((await st.message()).payload)[1])
            st.call("7", "Authorize", {"idToken": {"idToken": "A", "type": "ISO14443"}})
            got.append(_wire.decode((await st.message()).payload)[1])
            again = st.call("8", "Authorize", {"idToken": {"idToken": "B", "type": "ISO14443"}})
            got.append(_wire.decode((await st.message()).payload)[1])
        async with running(broker, db, {"2.0.1": handler}):
            st.call("8", "Heartbeat", {})  # known to the store only
            got.append(_wire.decode((await st.message()).payload)[1])
            st.raw(again)  # the Authorize "8" once more: a repeat now? no: "8" is a Heartbeat
            got.append(_wire.decode((await st.message()).payload)[1])
            st.raw(again)  # and this copy is the repeat of the one just handled
            got.append(_wire.decode((await st.message()).payload)[1])
        return got

    got = run(scenario())
    assert [type(g).__name__ for g in got] == ["CallResult"] * 6, got
    assert "currentTime" in got[0].payload and "idTokenInfo" in got[1].payload
    assert "idTokenInfo" in got[2].payload and "currentTime" in got[3].payload
    assert "idTokenInfo" in got[4].payload and got[5].payload == got[4].payload
    assert handler.runs == [
        ("CP1", "Heartbeat", "7"), ("CP1", "Authorize", "7"), ("CP1", "Authorize", "8"),
        ("CP1", "Heartbeat", "8"), ("CP1", "Authorize", "8"),
    ]  # fmt: skip


def test_a_reused_id_is_told_apart_after_many_calls_and_while_the_first_is_in_hand(
    tmp_path: Path,
) -> None:
    """The fingerprints the bridge keeps in memory are bounded: a reused id is still told
    apart after many CALLs (the one being admitted is never the one forgotten). A CALL that
    reuses the id of a CALL still in hand waits for it, then is handled as itself."""
    release = asyncio.Event()

    class Slow(Counting):
        async def heartbeat(self, request: Any, ctx: Context) -> Any:
            self.runs.append((ctx.station_id, "Heartbeat", ctx.message_id))
            if ctx.message_id == "slow":
                await release.wait()
            return {"currentTime": "2026-01-01T00:00:00Z"}

    handler = Slow()
    authorize = {"idToken": {"idToken": "A", "type": "ISO14443"}}

    async def scenario() -> list[Any]:
        broker = MemoryBroker()
        st = Station(broker, "CP1")
        got: list[Any] = []
        async with running(broker, db_of(tmp_path), {"2.0.1": handler}):
            await st.start()
            for i in range(1, 41):
                st.call(str(i), "Heartbeat", {})
                await st.frame()
            st.call("40", "Authorize", authorize)
            got.append(await st.frame())
            st.call("slow", "Heartbeat", {})
            await until(lambda: handler.runs[-1][2] == "slow", "the slow handler to start")
            st.call("slow", "Authorize", authorize)  # the same id, another CALL
            await asyncio.sleep(0.1)
            release.set()
            got += [await st.frame(), await st.frame()]
        return got

    reused, first, second = run(scenario())
    assert "idTokenInfo" in reused.payload, reused
    assert "currentTime" in first.payload and "idTokenInfo" in second.payload, (first, second)
    assert [r[1:] for r in handler.runs[-4:]] == [
        ("Heartbeat", "40"), ("Authorize", "40"), ("Heartbeat", "slow"), ("Authorize", "slow"),
    ]  # fmt: skip


# -- 11. the station summary -------------------------------------------------------------------


def test_retained_station_state(tmp_path: Path) -> None:
    """``ocpp/{id}/json/state`` (bridge/view.py): vendor, model and version after the boot,
    the transaction once started, offline after the station's will; retained."""
    db = db_of(tmp_path)
    calls = charging_session_201("CP1", updates=1, transaction_id="tx-1")

    async def scenario() -> dict[str, Any]:
        broker = MemoryBroker()
        explorer = broker.client(MqttSettings(client_id="explorer"))
        explorer.subscribe("ocpp/CP1/json/state")
        assert await explorer.start(5)

        async def state(pred: Any, what: str) -> dict[str, Any]:
            while True:
                try:
                    m = await next_message(explorer)
                except TimeoutError:
                    raise AssertionError(f"no station state with {what}") from None
                value: dict[str, Any] = json.loads(m.payload)
                if pred(value):
                    assert m.topic == "ocpp/CP1/json/state"
                    return value

        async with running(broker, db, build_reference(db)):
            st = await Station(broker, "CP1", will=True).start()
            assert isinstance(await st.rpc("1", *calls[0]), CallResult)
            s = await state(lambda s: (s["boot"] or {}).get("status") == "Accepted", "boot")
            assert (s["vendor"], s["model"], s["version"]) == ("ocpp-iot", MODEL, "2.0.1")
            assert s["status"] == "online" and s["transactions"] == {}
            for i in (1, 2, 3):  # status, authorize, transaction started
                assert isinstance(await st.rpc(str(i + 1), *calls[i]), CallResult)
            s = await state(lambda s: s["transactions"], "the transaction")
            tx = s["transactions"]["1"]
            assert (tx["id"], tx["connector"], tx["authorized"]) == ("tx-1", 1, True)
            assert tx["state"] == "Charging"
            assert broker.disconnect("CP1", reconnect=False)  # its will: retained "offline"
            s = await state(lambda s: s["status"] == "offline", "offline")
            assert s["vendor"] == "ocpp-iot"
        late = broker.client(MqttSettings(client_id="late"))
        late.subscribe("ocpp/CP1/json/state")
        assert await late.start(5)
        m = await next_message(late)
        assert m.retain
        retained: dict[str, Any] = json.loads(m.payload)
        return retained

    retained = run(scenario())
    assert retained["status"] == "offline"
    assert retained["transactions"]["1"]["id"] == "tx-1"


# -- 12. two workers ---------------------------------------------------------------------------


def test_two_workers_share_the_stations(tmp_path: Path) -> None:
    """Two workers on one database and a shared subscription (round robin): a burst from three
    stations is handled once per CALL and all answered; a handler's CALL to a station whose
    answer reaches the other worker gets it (relayed over the workers' topic)."""
    db = db_of(tmp_path)
    runs: list[tuple[str, str, str]] = []
    handlers = [CallingBack(runs), CallingBack(runs)]
    stations = ["CP1", "CP2", "CP3"]
    sent = {sid: [f"{sid}-{n}" for n in range(8)] for sid in stations}

    async def scenario() -> None:
        broker = MemoryBroker()
        acks = Acks(broker)
        relays = broker.client(MqttSettings(client_id="watch"))
        relays.subscribe("ocpp/bridge/worker/#")
        assert await relays.start(5)
        config: dict[str, Any] = {"acks": acks, "workers": 2}
        async with (
            running(broker, db, {"2.0.1": handlers[0]}, worker_index=0, **config),
            running(broker, db, {"2.0.1": handlers[1]}, worker_index=1, **config),
        ):
            sts = {sid: await Station(broker, sid).start() for sid in stations}
            for n in range(8):
                for sid in stations:
                    action = "Authorize" if n % 2 else "TransactionEvent"
                    payload = charging_session_201(sid)[2 if n % 2 else 3][1]
                    sts[sid].call(sent[sid][n], action, payload)
            for sid, st in sts.items():
                got = [await st.frame() for _ in sent[sid]]
                assert all(isinstance(f, CallResult) for f in got), got
                assert sorted(f.message_id for f in got) == sorted(sent[sid])
                assert await more_messages(st.client, 0) == []
            workers = {cid for cid, topic, _ in acks.seen if topic.endswith("/up")}
            assert workers == {f"{BRIDGE_ID}-w0", f"{BRIDGE_ID}-w1"}  # both took a share

            cp1 = sts["CP1"]
            for i in range(2):
                status = cp1.call(f"s{i}", "StatusNotification", calls_status())
                reset = await cp1.frame()
                assert isinstance(reset, Call) and reset.action == "Reset"
                answer = _wire.encode(
                    CallResult(reset.message_id, {"status": "Accepted"}, "Reset"), "2.0.1"
                )
                cp1.raw(answer)
                done = await cp1.frame()
                assert isinstance(done, CallResult) and done.message_id == f"s{i}"
                caller = {cid for cid, t, p in acks.seen if p == status}
                receiver = {cid for cid, t, p in acks.seen if p == answer}
                assert len(caller) == len(receiver) == 1 and caller != receiver
                relay = json.loads((await next_message(relays)).payload)
                assert (relay["kind"], relay["station"], relay["id"]) == (
                    "answer",
                    "CP1",
                    reset.message_id,
                )

    run(scenario())
    want = sorted(
        (sid, "Authorize" if n % 2 else "TransactionEvent", mid)
        for sid, mids in sent.items()
        for n, mid in enumerate(mids)
    )
    assert sorted(runs) == sorted(
        want + [("CP1", "StatusNotification", "s0"), ("CP1", "StatusNotification", "s1")]
    )
    got = handlers[0].got + handlers[1].got
    assert sorted(mid for mid, _ in got) == ["s0", "s1"]
    assert all(isinstance(a, CallResult) and a.payload == {"status": "Accepted"} for _, a in got)


def calls_status() -> dict[str, Any]:
    return charging_session_201("X")[1][1]


def test_handler_state_carries_over_between_back_to_back_calls_with_async_handlers() -> None:
    """ctx.state of an async handler: five CALLs sent back to back (claimed together, before
    the first handler ran) each see what the one before it left (a stale read lost updates)."""

    class CountingState(Counting):
        async def heartbeat(self, request: Any, ctx: Context) -> Any:
            n = ctx.state.get("n", 0) + 1
            ctx.state["n"] = n
            await asyncio.sleep(0)
            return {"currentTime": f"2026-01-01T00:00:{n:02d}Z"}

    async def scenario() -> list[str]:
        broker = MemoryBroker()
        store = SqliteStore(":memory:")
        async with running(broker, store, {"2.0.1": CountingState()}, mirror=False):
            st = await Station(broker, "CP1").start()
            for i in range(1, 6):
                st.call(str(i), "Heartbeat", {})
            return [(await st.frame()).payload["currentTime"][-3:-1] for _ in range(5)]

    assert run(scenario()) == ["01", "02", "03", "04", "05"]


def test_calls_to_an_ocppj_station_go_down_as_ocppj() -> None:
    """A station that speaks OCPP-J is called in OCPP-J too, not only answered in it."""

    async def scenario() -> tuple[bytes, str | None]:
        broker = MemoryBroker()
        async with running(broker, SqliteStore(":memory:"), {"2.0.1": Counting()}, mirror=False):
            st = await Station(broker, "CP1").start()
            op = await Operator(broker, "CP1").start()
            st.raw(b'[2,"1","Heartbeat",{}]', content_type="application/json")
            await st.message()
            op.call("op1", "Reset", {"type": "Immediate"})
            m = await st.message()
            return m.payload, m.content_type

    payload, ctype = run(scenario())
    frame = json.loads(payload)
    assert frame[0] == 2 and frame[2] == "Reset" and ctype == "application/json"


def test_a_call_its_handler_gave_up_on_is_never_sent() -> None:
    """ctx.call wrapped in wait_for: when the handler stops waiting while its CALL is still
    queued (behind an operator's), the CALL is withdrawn and never reaches the station."""

    class GivesUp(Counting):
        async def heartbeat(self, request: Any, ctx: Context) -> Any:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.call("Reset", {"type": "OnIdle"}), 0.3)
            return {"currentTime": "2026-01-01T00:00:00Z"}

    async def scenario() -> list[Any]:
        broker = MemoryBroker()
        handlers = {"2.0.1": GivesUp()}
        async with running(
            broker, SqliteStore(":memory:"), handlers, mirror=False, call_timeout=5.0
        ):
            st = await Station(broker, "CP1").start()
            boot = {"chargingStation": {"model": "m", "vendorName": "v"}, "reason": "PowerUp"}
            await st.rpc("1", "BootNotification", boot)
            op = await Operator(broker, "CP1").start()
            op.call("op1", "Reset", {"type": "Immediate"})
            first = await st.frame()  # the operator's Reset: outstanding, unanswered
            st.call("2", "Heartbeat", {})
            await st.frame()  # the handler's answer: it gave up on its own Reset
            st.answer(first, {"status": "Accepted"})  # the slot frees
            return [_wire.decode(m.payload)[1] for m in await more_messages(st.client, 1.0)]

    assert run(scenario()) == []


def test_station_state_survives_a_bridge_restart_with_frames_queued(tmp_path: Path) -> None:
    """The retained json/state is read back before the bridge serves the frames that queued
    while it was away: vendor and model from before the restart are still there after it."""

    async def scenario() -> dict[str, Any]:
        broker = MemoryBroker()
        db = str(tmp_path / "b.db")
        boot = {"chargingStation": {"model": "M1", "vendorName": "V1"}, "reason": "PowerUp"}
        async with running(broker, db, {"2.0.1": Counting()}, mirror=False):
            st = await Station(broker, "CP1").start()
            await st.rpc("1", "BootNotification", boot)
        st.call("2", "Heartbeat", {})  # while the bridge is away: queued in its session
        async with running(broker, db, {"2.0.1": Counting()}, mirror=False):
            await st.frame()
            state = json.loads(broker.retained["ocpp/CP1/json/state"].payload)
        return state

    state = run(scenario())
    assert (state["vendor"], state["model"]) == ("V1", "M1")


def test_a_repeat_of_a_call_in_hand_is_acknowledged_with_the_first_copy() -> None:
    """A repeat that arrives while the first copy is being handled is not acknowledged before
    the answer is stored (a crash in between would lose both: the broker had let go of the
    repeat); then both are acknowledged, each gets the same answer, the handler ran once."""
    release = asyncio.Event()

    class Slow(Counting):
        async def heartbeat(self, request: Any, ctx: Context) -> Any:
            self.runs.append((ctx.station_id, "Heartbeat", ctx.message_id))
            await release.wait()
            return {"currentTime": "2026-01-01T00:00:00Z"}

    async def scenario() -> None:
        broker = MemoryBroker()
        acks = Acks(broker)
        handler = Slow()
        async with running(broker, SqliteStore(":memory:"), {"2.0.1": handler}, acks=acks):
            st = await Station(broker, "CP1").start()
            data = st.call("r1", "Heartbeat", {})
            await until(lambda: handler.runs, "the handler to start")
            st.raw(data)  # the station repeats it (its own timeout)
            await until(lambda: broker.session_queue(BRIDGE_ID) == 2, "both copies delivered")
            assert acks.of("ocpp/CP1/up") == []  # neither acknowledged while in hand
            release.set()
            answers = [await st.message(), await st.message()]
            assert answers[0].payload == answers[1].payload  # the stored answer, again
            assert _wire.decode(answers[0].payload)[1].message_id == "r1"
            await until(lambda: len(acks.of("ocpp/CP1/up")) == 2, "both acknowledged")
            assert await more_messages(st.client, 0.2) == []
            assert handler.runs == [("CP1", "Heartbeat", "r1")]

    run(scenario())


def test_an_operator_call_delivered_twice_is_queued_once() -> None:
    """The same operator CALL (same id) redelivered (a reconnect before its ack) reaches the
    station once."""

    async def scenario() -> list[Any]:
        broker = MemoryBroker()
        async with running(broker, SqliteStore(":memory:"), {"2.0.1": Counting()}, mirror=False):
            st = await Station(broker, "CP1").start()
            op = await Operator(broker, "CP1").start()
            op.call("op-7", "Reset", {"type": "Immediate"})
            first = await st.frame()
            op.call("op-7", "Reset", {"type": "Immediate"})  # the copy, while outstanding
            more = await more_messages(st.client, 0.3)
            st.answer(first, {"status": "Accepted"})
            return [first, *more, *await more_messages(st.client, 0.3)]

    got = run(scenario())
    assert len(got) == 1 and got[0].action == "Reset"
