"""The bridge service: OCPP over MQTT topics, answered by ChargeSystem behaviours.

One :class:`Bridge` is one worker: one MQTT client, one asyncio loop. It

- receives stations' compact frames on ``{prefix}/{station}/up``, answers CALLs through the
  behaviour of the station's OCPP version and publishes the answer on ``.../down``;
- calls stations for operators (``.../json/call`` -> ``.../json/result``) and for handler code
  (``ctx.send_call``), one outstanding CALL per station, the rest queued in the store;
- mirrors every frame as OCPP-J on ``.../json/up`` and ``.../json/down``;
- keeps ``{prefix}/bridge/status`` (retained, its will) and the stations' status topics.

Delivery: messages are acknowledged to the broker only once handled (``manual_ack``) on a
persistent session, so a frame the bridge had not finished when it died is delivered again when
it comes back; the store's answered-CALL cache turns that second copy into a resend of the
stored answer, and the handler runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..behaviours import Behaviour, Context, dispatch, dispatch_async, method_for
from ..rpc import (
    Call,
    CallError,
    CallResult,
    CallResultError,
    ErrorCode,
    Frame,
    Send,
    error_code_for,
    error_for_undecodable,
)
from ..transports.mqtt import LoopMqttClient, Message, MqttSettings, Will
from . import _wire
from .store import Claim, ClaimResult, EffectsFailed, Finish, OutgoingCall, Store, collect_effects

__all__ = ["Bridge", "BridgeConfig", "CallTimeout"]

log = logging.getLogger("ocpp_iot.bridge")
traffic_log = logging.getLogger("ocpp_iot.bridge.traffic")

_STATION_RE = re.compile(r"^[^/+#\s]{1,48}$")


class CallTimeout(TimeoutError):
    """A station did not answer a CALL from the bridge in time."""


@dataclass
class BridgeConfig:
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    prefix: str = "ocpp"
    mirror: bool = True
    #: seconds a station has to answer a CALL from the bridge
    call_timeout: float = 30.0
    #: version used to call a station the bridge has not heard from yet
    default_version: str = "2.0.1"
    workers: int = 1
    worker_index: int = 0
    #: answered CALLs are remembered this long (seconds) for duplicate detection: longer than
    #: a bridge outage plus a station's retry interval
    dedup_retention: float = 3_600.0
    #: answers wait up to this long (seconds) to be stored together with others: one
    #: transaction for many under load, at the cost of this much latency
    commit_delay: float = 0.0
    #: threads for handler methods that are plain functions; 0 runs them in the event loop
    #: (fastest; right for handlers that do not block, wrong for ones that do)
    handler_threads: int = 0

    @property
    def shared(self) -> bool:
        return self.workers > 1

    @property
    def owner(self) -> str:
        base = self.mqtt.client_id or "ocpp-bridge"
        return f"{base}-w{self.worker_index}" if self.workers > 1 else base


def _settle(fut: asyncio.Future[CallResult | CallError], answer: CallResult | CallError) -> None:
    """Hand a station's answer (or the bridge's timeout) to the handler waiting for it."""
    if fut.done():
        return
    if isinstance(answer, CallError) and answer.error_details.get("bridge") == "timeout":
        fut.set_exception(CallTimeout(answer.error_description))
    else:
        fut.set_result(answer)


class Bridge:
    """One bridge worker. ``handlers`` maps OCPP versions to ChargeSystem behaviours."""

    def __init__(
        self,
        config: BridgeConfig,
        handlers: Mapping[str, Behaviour],
        store: Store,
        *,
        observer: Callable[[str, str, Frame, bytes], None] | None = None,
    ) -> None:
        self.config = config
        self.handlers = dict(handlers)
        self.store = store
        self.observer = observer
        self.prefix = config.prefix.rstrip("/")
        self.owner = config.owner
        #: the database handlers may join transactions with (``defer_sql``), if any
        self.store_path: str = getattr(store, "path", "")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_hand: set[tuple[str, str]] = set()  # CALLs being handled (one worker)
        self._flush_timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._commits: list[tuple[Finish, Callable[[bytes | EffectsFailed | None], None]]] = []
        self._touched: dict[str, tuple[str, float]] = {}  # station -> (version, last stored)
        self._inline_cache: dict[tuple[str, str], bool] = {}
        self._slow_warned: set[str] = set()
        self._station_queues: dict[str, deque[tuple[Message, str, Call | Send]]] = {}
        #: CALLs/SENDs of the current socket read, handled together after it (one claim)
        self._batch: list[tuple[str, Message, str, Call | Send]] = []
        self._batch_stations: set[str] = set()
        self._station_tasks: dict[str, asyncio.Task[None]] = {}
        self._waiters: dict[str, asyncio.Future[CallResult | CallError]] = {}
        self._status: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pool = (
            ThreadPoolExecutor(config.handler_threads, thread_name_prefix="ocpp-handler")
            if config.handler_threads > 0
            else None
        )
        self.client: LoopMqttClient | None = None
        self.stats = {"up": 0, "down": 0, "calls": 0, "duplicates": 0, "dropped": 0}

    # -- topics -------------------------------------------------------------------------------

    def topic(self, station: str, kind: str) -> str:
        return f"{self.prefix}/{station}/{kind}"

    @property
    def status_topic(self) -> str:
        if self.config.shared and self.config.worker_index:
            return f"{self.prefix}/bridge/status/w{self.config.worker_index}"
        return f"{self.prefix}/bridge/status"

    @property
    def internal_topic(self) -> str:
        return f"{self.prefix}/bridge/worker/{self.owner}"

    def _subscriptions(self) -> list[str]:
        share = "$share/bridge/" if self.config.shared else ""
        subs = [
            f"{share}{self.prefix}/+/up",
            f"{share}{self.prefix}/+/json/call",
            f"{self.prefix}/+/status",
        ]
        if self.config.shared:
            subs.append(self.internal_topic)
        return subs

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then leave cleanly (publish offline, close the store)."""
        self._loop = asyncio.get_running_loop()
        released = self.store.release_owner(self.owner)
        if released:
            log.info("released %d CALLs left in progress by a previous run", released)
        offline = Will(self.status_topic, b"offline", 1, True)
        settings = dataclasses.replace(
            self.config.mqtt,
            client_id=self.owner,
            will=offline,
            birth=(Will(self.status_topic, b"online", 1, True),),
        )
        self.client = LoopMqttClient(settings, self._on_mqtt_message, manual_ack=True)
        for sub in self._subscriptions():
            self.client.subscribe(sub, 1)
        self.client.start()
        log.info(
            "bridge %s serving %s/+/up on %s (versions %s, mirror %s)",
            self.owner,
            self.prefix,
            settings.url,
            ",".join(sorted(self.handlers)),
            "on" if self.config.mirror else "off",
        )
        timer = asyncio.create_task(self._housekeeping())
        try:
            await stop.wait()
        finally:
            log.info("bridge %s shutting down", self.owner)
            timer.cancel()
            pending = [t for t in self._station_tasks.values() if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=5.0)
            self._run_batch()
            self._flush_commits()
            await self.client.stop_async([offline])
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self.store.close()

    async def _housekeeping(self) -> None:
        last_prune = 0.0
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            try:
                for call, nxt in self.store.expire_calls(now - self.config.call_timeout, now):
                    self._call_failed(
                        call,
                        CallError(
                            call.message_id,
                            "GenericError",
                            f"no answer from {call.station} within {self.config.call_timeout:g} s",
                            {"bridge": "timeout"},
                        ),
                    )
                    if nxt is not None:
                        self._send_outgoing(nxt)
                if now - last_prune > 60:
                    last_prune = now
                    self.store.prune(now - self.config.dedup_retention)
            except Exception:
                log.exception("housekeeping failed")

    # -- receiving ----------------------------------------------------------------------------

    def _split(self, topic: str) -> tuple[str, str] | None:
        if not topic.startswith(self.prefix + "/"):
            return None
        rest = topic[len(self.prefix) + 1 :]
        station, _, kind = rest.partition("/")
        return station, kind

    def _on_mqtt_message(self, msg: Message) -> None:
        """Called by the MQTT client in the event loop's thread, for every message."""
        try:
            self._route(msg)
        except Exception:
            log.exception("failed to handle a message on %s", msg.topic)
            self._ack(msg)

    def _ack(self, msg: Message) -> None:
        if self.client is not None:
            self.client.ack(msg)

    def _route(self, msg: Message) -> None:
        parts = self._split(msg.topic)
        if parts is None:
            self._ack(msg)
            return
        station, kind = parts
        if msg.topic == self.internal_topic:
            self._internal(msg)
        elif station == "bridge" or not _STATION_RE.match(station):
            self._ack(msg)
        elif kind == "up":
            self._up(station, msg)
        elif kind == "json/call":
            self._spawn(self._operator_call(station, msg))
        elif kind == "status":
            self._station_status(station, msg)
        else:
            self._ack(msg)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _station_status(self, station: str, msg: Message) -> None:
        status = msg.payload.decode(errors="replace")[:32]
        self._status[station] = status
        with contextlib.suppress(Exception):
            self.store.set_status(station, status, time.time())
        self._ack(msg)

    def _up(self, station: str, msg: Message) -> None:
        self.stats["up"] += 1
        try:
            version, frame = _wire.decode(msg.payload)
        except _wire.DecodeError as exc:
            self._undecodable(station, msg, exc)
            return
        except Exception as exc:  # a codec bug must not take the bridge down
            log.exception("codec failed on a frame from %s", station)
            self._undecodable(station, msg, _wire.DecodeError(f"codec failure: {exc}"))
            return
        self._observe("up", station, frame, msg.payload)
        if self.config.mirror:
            self._mirror(station, "json/up", frame)
        if self._status.get(station) == "offline":
            # The station is evidently connected: keep its status topic true.
            self._status[station] = "online"
            self._publish(self.topic(station, "status"), b"online", retain=True)
        if isinstance(frame, Call | Send):
            if station not in self._station_tasks and self._inline(version, frame.action):
                # handled right after this socket read, with the other CALLs it brought
                if not self._batch:
                    assert self._loop is not None
                    self._loop.call_soon(self._run_batch)
                self._batch.append((station, msg, version, frame))
                self._batch_stations.add(station)
                return
            if station in self._batch_stations:
                self._run_batch()  # the station's earlier frames first
            q = self._station_queues.setdefault(station, deque())
            q.append((msg, version, frame))
            if station not in self._station_tasks:
                self._station_tasks[station] = asyncio.ensure_future(self._drain(station))
        elif isinstance(frame, CallResult | CallError):
            self._answer_received(station, frame, version)
            self._ack(msg)
        elif isinstance(frame, CallResultError):
            log.warning(
                "%s rejected our answer to %s: %s %s",
                station,
                frame.message_id,
                frame.error_code,
                frame.error_description,
            )
            self._ack(msg)
        else:  # pragma: no cover - the codec returns only frames
            self._ack(msg)

    def _undecodable(self, station: str, msg: Message, exc: _wire.DecodeError) -> None:
        if station in self._batch_stations:
            self._run_batch()  # answer the station's frames in the order they came
        self.stats["dropped"] += 1
        version = getattr(exc, "version", None) or self._known_version(station)
        answer = error_for_undecodable(
            exc.message_id,
            getattr(exc, "error_code", ErrorCode.RPC_FRAMEWORK_ERROR),
            str(exc),
            version,
        )
        if answer is None:
            log.warning("dropped an unreadable frame from %s: %s", station, exc)
        else:
            log.warning(
                "answered an unreadable frame from %s with %s: %s", station, answer.error_code, exc
            )
            self._send_frame(station, answer, version)
        self._ack(msg)

    def _known_version(self, station: str) -> str:
        try:
            return self.store.station_version(station) or self.config.default_version
        except Exception:
            return self.config.default_version

    def _inline(self, version: str, action: str) -> bool:
        """Whether a CALL can be handled right here, synchronously, in the event loop."""
        key = (version, action)
        cached = self._inline_cache.get(key)
        if cached is None:
            handler = self.handlers.get(version)
            method = None if handler is None else method_for(handler, action)
            cached = (
                method is None
                or getattr(method, "__ocpp_unimplemented__", False)
                or (
                    not inspect.iscoroutinefunction(method)
                    and (self._pool is None or getattr(handler, "inline", False))
                )
            )
            self._inline_cache[key] = cached
        return cached

    def _run_batch(self) -> None:
        """Handle the CALLs and SENDs of one socket read: one store lookup (one transaction
        with several workers) for all the CALLs, then each in the order it came."""
        batch, self._batch = self._batch, []
        self._batch_stations.clear()
        if not batch:
            return
        calls = [(i, (s, m, f)) for i, (s, m, _, f) in enumerate(batch) if isinstance(f, Call)]
        claims: dict[int, ClaimResult | None] = {}
        if calls:
            items = [item for _, item in calls]
            try:
                results = self._claims(items)  # type: ignore[arg-type]
            except Exception:
                log.exception("could not look up %d CALLs in the store", len(calls))
                results = [None] * len(calls)
                for station, msg, call in items:
                    self._in_hand.discard((station, call.message_id))
                    self._ack(msg)
            claims = {i: r for (i, _), r in zip(calls, results, strict=True)}
        for i, (station, msg, version, frame) in enumerate(batch):
            if isinstance(frame, Call) and claims[i] is None:
                continue  # a repeat, dealt with
            try:
                self._handle_call_inline(station, msg, version, frame, claims.get(i))
            except Exception:
                log.exception("failed to handle %s from %s", frame.message_id, station)
                self._in_hand.discard((station, frame.message_id))
                self._ack(msg)

    def _claims(self, items: list[tuple[str, Message, Call]]) -> list[ClaimResult | None]:
        """Duplicate detection for CALLs, in one store call; per CALL its claim, or None if it
        was a repeat and has been dealt with (acknowledged, and answered if it was before)."""
        shared = self.config.shared
        out: list[ClaimResult | None] = [None] * len(items)
        todo: list[int] = []
        seen: set[tuple[str, str]] = set()
        for i, (station, msg, call) in enumerate(items):
            key = (station, call.message_id)
            if key in seen or (not shared and key in self._in_hand):
                self.stats["duplicates"] += 1
                log.info("repeated CALL %s from %s is already in hand", call.message_id, station)
                self._ack(msg)
                continue
            seen.add(key)
            todo.append(i)
        if not todo:
            return out
        keys = [(items[i][0], items[i][2].message_id) for i in todo]
        results = self.store.claim_calls(keys, self.owner, time.time(), mark=shared)
        for i, claim in zip(todo, results, strict=True):
            station, msg, call = items[i]
            if claim.claim is Claim.DONE:
                self.stats["duplicates"] += 1
                assert claim.response is not None
                log.info(
                    "repeated CALL %s from %s: sending the stored answer", call.message_id, station
                )
                self._publish(self.topic(station, "down"), claim.response)
                self._ack(msg)
            elif claim.claim is Claim.BUSY:
                self.stats["duplicates"] += 1
                log.info("repeated CALL %s from %s is in hand elsewhere", call.message_id, station)
                self._ack(msg)
            else:
                self._in_hand.add((station, call.message_id))
                out[i] = claim
        return out

    def _started(self, claim: ClaimResult) -> tuple[dict[str, Any], str]:
        """A claimed CALL starts: its station state, and that state as JSON (to see later
        whether the handler changed it)."""
        self.stats["calls"] += 1
        state = claim.state
        return state, json.dumps(state, sort_keys=True) if state else ""

    def _send_handled(self, station: str, msg: Message, frame: Send, err: Any) -> None:
        """An unconfirmed SEND (OCPP 2.1) was handled: nothing goes back, failures are logged."""
        if err is not None:
            log.warning("SEND %s from %s failed: %s", frame.action, station, err)
        self._ack(msg)

    def _handle_call_inline(
        self,
        station: str,
        msg: Message,
        version: str,
        frame: Call | Send,
        claim: ClaimResult | None,
    ) -> None:
        handler = self.handlers.get(version)
        if isinstance(frame, Send):
            err = None
            if handler is not None:
                ctx = Context(station, frame.message_id, version, {}, self._no_sender)
                err = dispatch(handler, frame, ctx)
            self._send_handled(station, msg, frame, err)
            return
        assert claim is not None
        state, before = self._started(claim)
        t0 = time.perf_counter()
        try:
            with collect_effects(self.store_path) as effects:
                if handler is None:
                    answer: CallResult | CallError = self._unserved(frame, version)
                else:
                    ctx = Context(station, frame.message_id, version, state, self._no_sender)
                    answer = dispatch(handler, frame, ctx)  # type: ignore[assignment]
        except BaseException:
            self._in_hand.discard((station, frame.message_id))
            raise
        elapsed = time.perf_counter() - t0
        if elapsed > 0.1 and frame.action not in self._slow_warned:
            self._slow_warned.add(frame.action)
            log.warning(
                "the %s handler took %.0f ms in the event loop, holding up every station: make "
                "it async def, or give blocking handlers threads (--handler-threads)",
                frame.action,
                elapsed * 1000,
            )
        self._complete(station, msg, version, frame, answer, state, before, effects)

    async def _drain(self, station: str) -> None:
        q = self._station_queues[station]
        try:
            while q:
                msg, version, frame = q.popleft()
                try:
                    await self._handle_call(station, msg, version, frame)
                except Exception:
                    log.exception("failed to handle %s from %s", frame.message_id, station)
                    self._in_hand.discard((station, frame.message_id))
                    self._ack(msg)
        finally:
            del self._station_tasks[station]
            if not q:
                self._station_queues.pop(station, None)
            else:  # a frame arrived while we were finishing
                self._station_tasks[station] = asyncio.ensure_future(self._drain(station))

    async def _handle_call(
        self, station: str, msg: Message, version: str, frame: Call | Send
    ) -> None:
        if isinstance(frame, Send):
            handler = self.handlers.get(version)
            err = None
            if handler is not None:
                ctx = Context(station, frame.message_id, version, {}, self._sender(station, True))
                err = await dispatch_async(handler, frame, ctx)
            self._send_handled(station, msg, frame, err)
            return
        claim = self._claims([(station, msg, frame)])[0]
        if claim is None:
            return
        state, before = self._started(claim)
        with collect_effects(self.store_path) as effects:
            answer = await self._dispatch(station, version, frame, state)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._complete(station, msg, version, frame, answer, state, before, effects, done)
        await done  # the station's next frame waits for this one's answer to be stored

    def _unserved(self, call: Call, version: str) -> CallError:
        return CallError(
            call.message_id,
            error_code_for(ErrorCode.NOT_SUPPORTED, version),
            f"this bridge does not serve OCPP {version}",
            {},
        )

    async def _dispatch(
        self, station: str, version: str, call: Call, state: dict[str, Any]
    ) -> CallResult | CallError:
        handler = self.handlers.get(version)
        if handler is None:
            return self._unserved(call, version)
        method = method_for(handler, call.action)
        if self._pool is not None and not inspect.iscoroutinefunction(method):
            ctx = Context(station, call.message_id, version, state, self._sender(station, False))
            assert self._loop is not None
            run = contextvars.copy_context().run  # handlers' defer_sql reaches our transaction
            result = await self._loop.run_in_executor(self._pool, run, dispatch, handler, call, ctx)
        else:
            ctx = Context(station, call.message_id, version, state, self._sender(station, True))
            result = await dispatch_async(handler, call, ctx)
        if result is None:  # pragma: no cover - only for SEND
            result = CallError(call.message_id, ErrorCode.INTERNAL_ERROR, "no answer", {})
        return result

    def _complete(
        self,
        station: str,
        msg: Message,
        version: str,
        call: Call,
        answer: CallResult | CallError,
        state: dict[str, Any],
        state_before: str,
        effects: list[Any],
        done: asyncio.Future[None] | None = None,
    ) -> None:
        """Store the answer with the handler's writes (batched), then send it and ack."""
        try:
            data = _wire.encode(answer, version)
        except Exception as exc:
            log.error("cannot encode the answer to %s %s: %s", call.action, call.message_id, exc)
            answer = CallError(
                call.message_id,
                error_code_for(ErrorCode.INTERNAL_ERROR, version),
                "the answer could not be encoded",
                {},
            )
            data = _wire.encode(answer, version)
        now = time.time()
        changed = (json.dumps(state, sort_keys=True) if state else "") != state_before
        seen = self._touched.get(station)
        touch = seen is None or seen[0] != version or now - seen[1] > 60.0
        if touch:
            self._touched[station] = (version, now)
        finish = Finish(
            station,
            call.message_id,
            data,
            version,
            now,
            state if changed else None,
            effects,
            touch,
        )
        key = (station, call.message_id)

        def stored(result: bytes | EffectsFailed | None) -> None:
            self._in_hand.discard(key)
            if isinstance(result, EffectsFailed):
                log.error("the %s handler's writes failed: %s", call.action, result)
                err = CallError(
                    call.message_id,
                    error_code_for(ErrorCode.INTERNAL_ERROR, version),
                    "the handler's writes failed",
                    {},
                )
                self._send_frame(station, err, version)
            elif result is not None:  # another copy was answered first: same answer
                self._publish(self.topic(station, "down"), result)
            else:
                self._publish(self.topic(station, "down"), data)
                self._after_send(station, answer, data)
            self._ack(msg)
            if done is not None and not done.done():
                done.set_result(None)

        self._commits.append((finish, stored))
        n = len(self._commits)
        if n == 1:
            assert self._loop is not None
            delay = self.config.commit_delay
            self._flush_timer = (
                self._loop.call_later(delay, self._flush_commits)
                if delay > 0
                else self._loop.call_soon(self._flush_commits)
            )
        elif n >= 256:
            self._flush_commits()

    def _flush_commits(self) -> None:
        """Store every answer ready in this turn of the loop in one transaction."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        batch, self._commits = self._commits, []
        if not batch:
            return
        try:
            results: list[bytes | EffectsFailed | None] = self.store.finish_calls(
                [f for f, _ in batch]
            )
        except Exception as exc:
            log.exception("could not store %d answers", len(batch))
            results = [EffectsFailed(f"store failure: {exc}")] * len(batch)
            for finish, _ in batch:
                self._touched.pop(finish.station, None)
        for (_, stored), result in zip(batch, results, strict=True):
            try:
                stored(result)
            except Exception:
                log.exception("failed to send an answer")

    def _no_sender(self, action: str, request: Any) -> Any:
        raise RuntimeError(
            "a handler method that is a plain function runs in the event loop and cannot wait "
            "for a station's answer: make it async def, or run the bridge with --handler-threads"
        )

    # -- sending ------------------------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if self.client is not None:
            self.client.publish(topic, payload, qos, retain)

    def _mirror(self, station: str, kind: str, frame: Frame) -> None:
        try:
            self._publish(self.topic(station, kind), _wire.json_encode(frame), qos=0)
        except Exception as exc:  # never let the mirror break the real traffic
            log.debug("mirror failed: %s", exc)

    def _observe(self, direction: str, station: str, frame: Frame, data: bytes) -> None:
        if traffic_log.isEnabledFor(logging.DEBUG):
            traffic_log.debug("%s %s %s", station, direction, _wire.json_encode(frame).decode())
        if self.observer is not None:
            with contextlib.suppress(Exception):
                self.observer(direction, station, frame, data)

    def _after_send(self, station: str, frame: Frame, data: bytes) -> None:
        self.stats["down"] += 1
        self._observe("down", station, frame, data)
        if self.config.mirror:
            self._mirror(station, "json/down", frame)

    def _send_frame(self, station: str, frame: Frame, version: str) -> None:
        try:
            data = _wire.encode(frame, version)
        except Exception as exc:
            log.error("cannot encode %r for %s: %s", frame, station, exc)
            return
        self._publish(self.topic(station, "down"), data)
        self._after_send(station, frame, data)

    # -- calling stations ---------------------------------------------------------------------

    def new_message_id(self) -> str:
        return secrets.token_hex(6)

    def _sender(self, station: str, is_async: bool) -> Callable[[str, Any], Any]:
        async def send_call(action: str, request: Any) -> CallResult | CallError:
            return await self.call_station(station, action, request)

        if is_async:
            return send_call

        loop = self._loop
        assert loop is not None

        def send_call_blocking(action: str, request: Any) -> CallResult | CallError:
            fut = asyncio.run_coroutine_threadsafe(send_call(action, request), loop)
            return fut.result(self.config.call_timeout + 5.0)

        return send_call_blocking

    async def call_station(
        self, station: str, action: str, request: Any, *, timeout: float | None = None
    ) -> CallResult | CallError:
        """Send a CALL to ``station`` (after its outstanding one) and wait for the answer.

        ``request`` is a model or a JSON-level dict. Raises :class:`CallTimeout` if the station
        does not answer within the call timeout.
        """
        payload = request.to_payload() if hasattr(request, "to_payload") else dict(request)
        message_id = self.new_message_id()
        assert self._loop is not None
        fut: asyncio.Future[CallResult | CallError] = self._loop.create_future()
        self._waiters[message_id] = fut
        try:
            self._submit(station, message_id, action, payload, "handler")
            try:
                return await asyncio.wait_for(fut, timeout or self.config.call_timeout + 1.0)
            except TimeoutError:
                raise CallTimeout(f"{station} did not answer {action} {message_id}") from None
        finally:
            self._waiters.pop(message_id, None)

    def _submit(
        self, station: str, message_id: str, action: str, payload: dict[str, Any], origin: str
    ) -> None:
        version = self._known_version(station)
        now = time.time()
        call = OutgoingCall(station, message_id, action, payload, version, origin, self.owner, now)
        to_send = self.store.submit_call(call, now)
        if to_send is not None:
            self._send_outgoing(to_send)
        else:
            log.info("queued %s %s for %s behind its outstanding CALL", action, message_id, station)

    def _send_outgoing(self, call: OutgoingCall) -> None:
        frame = Call(call.message_id, call.action, call.payload)
        try:
            data = _wire.encode(frame, call.version)
        except Exception as exc:
            log.warning("cannot encode %s for %s: %s", call.action, call.station, exc)
            err = CallError(
                call.message_id,
                error_code_for(ErrorCode.FORMAT_VIOLATION, call.version),
                f"the bridge cannot encode this {call.action}: {exc}"[:255],
                {"bridge": "encode"},
            )
            _, nxt = self.store.resolve_call(call.station, call.message_id, time.time())
            self._call_failed(call, err)
            if nxt is not None:
                self._send_outgoing(nxt)
            return
        self._publish(self.topic(call.station, "down"), data)
        self._after_send(call.station, frame, data)

    def _answer_received(self, station: str, frame: CallResult | CallError, version: str) -> None:
        call, nxt = self.store.resolve_call(station, frame.message_id, time.time())
        if call is None:
            log.warning(
                "%s answered %s, which is not an outstanding CALL (late or unknown)",
                station,
                frame.message_id,
            )
        else:
            if isinstance(frame, CallResult) and frame.action is None:
                frame = CallResult(frame.message_id, frame.payload, call.action)
            self._deliver(call, frame)
        if nxt is not None:
            self._send_outgoing(nxt)

    def _call_failed(self, call: OutgoingCall, err: CallError) -> None:
        self._deliver(call, err)

    def _deliver(self, call: OutgoingCall, answer: CallResult | CallError) -> None:
        self._publish(self.topic(call.station, "json/result"), _wire.json_encode(answer))
        if call.origin != "handler":
            return
        fut = self._waiters.get(call.message_id)
        if fut is not None:
            _settle(fut, answer)
        elif call.owner != self.owner and self.config.shared:
            self._publish(
                f"{self.prefix}/bridge/worker/{call.owner}",
                call.station.encode()
                + b"\n"
                + call.version.encode()
                + b"\n"
                + _wire.json_encode(answer),
            )

    def _internal(self, msg: Message) -> None:
        try:
            station, version, data = msg.payload.split(b"\n", 2)
            answer = _wire.json_decode(data, version.decode())
            fut = self._waiters.get(answer.message_id)
            if fut is not None and isinstance(answer, CallResult | CallError):
                _settle(fut, answer)
        except Exception as exc:
            log.warning("bad internal message: %s", exc)
        self._ack(msg)

    async def _operator_call(self, station: str, msg: Message) -> None:
        version = self._known_version(station)
        try:
            frame = _wire.json_decode(msg.payload, version)
            if not isinstance(frame, Call):
                raise _wire.DecodeError("expected a CALL: [2, id, action, payload]")
        except _wire.DecodeError as exc:
            mid = exc.message_id or "-1"
            log.warning("bad operator call for %s: %s", station, exc)
            self._publish(
                self.topic(station, "json/result"),
                _wire.json_encode(CallError(mid, ErrorCode.FORMAT_VIOLATION, str(exc)[:255], {})),
            )
            self._ack(msg)
            return
        try:
            self._submit(station, frame.message_id, frame.action, frame.payload, "operator")
        finally:
            self._ack(msg)
