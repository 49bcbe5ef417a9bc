"""OCPP-J: the JSON text form of RPC frames (OCPP-J part 4, section 4).

``encode`` writes compact UTF-8 JSON; ``decode`` reads one frame and raises
:class:`~ocpp_iot.codecs.DecodeError` (and nothing else) for anything that is not a well-formed
frame of the given OCPP version. Payloads are checked for shape only (a JSON object); schema
validation belongs to :mod:`ocpp_iot.model`.
"""

from __future__ import annotations

import json
from typing import Any

from ..rpc import (
    VERSIONS,
    Call,
    CallError,
    CallResult,
    CallResultError,
    Frame,
    MessageType,
    Send,
)
from . import DecodeError

__all__ = ["encode", "decode", "to_list", "from_list", "MAX_FRAME_BYTES", "DecodeError"]

#: Frames larger than this are refused before parsing (a guard against memory exhaustion).
MAX_FRAME_BYTES = 1 << 20

# OCPP-J 2.0.1 4.1.4: a message id is a string of at most 36 characters.
MAX_MESSAGE_ID_LENGTH = 36

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def to_list(frame: Frame) -> list[Any]:
    """The frame as the JSON array OCPP-J puts on the wire."""
    if isinstance(frame, Call):
        return [2, frame.message_id, frame.action, frame.payload]
    if isinstance(frame, CallResult):
        return [3, frame.message_id, frame.payload]
    if isinstance(frame, CallError | CallResultError):
        return [
            int(frame.message_type),
            frame.message_id,
            frame.error_code,
            frame.error_description,
            frame.error_details,
        ]
    if isinstance(frame, Send):
        return [6, frame.message_id, frame.action, frame.payload]
    raise TypeError(f"not an OCPP frame: {type(frame).__name__}")


def encode(frame: Frame) -> bytes:
    """Encode ``frame`` as compact OCPP-J (UTF-8 bytes)."""
    try:
        return _dumps(to_list(frame)).encode()
    except ValueError as exc:  # NaN or infinity in a payload: not JSON
        raise ValueError(f"frame is not representable as JSON: {exc}") from None


def decode(data: bytes | bytearray | memoryview | str, version: str = "2.0.1") -> Frame:
    """Decode one OCPP-J frame of OCPP ``version``."""
    if version not in VERSIONS:
        raise ValueError(f"unknown OCPP version {version!r}")
    if isinstance(data, memoryview | bytearray):
        data = bytes(data)
    if len(data) > MAX_FRAME_BYTES:
        raise DecodeError(f"frame of {len(data)} bytes exceeds the limit of {MAX_FRAME_BYTES}")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError and UnicodeDecodeError are both ValueErrors.
        raise DecodeError(f"not JSON: {exc}") from None
    return from_list(value, version)


def from_list(value: Any, version: str = "2.0.1") -> Frame:
    """Build a frame from the JSON array of an OCPP-J message (already parsed)."""
    if not isinstance(value, list) or not value:
        raise DecodeError("an OCPP-J frame is a non-empty JSON array")
    kind = value[0]
    if type(kind) is not int:
        raise DecodeError("the message type is not an integer")
    if len(value) < 2 or type(value[1]) is not str:
        raise DecodeError("the message id is missing or not a string")
    message_id: str = value[1]
    if not message_id or len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise DecodeError(f"message id must be 1 to {MAX_MESSAGE_ID_LENGTH} characters")
    v21 = version == "2.1"
    try:
        return _frame_of(kind, message_id, value, v21, version)
    except DecodeError as exc:
        if exc.message_id is None:
            exc.message_id = message_id
        raise


def _frame_of(kind: int, message_id: str, value: list[Any], v21: bool, version: str) -> Frame:
    if kind in (MessageType.CALL, MessageType.SEND):
        if kind == MessageType.SEND and not v21:
            raise DecodeError(
                f"message type 6 (SEND) does not exist in OCPP {version}",
                error_code="MessageTypeNotSupported",
            )
        if len(value) != 4:
            raise DecodeError(f"a {'CALL' if kind == 2 else 'SEND'} has 4 elements")
        action, payload = value[2], value[3]
        if type(action) is not str or not action:
            raise DecodeError("the action is not a non-empty string")
        if type(payload) is not dict:
            raise DecodeError("the payload is not a JSON object", error_code="FormatViolation")
        if kind == MessageType.CALL:
            return Call(message_id, action, payload)
        return Send(message_id, action, payload)
    if kind == MessageType.CALLRESULT:
        if len(value) != 3:
            raise DecodeError("a CALLRESULT has 3 elements")
        if type(value[2]) is not dict:
            raise DecodeError("the payload is not a JSON object", error_code="FormatViolation")
        return CallResult(message_id, value[2])
    if kind in (MessageType.CALLERROR, MessageType.CALLRESULTERROR):
        if kind == MessageType.CALLRESULTERROR and not v21:
            raise DecodeError(
                f"message type 5 (CALLRESULTERROR) does not exist in OCPP {version}",
                error_code="MessageTypeNotSupported",
            )
        if len(value) != 5:
            raise DecodeError("a CALLERROR has 5 elements")
        code, description, details = value[2], value[3], value[4]
        if type(code) is not str or type(description) is not str or type(details) is not dict:
            raise DecodeError("errorCode and errorDescription are strings, errorDetails an object")
        cls = CallError if kind == MessageType.CALLERROR else CallResultError
        return cls(message_id, code, description, details)
    raise DecodeError(f"unknown message type {kind}", error_code="MessageTypeNotSupported")
