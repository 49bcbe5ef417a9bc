"""CALLERROR codes (OCPP-J part 4 section 4.3; 1.6 section 4.2.3) and the rules for choosing one.

- action not known to the version: ``NotImplemented``; known but not handled by this side:
  ``NotSupported``;
- unreadable message id: answer with id ``"-1"`` and ``RpcFrameworkError`` (2.0.1 and 2.1
  section 4.2.3); 1.6 has no such rule, so the frame is dropped;
- 1.6 spells two codes differently (``FormationViolation``, ``OccurenceConstraintViolation``).
"""

from __future__ import annotations

from ._frames import CallError

__all__ = ["ErrorCode", "ERROR_CODES", "error_code_for", "error_for_undecodable", "MAX_DESCRIPTION"]

#: errorDescription is at most 255 characters (OCPP-J 2.0.1 4.2.3; we apply it to 1.6 too)
MAX_DESCRIPTION = 255


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
    return CallError(
        message_id, error_code_for(error_code, version), description[:MAX_DESCRIPTION], {}
    )
