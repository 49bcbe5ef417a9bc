"""The OCPP-J session machine: the one place that knows OCPP-J's rules for a connection.

Every side of this package drives one :class:`Session` per OCPP-J connection (per station): the
bridge, the charger node, the CSMS uplink, the LoRa gateway. It does no I/O and reads no clock:
frames and ``now`` go in, events and frames to transmit come out. The rules, by section of
OCPP-J part 4 (2.0.1 numbering; 1.6 has the same rules in its section 4):

- 4.1.1: at most one CALL of ours outstanding; the next waits until the previous one has been
  answered or has timed out (:class:`~ocpp_iot.rpc.OutboundQueue`);
- 4.1.4: message ids unique per connection: short decimal counters by default;
- 4.2.2 / 4.2.3: a CALLRESULT or CALLERROR answers the CALL with its id; one with another id is
  unexpected (late, after our timeout, or stray);
- a CALL repeated with an id already received is answered from the answer cache, so a handler
  runs once per CALL however often the link delivers it;
- 4.2.3: a frame whose message id cannot be read is answered with id ``"-1"`` (2.0.1+);
- 2.1 4.2.4 / 4.2.5: a SEND is never answered and does not occupy the CALL slot; a
  CALLRESULTERROR reports that the peer could not process our CALLRESULT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._cache import IN_HAND, Answer, AnswerCache, InHand, MemoryAnswerCache
from ._errors import error_for_undecodable
from ._events import (
    CallAnswered,
    CallReceived,
    CallTimedOut,
    DuplicateCall,
    Event,
    ProtocolStateError,
    ResultRejected,
    SendReceived,
    UnexpectedResponse,
)
from ._frames import VERSIONS, Call, CallError, CallResult, CallResultError, Frame, Send
from ._outbound import OutboundQueue, Pending

__all__ = ["Session"]


def _timed_out(p: Pending) -> CallTimedOut:
    return CallTimedOut(p.call, p.sent_at is not None, p.tag)


class Session:
    """One side of one OCPP-J connection.

    Outgoing: :meth:`call` queues a CALL and returns it when it may be transmitted now; after
    :class:`CallAnswered` or :meth:`expire`, :meth:`take_next` gives the next one due.
    :meth:`send_call` is the strict form for callers that keep their own queue (it refuses
    while a CALL is outstanding).

    Incoming: :meth:`receive` says what a frame means; a :class:`CallReceived` is handed to the
    application and its answer passed to :meth:`respond` before it is transmitted.

    ``cache`` keeps the answers given (default: the last ``remember`` in memory); ``outbound``
    is the queue of our CALLs (default: a fresh one with short decimal ids).
    """

    def __init__(
        self,
        version: str = "2.0.1",
        *,
        call_timeout: float = 30.0,
        id_factory: Callable[[], str] | None = None,
        first_id: int = 1,
        remember: int = 256,
        cache: AnswerCache | None = None,
        outbound: OutboundQueue | None = None,
    ) -> None:
        if version not in VERSIONS:
            raise ValueError(f"unknown OCPP version {version!r}")
        self.version = version
        self.cache: AnswerCache = cache if cache is not None else MemoryAnswerCache(remember)
        self.outbound = (
            outbound
            if outbound is not None
            else OutboundQueue(call_timeout, first_id=first_id, id_factory=id_factory)
        )

    @property
    def call_timeout(self) -> float:
        return self.outbound.call_timeout

    @call_timeout.setter
    def call_timeout(self, seconds: float) -> None:
        """A new timeout, for the CALL in flight too (it is timed from when it was sent)."""
        self.outbound.call_timeout = seconds

    # -- outgoing -----------------------------------------------------------------------------

    @property
    def outstanding(self) -> Call | None:
        """Our CALL that is waiting for its answer, if any."""
        out = self.outbound.outstanding
        return None if out is None else out.call

    def can_call(self, now: float) -> bool:
        """Whether a CALL may be transmitted now (none outstanding, or it timed out)."""
        return self.outbound.can_send(now)

    def new_message_id(self) -> str:
        return self.outbound.new_message_id()

    def deadline(self) -> float | None:
        """When :meth:`expire` next has something to do (on the caller's clock), or ``None``."""
        return self.outbound.deadline()

    def call(
        self,
        action: str,
        payload: dict[str, Any],
        now: float,
        *,
        message_id: str | None = None,
        patience: float | None = None,
        tag: Any = None,
    ) -> Call | None:
        """Queue a CALL; return it if it is to be transmitted now (else it waits its turn)."""
        call = Call(message_id or self.new_message_id(), action, payload)
        return self.outbound.add(call, now, patience=patience, tag=tag)

    def send_call(
        self, action: str, payload: dict[str, Any], now: float, *, message_id: str | None = None
    ) -> Call:
        """Start a CALL now and return the frame to transmit.

        Raises :class:`ProtocolStateError` while another CALL is outstanding (4.1.1); one past
        its timeout counts as abandoned and is dropped.
        """
        if not self.can_call(now):
            out = self.outbound.outstanding
            assert out is not None
            raise ProtocolStateError(
                f"CALL {out.call.message_id} ({out.call.action}) is still outstanding; "
                "OCPP-J allows one at a time"
            )
        self.outbound.expire(now)
        call = Call(message_id or self.new_message_id(), action, payload)
        self.outbound.items.insert(0, Pending(call, now + self.call_timeout, now))
        return call

    def send(self, action: str, payload: dict[str, Any]) -> Send:
        """An unconfirmed SEND (OCPP 2.1); it does not occupy the CALL slot."""
        if self.version != "2.1":
            raise ProtocolStateError(f"SEND does not exist in OCPP {self.version}")
        return Send(self.new_message_id(), action, payload)

    def expire(self, now: float) -> list[CallTimedOut]:
        """Abandon our CALLs that timed out (sent) or waited too long (queued, never sent)."""
        return [_timed_out(p) for p in self.outbound.expire(now)]

    def poll(self, now: float) -> CallTimedOut | None:
        """Report (once) that the outstanding CALL has timed out; queued CALLs are left alone."""
        out = self.outbound.outstanding
        if out is not None and now - (out.sent_at or 0.0) >= self.call_timeout:
            del self.outbound.items[0]
            return _timed_out(out)
        return None

    def take_next(self, now: float) -> Call | None:
        """The next queued CALL to transmit now, if the slot is free."""
        return self.outbound.take_next(now)

    # -- incoming -----------------------------------------------------------------------------

    def receive(self, frame: Frame, now: float) -> Event:
        """Account for a frame from the peer and say what it means."""
        if isinstance(frame, Call):
            prior = self.cache.get(frame.message_id)
            if prior is None:
                self.cache.put(frame.message_id, IN_HAND)
                return CallReceived(frame)
            return DuplicateCall(frame, None if isinstance(prior, InHand) else prior)
        if isinstance(frame, CallResult | CallError):
            pending = self.outbound.answered(frame.message_id)
            if pending is None:
                return UnexpectedResponse(frame)
            call = pending.call
            if isinstance(frame, CallResult) and frame.action is None:
                frame = CallResult(frame.message_id, frame.payload, call.action)
            return CallAnswered(call, frame, pending.tag)
        if isinstance(frame, Send):
            return SendReceived(frame)
        if isinstance(frame, CallResultError):
            return ResultRejected(frame)
        raise TypeError(f"not an OCPP frame: {type(frame).__name__}")

    def respond(
        self, response: CallResult | CallError, *, stored: Answer | None = None
    ) -> CallResult | CallError:
        """Record the answer to a received CALL (for its repeats) and return it for sending.

        ``stored`` is what the cache keeps instead of the frame (e.g. its encoded bytes)."""
        if self.cache.get(response.message_id) is None:
            raise ProtocolStateError(f"no CALL {response.message_id!r} was received")
        self.cache.put(response.message_id, response if stored is None else stored)
        return response

    def undecodable(
        self, message_id: str | None, error_code: str, description: str
    ) -> CallError | None:
        """The CALLERROR answering a frame that could not be decoded, or ``None`` (drop it)."""
        return error_for_undecodable(message_id, error_code, description, self.version)
