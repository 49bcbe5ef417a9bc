"""The bridge service: OCPP over MQTT topics, answered by a backend (ChargeSystem behaviours).

One :class:`Bridge` is one worker: one MQTT client, one asyncio loop. It routes each message to
the part whose job it is:

- stations' frames on ``{prefix}/{station}/up``: CALLs and SENDs to :mod:`.inbound` (claim,
  answer through the :mod:`.backend`, store, send on ``.../down``, acknowledge), answers to our
  CALLs to :mod:`.outbound`;
- operators' CALLs on ``.../json/call`` and handlers' ``ctx.call`` to :mod:`.outbound` (one
  outstanding CALL per station, the queue in the store, answers on ``.../json/result``);
- mirrors, station summaries and statuses to :mod:`.mirror`;
- ``{prefix}/bridge/status``: retained ``online`` (birth) / ``offline`` (will and clean stop).

A station may send OCPP-J text on ``up`` instead of compact CBOR (MQTT 5 content type
``application/json``, or a payload that starts like a JSON array); it is answered in kind.

Delivery: a message is acknowledged to the broker only once handled, on a persistent session,
so what the bridge had not finished when it died is delivered again when it comes back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from .._redact import redact_url
from ..behaviours import Behaviour
from ..codecs import ocppj
from ..rpc import Call, CallError, CallResult, CallResultError, ErrorCode, Frame, Send
from ..transports.base import PubSubClient
from ..transports.mqtt import AsyncMqttClient, Message, MqttSettings, Will
from . import _wire
from .backend import Backend, HostedBackend
from .config import STATION_RE, BridgeConfig, CallTimeout
from .inbound import Inbound, Item
from .mirror import Mirror, Observer
from .outbound import Outbound
from .store import AsyncStore, Store

__all__ = ["Bridge", "BridgeConfig", "CallTimeout", "JSON_CONTENT_TYPE"]

log = logging.getLogger("ocpp_iot.bridge")

JSON_CONTENT_TYPE = "application/json"


def looks_like_json(msg: Message) -> bool:
    """Whether a station sent OCPP-J text rather than compact CBOR: the MQTT 5 content type
    when the station gave one, else the frame's first byte (:func:`ocppj.looks_like_ocppj`)."""
    ctype: str | None = msg.content_type
    if ctype:
        return ctype.split(";", 1)[0].strip().lower() == JSON_CONTENT_TYPE
    return ocppj.looks_like_ocppj(msg.payload)


#: builds the worker's MQTT client: ``AsyncMqttClient`` or ``MemoryBroker().client``
ClientFactory = Callable[..., PubSubClient]


