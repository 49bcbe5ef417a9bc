"""OCPP-J RPC: frames, error codes, and the sans-IO session machine every side shares.

- frames (OCPP-J part 4 section 4): :class:`Call`, :class:`CallResult`, :class:`CallError`, and
  2.1's :class:`CallResultError` and :class:`Send`; ``payload`` is the JSON-level value;
- error codes in each version's spelling (:func:`error_code_for`) and the rules for answering
  what cannot be decoded (:func:`error_for_undecodable`);
- :class:`Session`: one OCPP-J connection's rules (ids, one outstanding CALL and the queue behind
  it, timeouts on a clock passed in, repeats answered from an :class:`AnswerCache`). Its
  outgoing half, :class:`OutboundQueue`, is plain data that a shared store can keep.

Nothing here does I/O or reads a clock: the caller passes ``now`` (seconds) where time matters.
"""

from ._cache import IN_HAND, Answer, AnswerCache, InHand, MemoryAnswerCache
from ._errors import ERROR_CODES, MAX_DESCRIPTION, ErrorCode, error_code_for, error_for_undecodable
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
from ._frames import (
    VERSIONS,
    Call,
    CallError,
    CallResult,
    CallResultError,
    Frame,
    MessageType,
    Send,
)
from ._outbound import OutboundQueue, Pending
from ._session import Session

#: the earlier name of :class:`Session`
Endpoint = Session

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
    "MAX_DESCRIPTION",
    "error_for_undecodable",
    "Session",
    "Endpoint",
    "OutboundQueue",
    "Pending",
    "AnswerCache",
    "MemoryAnswerCache",
    "Answer",
    "IN_HAND",
    "InHand",
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
