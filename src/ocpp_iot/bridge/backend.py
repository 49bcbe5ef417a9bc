"""What answers the stations' CALLs: the backend seam of the bridge.

The bridge claims a CALL, hands it to a :class:`Backend`, and stores and sends what comes back.
:class:`HostedBackend` runs ChargeSystem behaviours in this process (one per OCPP version); a
CSMS uplink (OCPP-J over a WebSocket to an existing back end) is the other planned backend.

How a handler method runs is a strategy (:class:`RunPolicy`): in the event loop (plain methods
that do not block: the fastest), on a thread pool (plain methods that may block), or awaited
(``async def`` methods). Every CALL goes through the same steps whichever it is; only
:meth:`Backend.answer` (awaited) and :meth:`Backend.answer_now` (in the loop, no await) differ.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from ..behaviours import Behaviour, Context, dispatch, dispatch_async, method_for
from ..rpc import Call, CallError, CallResult, ErrorCode, Send, error_code_for
from .store import Statement, collect_effects

__all__ = ["Backend", "HostedBackend", "Outcome", "RunPolicy"]

log = logging.getLogger("ocpp_iot.bridge")

#: how a handler calls its station back: (station, action, request) -> awaitable answer
CallStation = Callable[[str, str, Any], Awaitable[CallResult | CallError]]


@dataclass(slots=True)
class Outcome:
    """A handled CALL or SEND: the answer (None for a SEND that succeeded) and the writes the
    handler deferred into the bridge's own transaction (:func:`~ocpp_iot.bridge.defer_sql`)."""

    answer: CallResult | CallError | None
    effects: list[Statement]


class Backend(Protocol):
    versions: tuple[str, ...]

    def runs_now(self, version: str, action: str) -> bool:
        """Whether :meth:`answer_now` may handle this action (no await, in the loop)."""
        ...

    def answer_now(
        self, station: str, version: str, frame: Call | Send, state: dict[str, Any]
    ) -> Outcome: ...

    async def answer(
        self, station: str, version: str, frame: Call | Send, state: dict[str, Any]
    ) -> Outcome: ...

    def close(self) -> None: ...


class RunPolicy:
    """Where plain (non-async) handler methods run: the loop (``threads=0``) or a pool."""

    def __init__(self, threads: int = 0) -> None:
        self.pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="ocpp-handler") if threads > 0 else None
        )

    def in_loop(self, handler: Behaviour, method: Callable[..., Any] | None) -> bool:
        if method is None or getattr(method, "__ocpp_unimplemented__", False):
            return True  # answered by dispatch without calling anything
        if inspect.iscoroutinefunction(method):
            return False
        return self.pool is None or bool(getattr(handler, "inline", False))

    async def run_plain(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self.pool is not None
        run = contextvars.copy_context().run  # handlers' defer_sql reaches our transaction
        return await asyncio.get_running_loop().run_in_executor(self.pool, run, fn, *args)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


class HostedBackend:
    """ChargeSystem behaviours run in the bridge process, one per OCPP version."""

    def __init__(
        self,
        handlers: Mapping[str, Behaviour],
        *,
        store_path: str = "",
        threads: int = 0,
        call_station: CallStation | None = None,
        call_timeout: float = 30.0,
    ) -> None:
        self.handlers = dict(handlers)
        self.versions = tuple(sorted(self.handlers))
        self.store_path = store_path
        self.policy = RunPolicy(threads)
        self.call_station = call_station
        self.call_timeout = call_timeout
        self._now_cache: dict[tuple[str, str], bool] = {}
        self._slow_warned: set[str] = set()

    def runs_now(self, version: str, action: str) -> bool:
        key = (version, action)
        cached = self._now_cache.get(key)
        if cached is None:
            handler = self.handlers.get(version)
            cached = handler is None or self.policy.in_loop(handler, method_for(handler, action))
            self._now_cache[key] = cached
        return cached

    # -- the two ways of running, the same steps around them ---------------------------------

    def answer_now(
        self, station: str, version: str, frame: Call | Send, state: dict[str, Any]
    ) -> Outcome:
        handler = self.handlers.get(version)
        if handler is None:
            return Outcome(self._unserved(frame, version), [])
        ctx = Context(station, frame.message_id, version, state, self._no_calls)
        t0 = time.perf_counter()
        with collect_effects(self.store_path) as effects:
            answer = dispatch(handler, frame, ctx)
        self._warn_if_slow(frame.action, time.perf_counter() - t0)
        return Outcome(answer, effects)

    async def answer(
        self, station: str, version: str, frame: Call | Send, state: dict[str, Any]
    ) -> Outcome:
        handler = self.handlers.get(version)
        if handler is None:
            return Outcome(self._unserved(frame, version), [])
        method = method_for(handler, frame.action)
        with collect_effects(self.store_path) as effects:
            if method is not None and not inspect.iscoroutinefunction(method):
                ctx = Context(
                    station, frame.message_id, version, state, self._blocking_caller(station)
                )
                answer = await self.policy.run_plain(dispatch, handler, frame, ctx)
            else:
                ctx = Context(
                    station, frame.message_id, version, state, self._async_caller(station)
                )
                answer = await dispatch_async(handler, frame, ctx)
        return Outcome(answer, effects)

    def close(self) -> None:
        self.policy.close()

    # -- helpers ------------------------------------------------------------------------------

    def _unserved(self, frame: Call | Send, version: str) -> CallError:
        # the version is known, this bridge does not handle it (OCPP-J 4.3: NotSupported)
        return CallError(
            frame.message_id,
            error_code_for(ErrorCode.NOT_SUPPORTED, version),
            f"this bridge does not serve OCPP {version}",
            {},
        )

    def _warn_if_slow(self, action: str, elapsed: float) -> None:
        if elapsed > 0.1 and action not in self._slow_warned:
            self._slow_warned.add(action)
            log.warning(
                "the %s handler took %.0f ms in the event loop, holding up every station: make "
                "it async def, or give blocking handlers threads (--handler-threads)",
                action,
                elapsed * 1000,
            )

    def _no_calls(self, action: str, request: Any) -> Any:
        raise RuntimeError(
            "a handler method that is a plain function runs in the event loop and cannot wait "
            "for a station's answer: make it async def, or run the bridge with --handler-threads"
        )

    def _async_caller(self, station: str) -> Callable[[str, Any], Any]:
        call_station = self.call_station

        async def send_call(action: str, request: Any) -> CallResult | CallError:
            if call_station is None:
                raise RuntimeError("this bridge cannot call stations")
            return await call_station(station, action, request)

        return send_call

    def _blocking_caller(self, station: str) -> Callable[[str, Any], Any]:
        loop = asyncio.get_running_loop()
        send_call = self._async_caller(station)
        timeout = self.call_timeout * 2 + 5.0

        def send_call_blocking(action: str, request: Any) -> CallResult | CallError:
            fut = asyncio.run_coroutine_threadsafe(send_call(action, request), loop)
            answer: CallResult | CallError = fut.result(timeout)
            return answer

        return send_call_blocking
