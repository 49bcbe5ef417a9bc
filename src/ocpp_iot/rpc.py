"""OCPP-J RPC frames, error codes and a sans-IO endpoint.

Frames follow OCPP-J part 4 section 4 ("RPC framework"): a JSON array whose first element is
the message type number. ``payload`` is always the JSON-level value (a ``dict`` exactly as
``json.loads`` gives it); typed models come from :mod:`ocpp_iot.model` on demand.

This module does no I/O and reads no clock: the caller passes ``now`` (seconds, any monotonic
origin) wherever time matters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

__all__ = [
    "VERSIONS",
    "MessageType",
    "Call",
    "CallResult",
    "CallError",
    "CallResultError",
    "Send",
    "Frame",
    "ErrorCode",
    "error_code_for",
    "ERROR_CODES",
    "Endpoint",
    "ProtocolStateError",
    "Event",
    "CallReceived",
    "DuplicateCall",
    "CallAnswered",
    "CallTimedOut",
    "UnexpectedResponse",
    "SendReceived",
    "ResultRejected",
    "error_for_undecodable",
]

#: OCPP versions this package speaks, as they appear in the codecs and on the wire.
VERSIONS: tuple[str, ...] = ("1.6", "2.0.1", "2.1")


class MessageType(IntEnum):
    """Message type numbers (OCPP-J 1.6 4.1.3, 2.0.1 4.1.3; 2.1 adds 5 and 6)."""

    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4
    CALLRESULTERROR = 5  # 2.1 only: an error about a CALLRESULT that was received
    SEND = 6  # 2.1 only: unconfirmed message, no response expected


@dataclass(frozen=True, slots=True)
class Call:
    """``[2, messageId, action, payload]``."""

    message_id: str
    action: str
    payload: dict[str, Any]
    message_type = MessageType.CALL


@dataclass(frozen=True, slots=True)
class CallResult:
    """``[3, messageId, payload]``.

    ``action`` is not on the OCPP-J wire; it is carried by the compact CBOR codec (the decoder
    needs it to pick the response schema) and filled in by whoever matched the result to its CALL.
    """

    message_id: str
    payload: dict[str, Any]
    action: str | None = None
    message_type = MessageType.CALLRESULT


@dataclass(frozen=True, slots=True)
class CallError:
    """``[4, messageId, errorCode, errorDescription, errorDetails]``."""

    message_id: str
    error_code: str
    error_description: str = ""
    error_details: dict[str, Any] = field(default_factory=dict)
    message_type = MessageType.CALLERROR


@dataclass(frozen=True, slots=True)
class CallResultError:
    """``[5, messageId, errorCode, errorDescription, errorDetails]`` (OCPP 2.1 only)."""

    message_id: str
    error_code: str
    error_description: str = ""
    error_details: dict[str, Any] = field(default_factory=dict)
    message_type = MessageType.CALLRESULTERROR


@dataclass(frozen=True, slots=True)
class Send:
    """``[6, messageId, action, payload]`` (OCPP 2.1 only; never answered)."""

    message_id: str
    action: str
    payload: dict[str, Any]
    message_type = MessageType.SEND


Frame = Call | CallResult | CallError | CallResultError | Send


class ErrorCode:
    """CALLERROR codes of OCPP-J 2.0.1 / 2.1 part 4 section 4.3 (2.0.1 spelling).

    Use :func:`error_code_for` to get the spelling of a given OCPP version: 1.6 writes
    ``FormationViolation`` and ``OccurenceConstraintViolation`` (OCPP-J 1.6 section 4.2.3).
    """

    FORMAT_VIOLATION = "FormatViolation"
    GENERIC_ERROR = "GenericError"
    INTERNAL_ERROR = "InternalError"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    PROTOCOL_ERROR = "ProtocolError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    SECURITY_ERROR = "SecurityError"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"


# OCPP-J 1.6 section 4.2.3 has no MessageTypeNotSupported / RpcFrameworkError; the closest
# code it does have is GenericError.
_V16_SPELLING = {
    ErrorCode.FORMAT_VIOLATION: "FormationViolation",
    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
    ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: "GenericError",
    ErrorCode.RPC_FRAMEWORK_ERROR: "GenericError",
}

#: Every error code each version defines, in that version's spelling.
ERROR_CODES: dict[str, frozenset[str]] = {
    "1.6": frozenset(
        {
            "NotImplemented",
            "NotSupported",
            "InternalError",
            "ProtocolError",
            "SecurityError",
            "FormationViolation",
            "PropertyConstraintViolation",
            "OccurenceConstraintViolation",
            "TypeConstraintViolation",
            "GenericError",
        }
    ),
    "2.0.1": frozenset(v for k, v in vars(ErrorCode).items() if k.isupper() and isinstance(v, str)),
}
ERROR_CODES["2.1"] = ERROR_CODES["2.0.1"]


def error_code_for(code: str, version: str) -> str:
    """Return ``code`` (2.0.1 spelling) as OCPP ``version`` spells it."""
    if version == "1.6":
        return _V16_SPELLING.get(code, code)
    return code


# --------------------------------------------------------------------------------------------
# Sans-IO endpoint
# --------------------------------------------------------------------------------------------


class ProtocolStateError(RuntimeError):
    """The caller asked the endpoint for something the RPC rules forbid right now."""


@dataclass(frozen=True, slots=True)
class CallReceived:
    """A new CALL from the peer: dispatch it, then pass the answer to ``Endpoint.respond``."""

    call: Call


@dataclass(frozen=True, slots=True)
class DuplicateCall:
    """The peer repeated a CALL id it already sent (e.g. a QoS 1 redelivery).

    ``response`` is the answer sent the first time, to be sent again unchanged; it is ``None``
    while the first copy is still being handled (send nothing then: the answer will follow).
    """

    call: Call
    response: CallResult | CallError | None


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The peer answered our outstanding CALL. A ``CallResult`` carries the CALL's action."""

    call: Call
    response: CallResult | CallError


