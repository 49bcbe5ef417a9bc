"""Dispatch a CALL to a behaviour: validate, call, validate the answer, map errors.

This is the seed's ``handle(module, action, payload, state)`` made Pythonic. The order of the
checks follows OCPP-J part 4 section 4.3 (see DESIGN.md "Errors"):

1. an action the version does not define, or that this side never receives -> ``NotSupported``;
2. an action of this side the handler does not override -> ``NotImplemented``;
3. a payload that fails the schema -> FormatViolation / TypeConstraintViolation /
   PropertyConstraintViolation / OccurrenceConstraintViolation (1.6 spellings for 1.6);
4. ``OcppError`` raised by the handler -> its code; any other exception -> ``InternalError``,
   with the traceback logged locally and never put on the wire;
5. a response that fails its schema -> ``InternalError`` (the fault is ours, not the peer's).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from ..model import Action, OcppModel, PayloadError, get_version, parse
from ..rpc import Call, CallError, CallResult, ErrorCode, Send, error_code_for
from ._base import Behaviour, Context, OcppError

__all__ = ["dispatch", "dispatch_async"]

log = logging.getLogger("ocpp_iot.behaviours")


def _error(call: Call | Send, code: str, description: str, version: str) -> CallError:
    return CallError(call.message_id, error_code_for(code, version), description, {})


def _prepare(handler: Behaviour, call: Call | Send, ctx: Context) -> tuple[Any, Any] | CallError:
    """Find the method and parse the request, or return the CALLERROR that answers instead."""
    version = handler.version
    spec: Action | None = get_version(version).ACTIONS.get(call.action)
    if spec is None:
        return _error(
            call, ErrorCode.NOT_SUPPORTED, f"{call.action} is not an OCPP {version} action", version
        )
    if call.action not in handler.actions:
        return _error(
            call,
            ErrorCode.NOT_SUPPORTED,
            f"{call.action} is not sent to the {handler.side.replace('_', ' ')}",
            version,
        )
    method = getattr(handler, spec.method)
    if getattr(method, "__ocpp_unimplemented__", False):
        return _error(
            call, ErrorCode.NOT_IMPLEMENTED, f"{call.action} is not implemented here", version
        )
    try:
        request = parse(spec.request, call.payload, lenient=handler.lenient, warnings=ctx.warnings)
    except PayloadError as exc:
        return CallError(
            call.message_id, error_code_for(exc.code, version), exc.description, exc.details
        )
    return method, request


def _finish(handler: Behaviour, call: Call, result: Any) -> CallResult | CallError:
    """Turn what the handler returned into the CALLRESULT, after checking it."""
    version = handler.version
    spec = get_version(version).ACTIONS[call.action]
    if isinstance(result, OcppModel):
        payload = result.to_payload()
    elif isinstance(result, dict):
        payload = result
    else:
        log.error(
            "%s handler returned %s, not a %s",
            call.action,
            type(result).__name__,
            spec.response.__name__ if spec.response else "response",
        )
        return _error(call, ErrorCode.INTERNAL_ERROR, "handler returned no response", version)
    assert spec.response is not None
    try:
        parse(spec.response, payload)
    except PayloadError as exc:
        log.error("%s handler returned an invalid response: %s", call.action, exc.description)
        return _error(
            call, ErrorCode.INTERNAL_ERROR, "handler produced an invalid response", version
        )
    return CallResult(call.message_id, payload, call.action)


def _crash(handler: Behaviour, call: Call | Send, exc: BaseException) -> CallError:
    if isinstance(exc, OcppError):
        return CallError(
            call.message_id, exc.code_for(handler.version), exc.description, exc.details
        )
    log.error("%s handler raised", call.action, exc_info=exc)
    return _error(call, ErrorCode.INTERNAL_ERROR, "the handler failed", handler.version)


def _reject_awaitable(handler: Behaviour, method: Any, result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()  # never awaited: close it so Python does not warn later
    raise TypeError(f"{type(handler).__name__}.{method.__name__} is async: use dispatch_async")


def dispatch(handler: Behaviour, call: Call | Send, ctx: Context) -> CallResult | CallError | None:
    """Answer ``call`` with ``handler`` (whose methods are plain functions).

    For an unconfirmed SEND (OCPP 2.1) nothing goes back on the wire: the result is ``None`` on
    success, or the CALLERROR that would have answered it, for the adapter's log.
    """
    prepared = _prepare(handler, call, ctx)
    if isinstance(prepared, CallError):
        return prepared
    method, request = prepared
    try:
        result = method(request, ctx)
    except Exception as exc:
        return _crash(handler, call, exc)
    if inspect.isawaitable(result):
        _reject_awaitable(handler, method, result)
    return _finish(handler, call, result) if isinstance(call, Call) else None


async def dispatch_async(
    handler: Behaviour, call: Call | Send, ctx: Context
) -> CallResult | CallError | None:
    """:func:`dispatch` for handlers whose methods may be ``async def`` or plain."""
    prepared = _prepare(handler, call, ctx)
    if isinstance(prepared, CallError):
        return prepared
    method, request = prepared
    try:
        result = method(request, ctx)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        return _crash(handler, call, exc)
    return _finish(handler, call, result) if isinstance(call, Call) else None
