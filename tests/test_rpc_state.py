"""Stateful property test of the endpoint: random interleavings keep the OCPP-J rules."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ocpp_iot.rpc import (
    Call,
    CallAnswered,
    CallError,
    CallReceived,
    CallResult,
    CallTimedOut,
    DuplicateCall,
    Endpoint,
    ProtocolStateError,
    UnexpectedResponse,
)

TIMEOUT = 10.0


class EndpointMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ep = Endpoint(call_timeout=TIMEOUT, remember=1000)
        self.now = 0.0
        self.outstanding: Call | None = None
        self.sent_at = 0.0
        self.handled: list[str] = []  # incoming CALL ids given to the application
        self.answers: dict[str, CallResult | CallError] = {}
        self.ids: set[str] = set()

    @rule(dt=st.floats(min_value=0, max_value=15))
    def time_passes(self, dt: float) -> None:
        self.now += dt

    @rule()
    def send_call(self) -> None:
        free = self.outstanding is None or self.now - self.sent_at >= TIMEOUT
        try:
            call = self.ep.send_call("Heartbeat", {}, self.now)
        except ProtocolStateError:
            assert not free
            return
        assert free
        assert call.message_id not in self.ids  # ids never repeat
        self.ids.add(call.message_id)
        self.outstanding, self.sent_at = call, self.now

    @rule(error=st.booleans(), stray=st.booleans())
    def peer_answers(self, error: bool, stray: bool) -> None:
        target = self.outstanding.message_id if self.outstanding and not stray else "stray"
        frame = CallError(target, "GenericError") if error else CallResult(target, {})
        event = self.ep.receive(frame, self.now)
        if self.outstanding is not None and target == self.outstanding.message_id:
            assert isinstance(event, CallAnswered) and event.call == self.outstanding
            self.outstanding = None
        else:
            assert isinstance(event, UnexpectedResponse)

    @rule()
    def poll(self) -> None:
        event = self.ep.poll(self.now)
        if self.outstanding is not None and self.now - self.sent_at >= TIMEOUT:
            assert event == CallTimedOut(self.outstanding)
            self.outstanding = None
        else:
            assert event is None

    @rule(n=st.integers(0, 5), answer_now=st.booleans())
    def peer_calls(self, n: int, answer_now: bool) -> None:
        call = Call(f"in{n}", "Reset", {"type": "Immediate"})
        event = self.ep.receive(call, self.now)
        if call.message_id in self.handled:
            assert isinstance(event, DuplicateCall)
            assert event.response == self.answers.get(call.message_id)
            return
        assert isinstance(event, CallReceived)
        self.handled.append(call.message_id)
        if answer_now:
            self.answers[call.message_id] = self.ep.respond(CallResult(call.message_id, {}))

    @invariant()
    def one_outstanding_at_most(self) -> None:
        assert self.ep.outstanding == self.outstanding or (
            self.outstanding is not None and self.now - self.sent_at >= TIMEOUT
        )
        assert len(self.handled) == len(set(self.handled))


TestEndpoint = EndpointMachine.TestCase
TestEndpoint.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