class Bridge:
    """One bridge worker. ``handlers`` maps OCPP versions to ChargeSystem behaviours."""

    def __init__(
        self,
        config: BridgeConfig,
        handlers: Mapping[str, Behaviour],
        store: Store | AsyncStore,
        *,
        observer: Observer | None = None,
        backend: Backend | None = None,
        client_factory: ClientFactory | None = None,
    ) -> None:
        self.config = config
        self.prefix = config.prefix.rstrip("/")
        self.owner = config.owner
        self.store = store if isinstance(store, AsyncStore) else AsyncStore(store)
        #: the database handlers may join transactions with (``defer_sql``), if any
        self.store_path: str = self.store.path
        self.backend: Backend = backend or HostedBackend(
            handlers,
            store_path=self.store_path,
            threads=config.handler_threads,
            call_station=self.call_station,
            call_timeout=config.call_timeout,
        )
        self.stats = {"up": 0, "down": 0, "calls": 0, "duplicates": 0, "dropped": 0}
        self.versions: dict[str, str] = {}
        #: stations whose last frame was OCPP-J text: what goes down to them is too
        self.json_stations: set[str] = set()
        self.mirror = Mirror(self, observer)
        self.inbound = Inbound(self)
        self.outbound = Outbound(self)
        self.client: PubSubClient | None = None
        self._client_factory: ClientFactory = client_factory or AsyncMqttClient
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- topics -------------------------------------------------------------------------------

    def topic(self, station: str, kind: str) -> str:
        return f"{self.prefix}/{station}/{kind}"

    @property
    def status_topic(self) -> str:
        if self.config.shared and self.config.worker_index:
            return f"{self.prefix}/bridge/status/w{self.config.worker_index}"
        return f"{self.prefix}/bridge/status"

    def worker_topic(self, owner: str) -> str:
        return f"{self.prefix}/bridge/worker/{owner}"

    def _subscriptions(self) -> list[str]:
        share = "$share/bridge/" if self.config.shared else ""
        subs = [
            f"{share}{self.prefix}/+/up",
            f"{share}{self.prefix}/+/json/call",
            f"{self.prefix}/+/status",
        ]
        if self.config.shared:
            subs.append(self.worker_topic(self.owner))
        return subs

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then leave cleanly (publish offline, close the store)."""
        released = await self.store.release_owner(self.owner)
        if released:
            log.info("released %d CALLs left in progress by a previous run", released)
        offline = Will(self.status_topic, b"offline", 1, True)
        settings = dataclasses.replace(
            self.config.mqtt,
            client_id=self.owner,
            will=offline,
            birth=(Will(self.status_topic, b"online", 1, True),),
        )
        # before serving: a station's frames queued while we were away must find its state
        await self._restore_states(settings)
        self.client = self._client_factory(settings, self._on_message, manual_ack=True)
        for sub in self._subscriptions():
            self.client.subscribe(sub, 1)
        self.client.start()
        log.info(
            "bridge %s serving %s/+/up on %s (versions %s, mirror %s)",
            self.owner,
            self.prefix,
            redact_url(settings.url),
            ",".join(self.backend.versions),
            "on" if self.config.mirror else "off",
        )
        timer = asyncio.create_task(self._housekeeping())
        try:
            await stop.wait()
        finally:
            log.info("bridge %s shutting down", self.owner)
            timer.cancel()
            await self.inbound.drain(5.0)
            await self.client.stop([offline])
            self.backend.close()
            await self.store.close()

    async def _restore_states(self, settings: MqttSettings) -> None:
        """Read our retained ``json/state`` summaries back (a short-lived clean session), so a
        restart does not forget what the stations said at boot. Best effort: the broker sends
        retained messages right after the SUBACK; we stop at the first pause of 0.1 s (MQTT has
        no end-of-retained marker), 2 s at most."""
        if self.mirror.view is None:
            return
        last = [time.monotonic()]

        def on_message(msg: Message) -> None:
            last[0] = time.monotonic()
            station = msg.topic[len(self.prefix) + 1 :].partition("/")[0]
            if msg.retain and STATION_RE.match(station):
                self.mirror.restore(station, msg.payload)

        reader = self._client_factory(
            dataclasses.replace(
                settings, client_id=f"{self.owner}-restore", clean_start=True, will=None, birth=()
            ),
            on_message,
        )
        reader.subscribe(f"{self.prefix}/+/json/state", 0)
        try:
            if await reader.start(2.0):
                deadline = last[0] = time.monotonic()
                deadline += 2.0
                while time.monotonic() < deadline and time.monotonic() - last[0] < 0.1:
                    await asyncio.sleep(0.02)
        except Exception as exc:
            log.info("could not read the stations' retained states back: %s", exc)
        finally:
            await reader.stop()

    async def _housekeeping(self) -> None:
        last_prune = time.time()
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            try:
                await self.outbound.expire(now)
                if now - last_prune > 60:
                    last_prune = now
                    await self.store.prune(now - self.config.dedup_retention)
            except Exception:
                log.exception("housekeeping failed")

    # -- routing ------------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        """Called by the MQTT client in the event loop's thread, for every message. A message
        whose handling fails here is left unacknowledged: the broker delivers it again on the
        next connection."""
        try:
            self._route(msg)
        except Exception:
            log.exception("failed to route a message on %s; left unacknowledged", msg.topic)

    def _route(self, msg: Message) -> None:
        topic = msg.topic
        if not topic.startswith(self.prefix + "/"):
            self.ack(msg)
            return
        station, _, kind = topic[len(self.prefix) + 1 :].partition("/")
        if station == "bridge":
            if self.config.shared and topic == self.worker_topic(self.owner):
                self.outbound.relayed(msg.payload)
            self.ack(msg)
        elif not STATION_RE.match(station):
            self.ack(msg)
        elif kind == "up":
            self._up(station, msg)
        elif kind == "json/call":
            self._spawn(self.outbound.operator(station, msg))
        elif kind == "status":
            self._station_status(station, msg)
        else:
            self.ack(msg)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a bridge task failed", exc_info=task.exception())

    def _station_status(self, station: str, msg: Message) -> None:
        status = msg.payload.decode(errors="replace")[:32]
        self.mirror.status(station, status)
        fut = self.store.set_status(station, status, time.time())
        fut.add_done_callback(self._status_stored)
        self.ack(msg)

    @staticmethod
    def _status_stored(fut: asyncio.Future[None]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("could not store a station's status: %s", fut.exception())

    def _up(self, station: str, msg: Message) -> None:
        self.stats["up"] += 1
        as_json = looks_like_json(msg)
        if as_json:
            self.json_stations.add(station)
        else:
            self.json_stations.discard(station)
        try:
            if as_json:
                version = self.known_version(station)
                frame: Frame = ocppj.decode(msg.payload, version)
            else:
                version, frame = _wire.decode(msg.payload)
                self.versions[station] = version
        except _wire.DecodeError as exc:
            self._undecodable(station, msg, exc, as_json)
            return
        except Exception as exc:  # a codec bug must not take the bridge down
            log.exception("codec failed on a frame from %s", station)
            self._undecodable(station, msg, _wire.DecodeError(f"codec failure: {exc}"), as_json)
            return
        self.mirror.up(station, version, frame, msg.payload)
        if isinstance(frame, Call):
            # the bytes' CRC-32 tells a repeat from another CALL reusing the id (store.CallKey)
            item = Item(station, msg, version, frame, as_json, fingerprint=zlib.crc32(msg.payload))
            self.inbound.submit(item)
        elif isinstance(frame, Send):
            self.inbound.submit(Item(station, msg, version, frame, as_json))
        elif isinstance(frame, CallResult | CallError):
            self._spawn(self.outbound.answered(station, frame, msg))
        elif isinstance(frame, CallResultError):
            log.warning(
                "%s rejected our answer to %s: %s %s",
                station,
                frame.message_id,
                frame.error_code,
                frame.error_description,
            )
            self.ack(msg)
        else:  # pragma: no cover - the codecs return only frames
            self.ack(msg)

    def _undecodable(
        self, station: str, msg: Message, exc: _wire.DecodeError, as_json: bool
    ) -> None:
        self.stats["dropped"] += 1
        version = exc.version or self.known_version(station)
        session = self.inbound.session(station, version)
        answer = session.undecodable(
            exc.message_id, exc.error_code or ErrorCode.RPC_FRAMEWORK_ERROR, str(exc)
        )
        self.mirror.error(station, f"unreadable frame: {exc}")
        if answer is None:
            log.warning("dropped an unreadable frame from %s: %s", station, exc)
        else:
            log.warning(
                "answering an unreadable frame from %s with %s: %s", station, answer.error_code, exc
            )
        # answered in its turn, after the answers to the station's earlier frames
        self.inbound.submit(Item(station, msg, version, None, as_json, reject=answer))

    # -- versions -----------------------------------------------------------------------------

    def known_version(self, station: str) -> str:
        return self.versions.get(station) or self.config.default_version

    async def version_of(self, station: str) -> str:
        """The station's OCPP version: last seen here, else as stored, else the default."""
        version = self.versions.get(station)
        if version is None:
            try:
                version = await self.store.station_version(station)
            except Exception:
                log.exception("could not read %s's version from the store", station)
            if version is not None:
                self.versions[station] = version
        return version or self.config.default_version

    # -- sending ------------------------------------------------------------------------------

    def ack(self, msg: Message) -> None:
        if self.client is not None:
            self.client.ack(msg)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if self.client is not None:
            self.client.publish(topic, payload, qos, retain)

    def encode_down(self, frame: Frame, version: str, as_json: bool) -> bytes:
        return _wire.json_encode(frame) if as_json else _wire.encode(frame, version)

    def publish_down(self, station: str, data: bytes) -> None:
        """Send encoded bytes on the station's ``down`` topic (OCPP-J text marked as such)."""
        if self.client is None:
            return
        topic = self.topic(station, "down")
        if data[:1] == b"[":
            self.client.publish(topic, data, 1, False, content_type=JSON_CONTENT_TYPE)
        else:
            self.client.publish(topic, data, 1, False)

    def send_down(self, station: str, version: str, frame: Frame, as_json: bool) -> None:
        try:
            data = self.encode_down(frame, version, as_json)
        except Exception as exc:
            log.error("cannot encode %r for %s: %s", frame, station, exc)
            return
        self.publish_down(station, data)
        self.observe_down(station, version, frame, data)

    def observe_down(self, station: str, version: str, frame: Frame, data: bytes) -> None:
        self.mirror.down(station, version, frame, data)

    def publish_result(self, station: str, frame: CallResult | CallError) -> None:
        self.publish(self.topic(station, "json/result"), _wire.json_encode(frame))

    def relay(self, owner: str, payload: bytes) -> None:
        self.publish(self.worker_topic(owner), payload)

    # -- calling stations ---------------------------------------------------------------------

    async def call_station(
        self, station: str, action: str, request: Any, *, timeout: float | None = None
    ) -> CallResult | CallError:
        """Send a CALL to ``station`` (after its outstanding one) and wait for the answer.

        ``request`` is a model or a JSON-level dict. Raises :class:`CallTimeout` if the station
        does not answer within the call timeout.
        """
        return await self.outbound.call(station, action, request, timeout=timeout)
