"""Answers on their way out: stored first, then sent and acknowledged, in arrival order.

Each answer to a station's frame (a handler's answer, a stored answer sent again for a repeat,
a CALLERROR for an unreadable frame) waits here in one FIFO. Every answer ready in one turn of
the loop (or within ``commit_delay``) is stored in one transaction together with the handlers'
deferred writes and the stations' new state; only once that transaction is committed are the
answers published on ``down`` and their requests acknowledged to the broker, in order. A store
failure keeps them all (nothing sent, nothing acknowledged) and retries with back-off: the
handlers' writes are in the same transaction, so a retry neither loses nor repeats them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..rpc import Call, CallError, CallResult, ErrorCode, Frame, error_code_for
from .backend import Outcome
from .store import EffectsFailed, Finish, answered_now, store_future

if TYPE_CHECKING:
    from .inbound import Inbound, Item

__all__ = ["Answers", "Backoff", "Ready"]

log = logging.getLogger("ocpp_iot.bridge")

_RETRY_MAX = 30.0

StoreResult = bytes | EffectsFailed | None


@dataclass(slots=True)
class Ready:
    """An answer waiting to be stored (``finish``) and then sent, in order."""

    item: Item
    data: bytes | None
    frame: Frame | None
    finish: Finish | None = None
    done: asyncio.Future[None] | None = None
    state: dict[str, Any] | None = None


@dataclass
class Backoff:
    delay: float
    first: float
    failures: int = 0

    def next(self) -> float:
        self.failures += 1
        wait = self.delay
        self.delay = min(_RETRY_MAX, self.delay * 2)
        return wait

    def reset(self) -> None:
        self.delay = self.first
        self.failures = 0


class Answers:
    """The ordered way out of one bridge worker (see the module docstring)."""

    def __init__(self, inbound: Inbound) -> None:
        self.inbound = inbound
        self.bridge = inbound.bridge
        self.config = inbound.config
        self.store = inbound.store
        self._ready: list[Ready] = []
        self._flusher: asyncio.Task[None] | None = None  # a store awaited: later ones wait
        self._flush_timer: asyncio.Handle | None = None  # _flush_ready is due
        # stations whose handler state changed and is not stored yet: the latest state and
        # how many stores of it are pending (a later CALL must not see the older stored one)
        self._unstored: dict[str, tuple[dict[str, Any], int]] = {}
        self._touched: dict[str, tuple[str, float]] = {}  # station -> (version, last stored)
        # One worker alone owns the stations' state: what its handlers last made of it is the
        # truth even once stored (a CALL claimed before that store read an older state). With
        # several workers another may have changed it since: the claim's read is the truth.
        self._latest: dict[str, dict[str, Any]] | None = None if self.config.shared else {}
        self._retry = Backoff(self.config.store_retry, self.config.store_retry)

    @property
    def idle(self) -> bool:
        return not self._ready and self._flusher is None and self._flush_timer is None

    def state_of(self, station: str) -> dict[str, Any] | None:
        """The station's handler state as last changed here (while not yet stored; with a
        single worker, also after), or ``None`` to use what the claim read."""
        if self._latest is not None:
            latest = self._latest.get(station)
            return None if latest is None else dict(latest)
        pending = self._unstored.get(station)
        return dict(pending[0]) if pending else None

    # -- 3. finish ----------------------------------------------------------------------------

    def answered(
        self,
        item: Item,
        outcome: Outcome,
        state: dict[str, Any],
        before: str,
        done: asyncio.Future[None] | None = None,
    ) -> None:
        frame = item.frame
        assert isinstance(frame, Call)
        answer = outcome.answer
        if answer is None:  # pragma: no cover - dispatch answers every CALL
            answer = CallError(frame.message_id, ErrorCode.INTERNAL_ERROR, "no answer", {})
        data, answer = self._encode_answer(item, frame, answer)
        now = time.time()
        changed = (json.dumps(state, sort_keys=True) if state else "") != before
        if changed:
            pending = self._unstored.get(item.station)
            self._unstored[item.station] = (state, (pending[1] if pending else 0) + 1)
            if self._latest is not None:
                self._latest[item.station] = state
        seen = self._touched.get(item.station)
        touch = seen is None or seen[0] != item.version or now - seen[1] > 60.0
        if touch:
            self._touched[item.station] = (item.version, now)
        finish = Finish(
            item.station,
            frame.message_id,
            data,
            item.version,
            now,
            state if changed else None,
            outcome.effects,
            touch,
            item.fingerprint,
            replaces=not self.config.shared,
        )
        self.inbound.sessions[item.station].respond(answer, stored=data)
        self._push(Ready(item, data, answer, finish, done, state if changed else None))

    def _encode_answer(
        self, item: Item, call: Call, answer: CallResult | CallError
    ) -> tuple[bytes, CallResult | CallError]:
        try:
            return self.bridge.encode_down(answer, item.version, item.as_json), answer
        except Exception as exc:
            log.error("cannot encode the answer to %s %s: %s", call.action, call.message_id, exc)
            err = CallError(
                call.message_id,
                error_code_for(ErrorCode.INTERNAL_ERROR, item.version),
                "the answer could not be encoded",
                {},
            )
            return self.bridge.encode_down(err, item.version, item.as_json), err

    def queue_error(self, item: Item, answer: CallError | None, done: Any) -> None:
        if answer is None:
            self.bridge.ack(item.msg)
            return
        try:
            data = self.bridge.encode_down(answer, item.version, item.as_json)
        except Exception as exc:
            log.error("cannot encode %r for %s: %s", answer, item.station, exc)
            self.bridge.ack(item.msg)
            return
        self._push(Ready(item, data, answer))

    def queue_raw(self, item: Item, data: bytes | None, answer: Any) -> None:
        if data is None:
            data = self.bridge.encode_down(answer, item.version, item.as_json)
        self._push(Ready(item, data, None))

    def _push(self, ready: Ready) -> None:
        self._ready.append(ready)
        if self._flusher is not None or self._flush_timer is not None:
            return
        delay = self.config.commit_delay
        loop = asyncio.get_running_loop()
        if delay > 0 and len(self._ready) < 256:
            self._flush_timer = loop.call_later(delay, self._flush_ready)
        else:  # after this turn of the loop: with every answer it makes
            self._flush_timer = loop.call_soon(self._flush_ready)

    def _flush_ready(self) -> None:
        """Store every ready answer in one transaction, then send and acknowledge them: in this
        callback when the store answers in the loop, else in :meth:`_flush` (a task awaiting
        the database thread, or retrying after a failure), which later answers wait for."""
        self._flush_timer = None
        while self._ready and self._flusher is None:
            batch, self._ready = self._ready, []
            stored = self._store(batch)
            if stored is not None and not answered_now(stored):
                self._flusher = asyncio.ensure_future(self._flush(batch, stored))
                return
            self._send(batch, [] if stored is None else stored.result())

    def _store(self, batch: list[Ready]) -> asyncio.Future[list[StoreResult]] | None:
        finishes = [r.finish for r in batch if r.finish is not None]
        if not finishes:
            return None
        return store_future(lambda: self.store.finish_calls(finishes))

    async def _flush(self, batch: list[Ready], stored: asyncio.Future[list[StoreResult]]) -> None:
        try:
            while True:
                try:
                    results = await stored
                    break
                except Exception as exc:
                    wait = self._retry.next()
                    log.error(
                        "could not store %d answers (%s); nothing sent or acknowledged, "
                        "retrying in %.1f s",
                        sum(1 for r in batch if r.finish is not None),
                        exc,
                        wait,
                    )
                    await asyncio.sleep(wait)
                    again = self._store(batch)
                    assert again is not None  # the same batch has the same finishes
                    stored = again
            if self._retry.failures:
                log.warning("the store answers again: %d answers stored", len(results))
                self._retry.reset()
            self._send(batch, results)
        finally:
            self._flusher = None
            if self._ready and self._flush_timer is None:  # came meanwhile
                self._flush_timer = asyncio.get_running_loop().call_soon(self._flush_ready)

    def _send(self, batch: list[Ready], results: list[StoreResult]) -> None:
        """The batch is stored: send and acknowledge its answers, in order."""
        stored = iter(results)
        for ready in batch:
            result = next(stored) if ready.finish is not None else None
            try:
                self._deliver(ready, result)
            except Exception:
                log.exception("failed to send an answer to %s", ready.item.station)
                if ready.done is not None and not ready.done.done():
                    ready.done.set_result(None)  # the station's next frame goes on

    def _deliver(self, ready: Ready, result: bytes | EffectsFailed | None) -> None:
        item = ready.item
        if ready.state is not None:
            pending = self._unstored.get(item.station)
            if pending is not None and pending[1] <= 1:
                del self._unstored[item.station]
            elif pending is not None:
                self._unstored[item.station] = (pending[0], pending[1] - 1)
        if isinstance(result, EffectsFailed):
            frame = item.frame
            assert isinstance(frame, Call)
            log.error("the %s handler's writes failed: %s", frame.action, result)
            err = CallError(
                frame.message_id,
                error_code_for(ErrorCode.INTERNAL_ERROR, item.version),
                "the handler's writes failed",
                {},
            )
            self._forget(item)
            self.bridge.send_down(item.station, item.version, err, item.as_json)
        elif result is not None:  # another copy was answered first: send the same answer
            self.bridge.publish_down(item.station, result)
        elif ready.data is not None:
            self.bridge.publish_down(item.station, ready.data)
            if ready.frame is not None:
                self.bridge.observe_down(item.station, item.version, ready.frame, ready.data)
        self.bridge.ack(item.msg)
        if ready.done is not None and not ready.done.done():
            ready.done.set_result(None)

    def _forget(self, item: Item) -> None:
        if item.frame is not None:
            self.inbound.forget(item.station, item.frame.message_id)
