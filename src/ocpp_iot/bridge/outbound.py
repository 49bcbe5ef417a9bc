"""CALLs from the back end to stations: operators' (``json/call``) and handlers' (``ctx.call``).

Each station has one :class:`~ocpp_iot.rpc.OutboundQueue` (OCPP-J 4.1.1: one CALL of ours
outstanding, the rest queued behind it, each abandoned unsent once the caller's patience runs
out). The queue is kept in the store under the station (``update_station_state``), so every
bridge worker applies the same rules to the same queue inside one transaction: any worker may
receive the station's answer. Message ids are the queue's short per-station counter (what goes
over a metered link is a few bytes, not a UUID); an operator's own id is kept in the call's tag
and used again on ``json/result``.

Nothing here signals through a frame's ``error_details``: a handler waiting for an answer gets
the answer or :class:`~ocpp_iot.bridge.CallTimeout`; a waiter in another worker is told over
the workers' internal topic with an explicit kind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..codecs import DecodeError
from ..rpc import (
    MAX_DESCRIPTION,
    Call,
    CallError,
    CallResult,
    ErrorCode,
    OutboundQueue,
    Pending,
    error_code_for,
)
from ..transports.mqtt import Message
from . import _wire
from ._validate import validate_call
from .config import CallTimeout

if TYPE_CHECKING:
    from .service import Bridge

__all__ = ["Outbound", "validate_call"]

log = logging.getLogger("ocpp_iot.bridge")

R = TypeVar("R")
KEY = "outbound"  #: the store key of a station's queue
_FULL_SCAN = 15.0  #: seconds between scans of every station's queue for timeouts


class Outbound:
    """The outbound half of one bridge worker (see the module docstring)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.config = bridge.config
        self.timeout = self.config.call_timeout
        self._waiters: dict[tuple[str, str], asyncio.Future[CallResult | CallError]] = {}
        self._due: dict[str, float] = {}  # station -> when its queue next needs expire()
        self._last_scan = 0.0

    # -- submitting ---------------------------------------------------------------------------

    async def call(
        self, station: str, action: str, request: Any, *, timeout: float | None = None
    ) -> CallResult | CallError:
        """Send a CALL to ``station`` (after its outstanding one) and wait for the answer.

        ``request`` is a model or a JSON-level dict. A CALL that fails validation is answered
        here with the CALLERROR the station would give, without sending it. Raises
        :class:`CallTimeout` if no answer comes within the call timeout (queue time included).
        """
        payload = request.to_payload() if hasattr(request, "to_payload") else dict(request)
        version = await self.bridge.version_of(station)
        invalid = validate_call(version, Call("-", action, payload))
        if invalid is not None:
            return invalid
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[CallResult | CallError] = loop.create_future()
        # the caller's patience: queued this long at most (never sent after it has given up),
        # then the call timeout once sent (OCPP-J 4.1.1), after which the queue tells us
        patience = self.timeout if timeout is None else timeout
        tag = {"w": self.bridge.owner}
        mid = await self._submit(station, version, action, payload, tag, fut, patience)
        try:
            limit = patience + self.timeout + 1.0
            return await asyncio.wait_for(fut, limit)
        except TimeoutError:
            await self._withdraw(station, mid)
            raise CallTimeout(f"{station} did not answer {action} {mid}") from None
        except asyncio.CancelledError:  # the handler gave up: never send it now
            await asyncio.shield(self._withdraw(station, mid))
            raise
        finally:
            self._waiters.pop((station, mid), None)

    async def _withdraw(self, station: str, mid: str) -> None:
        """Take our CALL ``mid`` out of the station's queue if it has not been sent yet."""
        try:
            await self._update(station, lambda q, now: (q.withdraw(mid), None))
        except Exception:
            log.exception("could not withdraw %s for %s (it may still be sent)", mid, station)

    async def _update(
        self,
        station: str,
        change: Callable[[OutboundQueue, float], tuple[R, Call | None]],
        now: float | None = None,
    ) -> tuple[R, Call | None]:
        """Apply ``change`` to the station's queue in one store transaction, then the rules that
        follow every change (abandon what timed out, send what is due next: rpc.OutboundQueue),
        and act on them here. ``change(queue, now)`` returns its result and the CALL it put on
        the air itself, if any; this returns that result and the CALL transmitted now."""
        at = time.time() if now is None else now
        timeout = self.timeout

        def step(value: Any) -> tuple[Any, tuple[R, Call | None, list[Pending], float | None]]:
            q = OutboundQueue.from_json(value, timeout)
            result, sent = change(q, at)
            expired = q.expire(at)
            to_send = sent or q.take_next(at)
            return q.to_json(), (result, to_send, expired, q.deadline())

        result, to_send, expired, due = await self.bridge.store.update_station_state(
            station, KEY, step, at
        )
        self._after_step(station, to_send, expired, due)
        return result, to_send

    async def operator(self, station: str, msg: Message) -> None:
        """An operator's OCPP-J CALL on ``json/call``: validate, queue, answer on json/result.

        Acknowledged once answered (a refusal) or queued; a store failure leaves it
        unacknowledged (logged), and the broker delivers it again on the next connection."""
        try:
            version = await self.bridge.version_of(station)
            try:
                frame = _wire.json_decode(msg.payload, version)
                if not isinstance(frame, Call):
                    raise DecodeError("expected a CALL: [2, messageId, action, payload]")
            except DecodeError as exc:
                log.warning("bad operator call for %s: %s", station, exc)
                code = error_code_for(ErrorCode.FORMAT_VIOLATION, version)
                err = CallError(exc.message_id or "-1", code, str(exc)[:MAX_DESCRIPTION], {})
                self.bridge.publish_result(station, err)
                self.bridge.ack(msg)
                return
            invalid = validate_call(version, frame)
            if invalid is not None:
                log.warning(
                    "refused an operator's %s for %s: %s %s",
                    frame.action,
                    station,
                    invalid.error_code,
                    invalid.error_description,
                )
                self.bridge.publish_result(station, invalid)
                self.bridge.ack(msg)
                return
            tag = {"op": frame.message_id}
            await self._submit(station, version, frame.action, frame.payload, tag, None)
        except Exception:
            log.exception("could not queue an operator's CALL for %s; left unacknowledged", station)
            return
        self.bridge.ack(msg)

    async def _submit(
        self,
        station: str,
        version: str,
        action: str,
        payload: dict[str, Any],
        tag: dict[str, Any],
        fut: asyncio.Future[CallResult | CallError] | None,
        patience: float | None = None,
    ) -> str:
        def add(q: OutboundQueue, now: float) -> tuple[str, Call | None]:
            op = tag.get("op")
            for p in q.items if op is not None else ():
                if isinstance(p.tag, dict) and p.tag.get("op") == op:  # the same operator CALL
                    return p.call.message_id, None
            mid = q.new_message_id()
            return mid, q.add(Call(mid, action, payload), now, patience=patience, tag=tag)

        mid, to_send = await self._update(station, add)
        if fut is not None:
            self._waiters[(station, mid)] = fut
        if to_send is None or to_send.message_id != mid:
            log.info("queued %s %s for %s behind its outstanding CALL", action, mid, station)
        return mid

    def _after_step(
        self, station: str, to_send: Call | None, expired: list[Pending], due: float | None
    ) -> None:
        for pending in expired:
            self._abandoned(station, pending)
        if due is None:
            self._due.pop(station, None)
        else:
            self._due[station] = due
        if to_send is not None:
            self._transmit(station, to_send)

    def _transmit(self, station: str, call: Call) -> None:
        version = self.bridge.known_version(station)
        try:  # in the encoding the station last spoke (OCPP-J text or compact CBOR)
            data = self.bridge.encode_down(call, version, station in self.bridge.json_stations)
        except Exception as exc:  # validated before, so a codec bug
            log.error("cannot encode %s %s for %s: %s", call.action, call.message_id, station, exc)
            return  # it times out like a lost frame
        self.bridge.publish_down(station, data)
        self.bridge.observe_down(station, version, call, data)

    # -- answers and timeouts -----------------------------------------------------------------

    async def answered(self, station: str, frame: CallResult | CallError, msg: Message) -> None:
        """A station answered one of our CALLs (acknowledged once the queue is updated)."""
        try:
            pending, _ = await self._update(
                station, lambda q, now: (q.answered(frame.message_id), None)
            )
        except Exception:
            log.exception("could not record %s's answer to %s", station, frame.message_id)
            return  # not acknowledged: the broker delivers it again
        self.bridge.ack(msg)
        if pending is None:
            log.warning(
                "%s answered %s, which is not an outstanding CALL (late or unknown)",
                station,
                frame.message_id,
            )
        else:
            if isinstance(frame, CallResult) and frame.action is None:
                frame = CallResult(frame.message_id, frame.payload, pending.call.action)
            self._settle(station, pending, frame)

    async def expire(self, now: float) -> None:
        """Abandon CALLs that timed out and send what is due next (housekeeping, every second)."""
        if now - self._last_scan >= _FULL_SCAN:  # also queues other workers left behind
            self._last_scan = now
            for station, value in await self.bridge.store.scan_station_state(KEY):
                due = OutboundQueue.from_json(value, self.timeout).deadline()
                if due is not None:
                    self._due[station] = due
        for station in [s for s, due in self._due.items() if due <= now]:
            await self._expire_station(station, now)

    async def _expire_station(self, station: str, now: float) -> None:
        await self._update(station, lambda q, at: (None, None), now)

    def _abandoned(self, station: str, pending: Pending) -> None:
        call = pending.call
        if pending.sent_at is None:
            why = f"not sent: {station} was still busy after {self.timeout:g} s"
        else:
            why = f"no answer from {station} within {self.timeout:g} s"
        log.warning("gave up %s %s for %s: %s", call.action, call.message_id, station, why)
        self._settle(station, pending, None, why)

    def _settle(
        self,
        station: str,
        pending: Pending,
        answer: CallResult | CallError | None,
        why: str = "",
    ) -> None:
        """Hand an answer (or, with ``None``, the news that there is none) to whoever waits."""
        tag = pending.tag or {}
        mid = pending.call.message_id
        if "op" in tag:  # an operator: json/result, under the operator's own id
            op_id = str(tag["op"])
            if answer is None:
                out: CallResult | CallError = CallError(op_id, ErrorCode.GENERIC_ERROR, why, {})
            elif isinstance(answer, CallResult):
                out = CallResult(op_id, answer.payload, answer.action)
            else:
                out = CallError(
                    op_id, answer.error_code, answer.error_description, answer.error_details
                )
            self.bridge.publish_result(station, out)
            return
        owner = tag.get("w")
        if owner == self.bridge.owner or not self.config.shared:
            self._wake(station, mid, answer, why)
        elif owner:
            body: dict[str, Any] = {"station": station, "id": mid}
            if answer is None:
                body.update(kind="timeout", why=why)
            else:
                body.update(kind="answer", frame=json.loads(_wire.json_encode(answer)))
                body["action"] = pending.call.action
                body["version"] = self.bridge.known_version(station)
            self.bridge.relay(str(owner), json.dumps(body).encode())

    def _wake(
        self, station: str, mid: str, answer: CallResult | CallError | None, why: str
    ) -> None:
        fut = self._waiters.get((station, mid))
        if fut is None or fut.done():
            return
        if answer is None:
            fut.set_exception(CallTimeout(why))
        else:
            fut.set_result(answer)

    def relayed(self, payload: bytes) -> None:
        """Another worker received the answer to one of our handlers' CALLs."""
        try:
            body = json.loads(payload)
            station, mid = str(body["station"]), str(body["id"])
            if body["kind"] == "timeout":
                self._wake(station, mid, None, str(body.get("why", "")))
                return
            version = str(body.get("version") or self.config.default_version)
            frame = _wire.json_decode(json.dumps(body["frame"]).encode(), version)
            if isinstance(frame, CallResult):
                frame = CallResult(frame.message_id, frame.payload, body.get("action"))
            if isinstance(frame, CallResult | CallError):
                self._wake(station, mid, frame, "")
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("bad message from another worker: %s", exc)
