"""OCPP-J RPC frames (OCPP-J part 4 section 4: "RPC framework").

A frame is a JSON array whose first element is the message type number. ``payload`` is always
the JSON-level value (a ``dict`` exactly as ``json.loads`` gives it); typed models come from
:mod:`ocpp_iot.model` on demand.
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
