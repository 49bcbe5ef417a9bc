"""The session machine's queue of our CALLs and its answer cache (rules of OCPP-J 4.1.1)."""

from __future__ import annotations

import json

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ocpp_iot.rpc import (
    IN_HAND,
    Call,
    CallAnswered,
    CallError,
    CallReceived,
    CallResult,
    CallTimedOut,
    DuplicateCall,
    MemoryAnswerCache,
    OutboundQueue,
    Session,
    UnexpectedResponse,
)


def test_calls_queue_behind_the_outstanding_one_in_order() -> None:
    s = Session(call_timeout=30)
    first = s.call("Reset", {"type": "Immediate"}, 0, tag="op-1")
    assert first is not None and first.message_id == "1"
    assert s.call("GetVariables", {}, 1) is None  # waits its turn
    assert s.call("ClearCache", {}, 2) is None
    assert s.take_next(3) is None  # slot still taken
    ev = s.receive(CallResult("1", {"status": "Accepted"}), 4)
    assert isinstance(ev, CallAnswered) and ev.tag == "op-1" and ev.response.action == "Reset"
    nxt = s.take_next(4)
    assert nxt is not None and nxt.action == "GetVariables"
    s.receive(CallError(nxt.message_id, "NotSupported"), 5)
    last = s.take_next(5)
    assert last is not None and last.action == "ClearCache"


def test_a_call_that_waited_too_long_is_never_sent() -> None:
    s = Session(call_timeout=30)
    s.call("Reset", {"type": "Immediate"}, 0)
    s.call("ClearCache", {}, 1, patience=10, tag="t")
    gone = s.expire(20)  # the queued one is past its patience; the outstanding is not
    assert gone == [CallTimedOut(Call("2", "ClearCache", {}), sent=False, tag="t")]
    assert s.expire(29) == []
    timed_out = s.expire(30)
    assert [(e.call.action, e.sent) for e in timed_out] == [("Reset", True)]
    assert s.take_next(31) is None  # nothing left: ClearCache was abandoned, not sent late


def test_take_next_skips_an_expired_head_without_expire() -> None:
    q = OutboundQueue(30)
    q.add(Call("a", "Reset", {}), 0)
    q.add(Call("b", "ClearCache", {}), 0, patience=5)
    q.add(Call("c", "Heartbeat", {}), 0, patience=100)
    assert q.answered("a") is not None
    nxt = q.take_next(10)  # "b" expired in the queue: "c" goes, "b" is reported by expire
    assert nxt is not None and nxt.message_id == "c"
    assert [p.call.message_id for p in q.expire(10)] == ["b"]


def test_late_answer_after_timeout_is_unexpected_and_frees_nothing_twice() -> None:
    s = Session(call_timeout=5)
    call = s.call("Heartbeat", {}, 0)
    assert call is not None
    assert [e.call for e in s.expire(5)] == [call]
    late = CallResult(call.message_id, {})
    assert s.receive(late, 6) == UnexpectedResponse(late)


def test_a_new_timeout_times_the_call_in_flight_from_when_it_was_sent() -> None:
    s = Session(call_timeout=30)
    call = s.call("Heartbeat", {}, 100)
    s.call_timeout = 5
    assert s.call_timeout == 5
    assert s.expire(104) == []
    assert [e.call for e in s.expire(105)] == [call]


def test_queue_round_trips_through_json_and_keeps_ids_unique() -> None:
    q = OutboundQueue(30)
    q.add(Call(q.new_message_id(), "Reset", {"type": "OnIdle"}), 0, tag={"op": "x"})
    q.add(Call(q.new_message_id(), "ClearCache", {}), 1)
    value = json.loads(json.dumps(q.to_json()))
    again = OutboundQueue.from_json(value, 30)
    assert [p.to_json() for p in again.items] == [p.to_json() for p in q.items]
    assert again.new_message_id() == "3"
    assert again.outstanding is not None and again.outstanding.tag == {"op": "x"}
    assert OutboundQueue(30).to_json() is None


