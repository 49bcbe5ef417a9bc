"""The check every CALL to a station passes before it goes down a slow link.

One function for ``bridge call`` (before publishing) and the bridge (before queueing an
operator's or a handler's CALL), so both refuse the same CALLs with the same CALLERROR the
station would answer: OCPP-J part 4 section 4.3 (1.6: 4.2.3).
"""

from __future__ import annotations

from .. import model
from ..codecs import DecodeError
from ..rpc import MAX_DESCRIPTION, Call, CallError, ErrorCode, error_code_for

__all__ = ["validate_call"]


def validate_call(version: str, call: Call) -> CallError | None:
    """The CALLERROR a station would answer ``call`` with because of its action or payload, or
    ``None`` if it is a valid CALL to a station. Unknown action: NotImplemented; one only
    stations send (or a SEND-only action): NotSupported; a payload against the schema:
    Format/Type/Property/OccurrenceConstraintViolation, with the first errors in the details."""
    try:
        spec = model.find_action(version, call.action, call.message_id)
    except DecodeError as exc:
        return CallError(call.message_id, exc.error_code, str(exc)[:MAX_DESCRIPTION], {})
    if spec.initiator == "charger" or spec.response is None:
        return CallError(
            call.message_id,
            error_code_for(ErrorCode.NOT_SUPPORTED, version),
            f"{call.action} is sent by charging stations, not to them",
            {},
        )
    try:
        model.parse(spec.request, call.payload)
    except model.PayloadError as exc:
        return CallError(
            call.message_id, exc.error_code, exc.description[:MAX_DESCRIPTION], exc.details
        )
    return None
