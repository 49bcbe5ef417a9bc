"""What a :class:`~ocpp_iot.rpc.Session` reports about each frame from the peer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._cache import Answer
from ._frames import Call, CallError, CallResult, CallResultError, Send

__all__ = [
    "ProtocolStateError",
    "Event",
    "CallReceived",
    "DuplicateCall",
    "CallAnswered",
    "CallTimedOut",
    "UnexpectedResponse",
    "SendReceived",
    "ResultRejected",
]


class ProtocolStateError(RuntimeError):
    """The caller asked the endpoint for something the RPC rules forbid right now."""


@dataclass(frozen=True, slots=True)
class CallReceived:
    """A new CALL from the peer: dispatch it, then pass the answer to ``Session.respond``."""

    call: Call


@dataclass(frozen=True, slots=True)
class DuplicateCall:
    """The peer repeated a CALL id it already sent (e.g. a QoS 1 redelivery).

    ``response`` is the answer sent the first time, to be sent again unchanged; it is ``None``
    while the first copy is still being handled (send nothing then: the answer will follow).
    """

    call: Call
    response: Answer | None


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The peer answered our outstanding CALL. A ``CallResult`` carries the CALL's action;
    ``tag`` is what was given with the CALL (who waits for it)."""

    call: Call
    response: CallResult | CallError
    tag: Any = None


@dataclass(frozen=True, slots=True)
class CallTimedOut:
    """Our CALL is abandoned: sent and not answered within the call timeout (OCPP-J 4.1.1),
    or, with ``sent`` False, still queued when the caller's patience ran out (never sent)."""

    call: Call
    sent: bool = True
    tag: Any = None


@dataclass(frozen=True, slots=True)
class UnexpectedResponse:
    """A CALLRESULT or CALLERROR whose id is not that of our outstanding CALL (late or stray)."""

    frame: CallResult | CallError


@dataclass(frozen=True, slots=True)
class SendReceived:
    """An unconfirmed SEND (OCPP 2.1): hand it to the application; nothing is answered."""

    send: Send


@dataclass(frozen=True, slots=True)
class ResultRejected:
    """The peer reported (CALLRESULTERROR, OCPP 2.1) that it could not process our CALLRESULT."""

    frame: CallResultError


Event = (
    CallReceived
    | DuplicateCall
    | CallAnswered
    | CallTimedOut
    | UnexpectedResponse
    | SendReceived
    | ResultRejected
)
