"""Dispatch a CALL to a behaviour: validate, call, validate the answer, map errors.

This is the seed's ``handle(module, action, payload, state)`` made Pythonic. The order of the
checks and the codes follow OCPP-J part 4 section 4.3 (1.6: 4.2.3; see DESIGN.md "Errors"):

1. an action the version does not define -> ``NotImplemented`` ("not known by receiver"; the
   answer :func:`ocpp_iot.model.parse_frame_json` gives too: both use ``model.find_action``);
2. an action the version defines but this side does not handle -> ``NotSupported`` ("recognized
   but not supported"): one this side never receives, or one the handler does not override;
3. a payload that fails the schema -> FormatViolation / TypeConstraintViolation /
   PropertyConstraintViolation / OccurrenceConstraintViolation (1.6 spellings for 1.6);
4. ``OcppError`` raised by the handler -> its code; any other exception -> ``InternalError``,
   with the traceback logged locally and never put on the wire;
5. a response that fails its schema -> ``InternalError`` (the fault is ours, not the peer's).

:func:`dispatch` and :func:`dispatch_async` share every step (:func:`_prepare`, :func:`_finish`,
:func:`_crash`); they differ only in how they call the method.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from ..codecs import DecodeError
from ..model import OcppModel, PayloadError, find_action, get_version, parse
from ..rpc import Call, CallError, CallResult, ErrorCode, Send, error_code_for
from ._base import Behaviour, Context, OcppError

__all__ = ["dispatch", "dispatch_async"]

log = logging.getLogger("ocpp_iot.behaviours")

Answer = CallResult | CallError | None


def _error(call: Call | Send, code: str, description: str, version: str) -> CallError:
    return CallError(call.message_id, error_code_for(code, version), description, {})


def _prepare(
    handler: Behaviour, call: Call | Send, ctx: Context
) -> tuple[Callable[..., Any], Any] | CallError:
    """Find the method and parse the request, or return the CALLERROR that answers instead."""
    version = handler.version
    try:
        spec = find_action(version, call.action, call.message_id)
    except DecodeError as exc:  # not an action of this version: NotImplemented
        return CallError(call.message_id, exc.error_code, exc.reason, {})
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
            call, ErrorCode.NOT_SUPPORTED, f"{call.action} is not supported here", version
        )
    try:
        request = parse(spec.request, call.payload, lenient=handler.lenient, warnings=ctx.warnings)
    except PayloadError as exc:
        return CallError(
            call.message_id, error_code_for(exc.code, version), exc.description, exc.details
        )
    return method, request


def _finish(handler: Behaviour, call: Call | Send, result: Any) -> Answer:
    """Turn what the method returned into the answer: the checked CALLRESULT of a CALL, or
    ``None`` for a SEND (OCPP 2.1 part 4 section 4.2.4: a SEND is never answered)."""
    if call.__class__ is not Call:
        return None
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
    if spec.response is None:  # a SEND-only action (2.1) sent as a CALL: nothing to check
        return _error(call, ErrorCode.INTERNAL_ERROR, "the action has no response", version)
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


def dispatch(handler: Behaviour, call: Call | Send, ctx: Context) -> Answer:
    """Answer ``call`` with ``handler`` (whose methods are plain functions).

    For an unconfirmed SEND (OCPP 2.1) nothing goes back on the wire: the result is ``None`` on
    success, or the CALLERROR that would have answered it, for the adapter's log. An ``async
    def`` method raises ``TypeError`` (use :func:`dispatch_async`).
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
    return _finish(handler, call, result)


async def dispatch_async(handler: Behaviour, call: Call | Send, ctx: Context) -> Answer:
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
    return _finish(handler, call, result)
