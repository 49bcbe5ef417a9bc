"""OCPP-J: the JSON text form of RPC frames (OCPP-J part 4, section 4).

``encode`` writes compact UTF-8 JSON; ``decode`` reads one frame and raises
:class:`~ocpp_iot.codecs.DecodeError` (and nothing else) for anything that is not a well-formed
frame of the given OCPP version. Payloads are checked for shape only (a JSON object); schema
validation belongs to :mod:`ocpp_iot.model`.

:func:`from_list` holds the header rules (message type, message id, element count) and the error
code of each failure. They exist once: :func:`ocpp_iot.model.parse_frame_json`, the fast path
from OCPP-J bytes to a typed model, uses them for every frame its fast path does not take.
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
    ErrorCode,
    Frame,
    Send,
    error_code_for,
)
from . import DecodeError

__all__ = [
    "encode",
    "decode",
    "to_list",
    "from_list",
    "MAX_FRAME_BYTES",
    "MAX_MESSAGE_ID_LENGTH",
    "DecodeError",
    "looks_like_ocppj",
]

#: Frames larger than this are refused before parsing (a guard against memory exhaustion).
MAX_FRAME_BYTES = 1 << 20

#: A message id is a string of at most 36 characters (room for a UUID): OCPP-J 1.6 section 4.1.4
#: (Table 3), 2.0.1 and 2.1 section 4.1.4 (Table 4). One limit for every version and both parsers.
MAX_MESSAGE_ID_LENGTH = 36

# message type numbers (OCPP-J 4.1.3; 5 and 6 are 2.1 only), as plain ints for speed
_CALL, _CALLRESULT, _CALLERROR, _CALLRESULTERROR, _SEND = 2, 3, 4, 5, 6

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


#: the first byte of an OCPP-J frame (an array, maybe after whitespace); no compact CBOR frame
#: starts with one of these (its first byte carries the OCPP version: 0x20, 0x25, 0x2a)
_JSON_START = frozenset(b"[\t\r\n")


def looks_like_ocppj(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` is OCPP-J text rather than a compact CBOR frame (by its first byte)."""
    return len(data) > 0 and data[0] in _JSON_START


def encode(frame: Frame) -> bytes:
    """Encode ``frame`` as compact OCPP-J (UTF-8 bytes)."""
    try:
        return _dumps(to_list(frame)).encode()
    except ValueError as exc:  # NaN or infinity in a payload: not JSON
        raise ValueError(f"frame is not representable as JSON: {exc}") from None


def decode(data: bytes | bytearray | memoryview | str, version: str = "2.0.1") -> Frame:
    """Decode one OCPP-J frame of OCPP ``version``.

    Checks the frame, not the action: whether ``action`` exists in the version and whether the
    payload fits its schema is the model's question (:func:`ocpp_iot.model.parse_frame_json`,
    :func:`ocpp_iot.behaviours.dispatch`).
    """
    if version not in VERSIONS:
        raise ValueError(f"unknown OCPP version {version!r}")
    if isinstance(data, memoryview | bytearray):
        data = bytes(data)
    if len(data) > MAX_FRAME_BYTES:
        raise _error(f"frame of {len(data)} bytes exceeds the limit of {MAX_FRAME_BYTES}", version)
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError and UnicodeDecodeError are both ValueErrors. The message id cannot be
        # read from text that is not JSON: RpcFrameworkError, answered with id "-1" (4.2.3).
        raise _error(f"not JSON: {exc}", version) from None
    return from_list(value, version)


def from_list(value: Any, version: str = "2.0.1") -> Frame:
    """Build a frame from the JSON array of an OCPP-J message (already parsed).

    The header rules of OCPP-J part 4 section 4, in the order they are checked (every failure
    raises :class:`DecodeError` with the code to answer with, spelled for ``version``):

    1. a non-empty array whose first element is an integer, second a string: else
       ``RpcFrameworkError`` (the id cannot be read);
    2. the message id has 1 to :data:`MAX_MESSAGE_ID_LENGTH` characters: else
       ``RpcFrameworkError``, id unreadable (section 4.2.3 lists "unique identifier too long");
    3. the message type exists in ``version`` (2, 3, 4; 2.1 adds 5 and 6): else
       ``MessageTypeNotSupported`` (sections 4.1.3 and 4.4);
    4. the element count and types of that message type: else ``RpcFrameworkError``, or
       ``FormatViolation`` for a payload that is not a JSON object.
    """
    if value.__class__ is not list or not value:
        raise _error("an OCPP-J frame is a non-empty JSON array", version)
    kind = value[0]
    if kind.__class__ is not int:
        raise _error("the message type is not an integer", version)
    if len(value) < 2 or value[1].__class__ is not str:
        raise _error("the message id is missing or not a string", version)
    message_id: str = value[1]
    if not message_id or len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise _error(f"message id must be 1 to {MAX_MESSAGE_ID_LENGTH} characters", version)
    v21 = version == "2.1"
    if kind == _CALL or kind == _SEND:
        if kind == _SEND and not v21:
            raise _type_error(kind, message_id, version)
        if len(value) != 4:
            raise _error(f"a {'CALL' if kind == 2 else 'SEND'} has 4 elements", version, message_id)
        action, payload = value[2], value[3]
        if action.__class__ is not str or not action:
            raise _error("the action is not a non-empty string", version, message_id)
        if payload.__class__ is not dict:
            raise _error("the payload is not a JSON object", version, message_id, FORMAT)
        if kind == _CALL:
            return Call(message_id, action, payload)
        return Send(message_id, action, payload)
    if kind == _CALLRESULT:
        if len(value) != 3:
            raise _error("a CALLRESULT has 3 elements", version, message_id)
        if value[2].__class__ is not dict:
            raise _error("the payload is not a JSON object", version, message_id, FORMAT)
        return CallResult(message_id, value[2])
    if kind == _CALLERROR or kind == _CALLRESULTERROR:
        if kind == _CALLRESULTERROR and not v21:
            raise _type_error(kind, message_id, version)
        if len(value) != 5:
            raise _error("a CALLERROR has 5 elements", version, message_id)
        code, description, details = value[2], value[3], value[4]
        if (
            code.__class__ is not str
            or description.__class__ is not str
            or details.__class__ is not dict
        ):
            raise _error(
                "errorCode and errorDescription are strings, errorDetails an object",
                version,
                message_id,
            )
        cls = CallError if kind == _CALLERROR else CallResultError
        return cls(message_id, code, description, details)
    raise _type_error(kind, message_id, version)


FORMAT = ErrorCode.FORMAT_VIOLATION


def _error(
    reason: str,
    version: str,
    message_id: str | None = None,
    code: str = ErrorCode.RPC_FRAMEWORK_ERROR,
) -> DecodeError:
    """The DecodeError of one header rule: ``code`` (2.0.1 spelling) spelled for ``version``."""
    return DecodeError(
        reason, message_id=message_id, error_code=error_code_for(code, version), version=version
    )


def _type_error(kind: int, message_id: str, version: str) -> DecodeError:
    name = {5: " (CALLRESULTERROR)", 6: " (SEND)"}.get(kind, "")
    return _error(
        f"message type {kind}{name} does not exist in OCPP {version}",
        version,
        message_id,
        ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED,
    )
