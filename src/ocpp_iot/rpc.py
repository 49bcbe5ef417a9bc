"""OCPP-J RPC frames, error codes and a sans-IO endpoint.

Frames follow OCPP-J part 4 section 4 ("RPC framework"): a JSON array whose first element is
the message type number. ``payload`` is always the JSON-level value (a ``dict`` exactly as
``json.loads`` gives it); typed models come from :mod:`ocpp_iot.model` on demand.

This module does no I/O and reads no clock: the caller passes ``now`` (seconds, any monotonic
origin) wherever time matters.
"""

from __future__ import annotations

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