@dataclass(frozen=True, slots=True)
class CallTimedOut:
    """Our outstanding CALL got no answer within the timeout (OCPP-J 4.1.1); it is abandoned."""

    call: Call


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


class Endpoint:
    """One side of one OCPP-J connection, without I/O.

    - Outgoing CALLs get ids from a counter, as short decimal strings ("1", "2", ...), which keeps
      compact frames small; pass ``id_factory`` for UUIDs or ids that must survive a restart.
    - At most one outgoing CALL is outstanding (OCPP-J 4.1.1); it ends with its CALLRESULT or
      CALLERROR, or when ``poll`` finds it older than ``call_timeout`` seconds.
    - Incoming CALLs are remembered by id: a repeated id is reported as :class:`DuplicateCall`
      with the answer given the first time, so a handler never runs twice for one CALL
      (duplicates arrive with MQTT QoS 1 and radio retransmissions). The last ``remember``
      answers are kept.

    Time is passed in as ``now`` (seconds on any monotonic scale) wherever it matters.
    """

    def __init__(
        self,
        version: str = "2.0.1",
        *,
        call_timeout: float = 30.0,
        id_factory: Callable[[], str] | None = None,
        first_id: int = 1,
        remember: int = 256,
    ) -> None:
        if version not in VERSIONS:
            raise ValueError(f"unknown OCPP version {version!r}")
        self.version = version
        self.call_timeout = call_timeout
        self._next_id = first_id
        self._id_factory = id_factory
        self._remember = remember
        self._outstanding: Call | None = None
        self._sent_at = 0.0
        # id -> answer (None while the first copy is being handled); insertion ordered.
        self._answers: dict[str, CallResult | CallError | None] = {}

    # -- outgoing ---------------------------------------------------------------------------

    @property
    def outstanding(self) -> Call | None:
        """Our CALL that is waiting for its answer, if any."""
        return self._outstanding

    def can_call(self, now: float) -> bool:
        """Whether a new CALL may be sent now (none outstanding, or the last one timed out)."""
        return self._outstanding is None or now - self._sent_at >= self.call_timeout

    def new_message_id(self) -> str:
        if self._id_factory is not None:
            return self._id_factory()
        message_id = str(self._next_id)
        self._next_id += 1
        return message_id

    def send_call(
        self, action: str, payload: dict[str, Any], now: float, *, message_id: str | None = None
    ) -> Call:
        """Start a CALL and return the frame to transmit.

        Raises :class:`ProtocolStateError` while another CALL is outstanding (OCPP-J 4.1.1);
        a CALL past its timeout counts as abandoned.
        """
        if not self.can_call(now):
            assert self._outstanding is not None
            raise ProtocolStateError(
                f"CALL {self._outstanding.message_id} ({self._outstanding.action}) is still "
                "outstanding; OCPP-J allows one at a time"
            )
        call = Call(message_id or self.new_message_id(), action, payload)
        self._outstanding = call
        self._sent_at = now
        return call

    def send(self, action: str, payload: dict[str, Any]) -> Send:
        """An unconfirmed SEND (OCPP 2.1); it does not occupy the CALL slot."""
        if self.version != "2.1":
            raise ProtocolStateError(f"SEND does not exist in OCPP {self.version}")
        return Send(self.new_message_id(), action, payload)

    def poll(self, now: float) -> CallTimedOut | None:
        """Report (once) that the outstanding CALL has timed out."""
        call = self._outstanding
        if call is not None and now - self._sent_at >= self.call_timeout:
            self._outstanding = None
            return CallTimedOut(call)
        return None

    def deadline(self) -> float | None:
        """When the outstanding CALL times out (on the caller's clock), or ``None``."""
        return None if self._outstanding is None else self._sent_at + self.call_timeout

    # -- incoming ---------------------------------------------------------------------------

    def receive(self, frame: Frame, now: float) -> Event:
        """Account for a frame from the peer and say what it means."""
        if isinstance(frame, Call):
            if frame.message_id in self._answers:
                return DuplicateCall(frame, self._answers[frame.message_id])
            self._answers[frame.message_id] = None
            self._forget_old()
            return CallReceived(frame)
        if isinstance(frame, CallResult | CallError):
            call = self._outstanding
            if call is None or frame.message_id != call.message_id:
                return UnexpectedResponse(frame)
            self._outstanding = None
            if isinstance(frame, CallResult) and frame.action is None:
                frame = CallResult(frame.message_id, frame.payload, call.action)
            return CallAnswered(call, frame)
        if isinstance(frame, Send):
            return SendReceived(frame)
        if isinstance(frame, CallResultError):
            return ResultRejected(frame)
        raise TypeError(f"not an OCPP frame: {type(frame).__name__}")

    def respond(self, response: CallResult | CallError) -> CallResult | CallError:
        """Record the answer to a received CALL (for duplicates) and return it for sending."""
        if response.message_id not in self._answers:
            raise ProtocolStateError(f"no CALL {response.message_id!r} was received")
        self._answers[response.message_id] = response
        return response

    def _forget_old(self) -> None:
        # Forget the oldest answered CALLs beyond the limit; one still in hand stays.
        excess = len(self._answers) - self._remember
        if excess <= 0:
            return
        for old_id in [k for k, v in self._answers.items() if v is not None][:excess]:
            del self._answers[old_id]


def error_for_undecodable(
    message_id: str | None, error_code: str, description: str, version: str
) -> CallError | None:
    """The CALLERROR that answers a frame that could not be decoded, or ``None`` to drop it.

    OCPP-J 2.0.1 / 2.1 section 4.2.3: when the message id cannot be read, answer with id ``"-1"``.
    OCPP 1.6 has no such rule, so there an unreadable frame is dropped.
    """
    if message_id is None:
        if version == "1.6":
            return None
        message_id = "-1"
    return CallError(message_id, error_code_for(error_code, version), description[:255], {})