def test_repeats_are_answered_from_the_cache_with_stored_bytes() -> None:
    cache = MemoryAnswerCache(8)
    s = Session(cache=cache)
    call = Call("77", "Heartbeat", {})
    assert isinstance(s.receive(call, 0), CallReceived)
    assert cache.get("77") is IN_HAND
    assert s.receive(call, 0) == DuplicateCall(call, None)
    s.respond(CallResult("77", {"currentTime": "t"}), stored=b"\x01bytes")
    assert s.receive(call, 1) == DuplicateCall(call, b"\x01bytes")


def test_undecodable_rules_follow_the_version() -> None:
    assert Session("2.0.1").undecodable(None, "RpcFrameworkError", "x") == CallError(
        "-1", "RpcFrameworkError", "x", {}
    )
    assert Session("1.6").undecodable(None, "RpcFrameworkError", "x") is None
    err = Session("1.6").undecodable("9", "FormatViolation", "y")
    assert err is not None and err.error_code == "FormationViolation"


class QueueMachine(RuleBasedStateMachine):
    """Random submissions, answers, stray answers and time: OCPP-J 4.1.1 always holds."""

    TIMEOUT = 10.0

    def __init__(self) -> None:
        super().__init__()
        self.s = Session(call_timeout=self.TIMEOUT)
        self.now = 0.0
        self.on_air: dict[str, float] = {}  # transmitted and not yet ended: id -> sent at
        self.ended: set[str] = set()
        self.submitted: dict[str, float] = {}  # id -> abandon-at while queued
        self.transmitted: list[str] = []

    def _transmit(self, call: Call | None) -> None:
        if call is None:
            return
        assert call.message_id not in self.transmitted  # never sent twice
        assert self.now < self.submitted[call.message_id]  # never sent past its patience
        # 4.1.1: nothing else outstanding that has not timed out
        assert all(self.now - t >= self.TIMEOUT for t in self.on_air.values())
        self.transmitted.append(call.message_id)
        self.on_air[call.message_id] = self.now

    @rule(dt=st.floats(0, 12))
    def time_passes(self, dt: float) -> None:
        self.now += dt

    @rule(patience=st.floats(0.5, 40))
    def submit(self, patience: float) -> None:
        mid = self.s.new_message_id()
        self.submitted[mid] = self.now + patience
        self._transmit(self.s.call("Heartbeat", {}, self.now, message_id=mid, patience=patience))

    @rule(stray=st.booleans())
    def peer_answers(self, stray: bool) -> None:
        out = self.s.outstanding
        target = "nope" if stray or out is None else out.message_id
        ev = self.s.receive(CallResult(target, {}), self.now)
        if target == "nope":
            assert isinstance(ev, UnexpectedResponse)
            return
        assert isinstance(ev, CallAnswered)
        self.on_air.pop(target)
        self.ended.add(target)
        self._transmit(self.s.take_next(self.now))

    @rule()
    def expire(self) -> None:
        for ev in self.s.expire(self.now):
            mid = ev.call.message_id
            assert mid not in self.ended
            self.ended.add(mid)
            if ev.sent:
                assert self.now - self.on_air.pop(mid) >= self.TIMEOUT
            else:
                assert mid not in self.transmitted and self.now >= self.submitted[mid]
        self._transmit(self.s.take_next(self.now))

    @invariant()
    def at_most_one_live_call(self) -> None:
        live = [t for t in self.on_air.values() if self.now - t < self.TIMEOUT]
        assert len(live) <= 1


TestQueue = QueueMachine.TestCase
TestQueue.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_a_queued_call_can_be_withdrawn_but_not_a_sent_one() -> None:
    q = OutboundQueue(30)
    q.add(Call("a", "Reset", {}), 0)
    q.add(Call("b", "ClearCache", {}), 0)
    assert q.withdraw("a") is None  # outstanding: it stays until answered or timed out
    withdrawn = q.withdraw("b")
    assert withdrawn is not None and withdrawn.call.message_id == "b"
    assert q.answered("a") is not None and q.take_next(1) is None  # "b" never goes
