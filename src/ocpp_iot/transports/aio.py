"""The MQTT client for services: paho's protocol engine driven by the running asyncio loop.

paho's socket is watched with ``add_reader``/``add_writer``: messages are handled in the loop's
thread, publishes and acks are written without a thread switch, and no second thread competes
for the GIL on the hot path. The TCP connect and TLS handshake run in a worker thread (they
block), everything else in the loop. Connection attempts back off exponentially with jitter
(:class:`~._backoff.Backoff`), and every failure is logged once at WARNING with what to do
about it, repeats at a bounded rate (:class:`~._backoff.FailureLog`).

Every method must be called from the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from .._redact import redact, redact_url
from ._backoff import Backoff, FailureLog, refusal_advice
from ._paho import (
    FastPaho,
    build_client,
    open_socket,
    publish_properties,
    tls_context,
    uses_tls,
    warn_once,
)
from ._state import ClientState, Starting
from ._waiting import Flag, Inbox
from .settings import Message, MqttSettings, PublishRefused, Will, parse_url

__all__ = ["AsyncMqttClient", "LoopMqttClient", "Starting"]

log = logging.getLogger("ocpp_iot.transports.mqtt")

_OK = MQTTErrorCode.MQTT_ERR_SUCCESS
_AGAIN = MQTTErrorCode.MQTT_ERR_AGAIN
#: MQTT 5 DISCONNECT reason "Session taken over" (section 3.14.2.1)
_SESSION_TAKEN_OVER = 142


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one connection attempt ended."""

    key: str  # failures with the same key are "the same failure" for the log's rate limit
    text: str


class AsyncMqttClient(ClientState):
    """One MQTT connection, kept up in the background, for code running in an asyncio loop.

    ``on_message(msg)`` runs in the loop for every message; without it messages wait in a
    queue for :meth:`get`. With ``manual_ack=True`` every QoS 1 message must be acknowledged
    with :meth:`ack` once handled; one never acknowledged comes again on the next connection of
    a persistent session. Otherwise a message is acknowledged when ``on_message`` returns (or
    when it is queued). ``on_connect(session_present)`` and ``on_disconnect()`` run in the loop
    on every connection and loss.
    """

    # slots: a simulated fleet holds a client per station; a dict of this many attributes is
    # 1.7 KiB (past the 30 keys CPython shares between instances), the slots 0.3 KiB
    __slots__ = (
        "address",
        "_attempt_end",
        "_backoff",
        "_client",
        "_closed",
        "_confirm",
        "_connack_timer",
        "connect_attempts",
        "_connected",
        "_connected_at",
        "_failures",
        "_generation",
        "last_connect_error",
        "_loop",
        "_manual_ack",
        "_misc",
        "_on_connect_cb",
        "_on_disconnect_cb",
        "_on_message",
        "_password",
        "_queue",
        "_refused",
        "settings",
        "_short_drops",
        "_sock",
        "_stable_timer",
        "_started",
        "_stopping",
        "_sub_mids",
        "_subscriptions",
        "_supervisor",
        "taken_over",
        "_tls",
        "_url",
    )

    def __init__(
        self,
        settings: MqttSettings,
        on_message: Callable[[Message], None] | None = None,
        *,
        manual_ack: bool = False,
        on_connect: Callable[[bool], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.address = parse_url(settings.url)
        self._client: FastPaho = build_client(settings, manual_ack=manual_ack)
        self._manual_ack = manual_ack
        self._on_message = on_message
        self._on_connect_cb = on_connect
        self._on_disconnect_cb = on_disconnect
        self._queue: Inbox[Message] = Inbox()
        self._subscriptions: dict[str, int] = {}
        self._sub_mids: dict[int, list[str]] = {}
        self._confirm: dict[int, asyncio.Future[int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = Flag()
        self._closed = Flag(True)
        self._generation = 0
        self._started = False
        self._stopping = False
        self._sock: Any = None
        #: paho's loop_misc (keepalive, retries) once a second while a socket is open: a timer
        #: callback, not a Task (a Task and its coroutine frame per client is ~1 KiB)
        self._misc: asyncio.Handle | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._attempt_end: asyncio.Future[_Outcome] | None = None
        self._connack_timer: asyncio.TimerHandle | None = None
        self._stable_timer: asyncio.TimerHandle | None = None
        self._connected_at: float | None = None
        self._refused: ReasonCode | None = None
        self._short_drops = 0
        self._tls = tls_context(settings) if uses_tls(settings, self.address) else None
        self._password = settings.credentials()[1]
        self._url = redact_url(settings.url)
        self._backoff = Backoff(settings.reconnect_min_delay, settings.reconnect_max_delay)
        self._failures = FailureLog(log, time.monotonic)
        #: True after the broker handed our session to another client with our id (until a
        #: connection stays up for ``reconnect_stable_after`` again)
        self.taken_over = False
        #: connection attempts so far (TCP connects tried)
        self.connect_attempts = 0
        #: what went wrong with the last failed attempt (credentials redacted)
        self.last_connect_error: str | None = None
        c = self._client
        c.on_connect = self._handle_connect
        c.on_disconnect = self._handle_disconnect
        c.on_message = self._handle_message
        c.on_subscribe = self._handle_subscribe
        c.on_publish = None  # set only while publish_confirmed waits (a call per PUBACK)
        c.on_socket_open = self._socket_open
        c.on_socket_close = self._socket_close
        c.on_socket_register_write = self._register_write
        c.on_socket_unregister_write = self._unregister_write

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> Starting:
        """Start connecting in the background (and reconnecting whenever the connection ends).

        Returns at once. The result may be awaited: ``await client.start(10)`` is ``True``
        once connected, ``False`` if ``timeout`` (default 10 s) passed first.
        """
        if not self._started:
            self._started = True
            self._loop = asyncio.get_running_loop()
            self._supervisor = self._loop.create_task(self._supervise())
        return Starting(self, timeout)

    async def stop(self, final: Iterable[Will] = (), timeout: float = 5.0) -> None:
        """Publish ``final`` (e.g. a retained ``offline``), wait up to ``timeout`` for the
        broker to have it, disconnect cleanly.

        A clean DISCONNECT suppresses the will, so the final messages are how others learn
        that we left. They are skipped when we are not connected, and when the broker handed
        our session to another client with our id lately: that one is still running and says
        ``online``.
        """
        self._stopping = True
        self._cancel_timers()
        if self._supervisor is not None:
            self._supervisor.cancel()
        final = list(final)
        if self._connected.is_set() and not self.taken_over and final:
            waits = [
                self._confirmed(self._client.publish(m.topic, m.payload, m.qos, m.retain), m.qos)
                for m in final
            ]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), timeout)
        if self._sock is not None:
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), min(timeout, 2.0))
        self._drop_socket()
        self._stop_misc()
        self._connected.clear()

    def kill(self) -> None:
        """Drop the connection without DISCONNECT, so the broker publishes our will. For tests."""
        self._stopping = True
        self._cancel_timers()
        if self._supervisor is not None:
            self._supervisor.cancel()
        self._stop_misc()
        self._drop_socket()
        self._connected.clear()

    # -- operations ---------------------------------------------------------------------------

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now (if connected) and again on every reconnect. ``ValueError`` for a
        QoS other than 0, 1, 2 or an empty topic filter, at once, connected or not."""
        if qos not in (0, 1, 2) or not topic:
            raise ValueError(f"cannot subscribe to {topic!r} with QoS {qos!r}")
        self._subscriptions[topic] = qos
        if self._connected.is_set():
            _, mid = self._client.subscribe(topic, qos)
            if mid is not None:
                self._sub_mids[mid] = [topic]

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        *,
        content_type: str | None = None,
    ) -> None:
        """Queue a message. A QoS 1 message is sent (again after a reconnect) until the broker
        has it; a QoS 0 message published while disconnected is dropped. ``content_type`` is
        the MQTT 5 property (ignored with 3.1.1)."""
        if content_type is None:
            self._client.publish(topic, payload, qos, retain)
        else:
            props = publish_properties(content_type) if self.settings.mqtt5 else None
            self._client.publish(topic, payload, qos, retain, props)

    async def publish_confirmed(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        *,
        content_type: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Publish and wait for the broker's PUBACK. Raises :class:`PublishRefused` when it
        carries a failure reason (MQTT 5; a 3.1.1 broker drops what it refuses silently),
        ``TimeoutError`` when none comes within ``timeout``."""
        props = publish_properties(content_type) if self.settings.mqtt5 else None
        info = self._client.publish(topic, payload, qos, retain, props)
        try:
            code = await asyncio.wait_for(self._confirmed(info, qos), timeout)
        except TimeoutError:
            raise TimeoutError(f"no PUBACK for {topic!r} within {timeout} s") from None
        if code >= 0x80:
            name = ReasonCode(PacketTypes.PUBACK, identifier=code).getName()
            raise PublishRefused(topic, code, name)

    def ack(self, msg: Message) -> None:
        """Acknowledge a QoS 1 message received with ``manual_ack=True``.

        Acks of messages from an earlier connection are skipped: the broker sends those again
        (same session) and the copy is acknowledged instead.
        """
        if not self._manual_ack or msg.qos == 0 or msg.generation != self._generation:
            return
        self._client.ack(msg.mid, msg.qos)

    # -- connecting ---------------------------------------------------------------------------

    async def _supervise(self) -> None:
        while not self._stopping:
            outcome = await self._attempt()
            if self._stopping:
                return
            delay = self._backoff.next_delay()
            self.last_connect_error = outcome.text
            self._failures.failure(outcome.key, f"{outcome.text}; next attempt in {delay:.1f} s")
            await asyncio.sleep(delay)

    async def _attempt(self) -> _Outcome:
        assert self._loop is not None
        loop = self._loop
        self.connect_attempts += 1
        self._refused = None
        self._connected_at = None
        where = f"{self.address.host}:{self.address.port}"
        client = self._client
        try:
            if client.external_connect:
                client.prepared_socket = await self._open_socket()
            client.reconnect()
        except ssl.SSLError as exc:
            return self._outcome(
                f"tls:{exc.reason}",
                f"TLS handshake with the MQTT broker at {where} ({self._url}) failed: {exc}: "
                "check the CA file and the client certificate settings",
            )
        except (OSError, ValueError) as exc:
            return self._outcome(
                f"unreachable:{type(exc).__name__}:{getattr(exc, 'errno', None)}",
                f"cannot reach the MQTT broker at {where} ({self._url}): {exc or 'timed out'}",
            )
        if client.prepared_socket is not None:  # paho connected by itself: it changed
            client.prepared_socket.close()
            client.prepared_socket = None
            client.external_connect = False
            warn_once("create_socket", "reconnect() did not use _create_socket")
        end: asyncio.Future[_Outcome] = loop.create_future()
        self._attempt_end = end
        self._connack_timer = loop.call_later(self.settings.connect_timeout, self._no_connack)
        return await end

    async def _open_socket(self) -> socket.socket:
        assert self._loop is not None
        s = self.settings
        fut = self._loop.run_in_executor(
            None, open_socket, self.address, self._tls, s.connect_timeout, s.tcp_nodelay
        )
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:  # stopped meanwhile: close what the thread opens
            fut.add_done_callback(
                lambda f: f.result().close() if not f.cancelled() and not f.exception() else None
            )
            raise

    def _outcome(self, key: str, text: str) -> _Outcome:
        return _Outcome(key, redact(text, self._password))

    def _attempt_open(self) -> bool:
        end = self._attempt_end
        return end is not None and not end.done()

    def _end_attempt(self, outcome: _Outcome) -> None:
        if self._attempt_open():
            assert self._attempt_end is not None
            self._attempt_end.set_result(outcome)

    def _no_connack(self) -> None:
        self._connack_timer = None
        if self._connected_at is None:
            self._drop_socket()
            self._end_attempt(
                self._outcome(
                    "no-connack",
                    f"the MQTT broker at {self._url} did not answer CONNECT within "
                    f"{self.settings.connect_timeout:g} s (is it an MQTT port?)",
                )
            )

    def _stable(self) -> None:
        """The connection stayed up: what failed before is over."""
        self._stable_timer = None
        self._backoff.reset()
        self._short_drops = 0
        self.taken_over = False
        streak = self._failures.recovered()
        if streak > 1:
            log.info("MQTT connection to %s is stable again after %d failures", self._url, streak)

    def _cancel_timers(self) -> None:
        for timer in (self._connack_timer, self._stable_timer):
            if timer is not None:
                timer.cancel()
        self._connack_timer = self._stable_timer = None

    def _loss(self, from_broker: bool, reason: ReasonCode | None) -> _Outcome:
        """Describe why the connection of this attempt ended."""
        assert self._loop is not None
        cid = self.settings.client_id
        # paho names a socket closed under it "Unspecified error": say what happened instead
        name = str(reason) if from_broker and reason is not None else "connection closed"
        refused = self._refused
        if refused is not None:
            code = int(refused.value)
            return self._outcome(
                f"refused:{code}",
                f"the MQTT broker at {self._url} refused client id {cid!r} (username "
                f"{self.settings.credentials()[0]!r}): {refused} ({code}): "
                f"{refusal_advice(code, cid)}",
            )
        if self._connected_at is None:
            return self._outcome(
                f"closed:{name}",
                f"the MQTT broker at {self._url} closed the connection before CONNACK ({name})",
            )
        up_for = self._loop.time() - self._connected_at
        if up_for >= self.settings.reconnect_stable_after:
            self._short_drops = 0
        else:
            self._short_drops += 1
        if from_broker and reason is not None and int(reason.value) == _SESSION_TAKEN_OVER:
            self.taken_over = True
            return self._outcome(
                "taken-over",
                f"another client with id {cid!r} took over the session on {self._url}: "
                "is a second bridge (or another program with this client id) running?",
            )
        if not from_broker and self._short_drops >= 2:
            # MQTT 3.1.1 has no reason codes, and a broker may close an MQTT 5 connection
            # without the DISCONNECT (mosquitto 2.0.11 does): a broker that drops us again and
            # again within seconds of a successful connect is most likely serving a rival
            # with our id
            self.taken_over = True
            return self._outcome(
                "taken-over",
                f"the MQTT broker at {self._url} closed the connection {up_for:.1f} s after "
                f"connecting, {self._short_drops} times in a row: probably another client with "
                f"id {cid!r} took over the session: is a second bridge running?",
            )
        who = "the broker disconnected us" if from_broker else "connection lost"
        return self._outcome(
            f"lost:{name}", f"MQTT {who} ({name}) from {self._url} after {up_for:.1f} s"
        )

    # -- paho callbacks (loop thread) -----------------------------------------------------------

    def _handle_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if self._connack_timer is not None:
            self._connack_timer.cancel()
            self._connack_timer = None
        if reason.is_failure:
            self._refused = reason  # paho closes the socket next: _handle_disconnect reports
            return
        assert self._loop is not None
        self._generation += 1
        self._connected_at = self._loop.time()
        session_present = bool(getattr(flags, "session_present", False))
        log.info(
            "MQTT connected to %s as %r (session present: %s)",
            self._url,
            self.settings.client_id,
            session_present,
        )
        # Nothing may raise out of here: paho is inside its read of the CONNACK and would read
        # the same packet again on the next readable socket, again and again (paho 2.2).
        try:
            if self._subscriptions:
                subs = list(self._subscriptions.items())
                _, mid = client.subscribe(subs)
                if mid is not None:
                    self._sub_mids[mid] = [t for t, _ in subs]
            for b in self.settings.birth:
                client.publish(b.topic, b.payload, qos=b.qos, retain=b.retain)
        except Exception:
            log.exception("MQTT subscribe or birth message on %s failed", self._url)
        self._connected.set()
        self._stable_timer = self._loop.call_later(
            self.settings.reconnect_stable_after, self._stable
        )
        if self._on_connect_cb is not None:
            try:
                self._on_connect_cb(session_present)
            except Exception:  # an application error must not break the connection
                log.exception("error in the on_connect callback of the MQTT client")

    def _handle_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if self._stable_timer is not None:
            self._stable_timer.cancel()
            self._stable_timer = None
        if not self._stopping and self._attempt_open():
            from_broker = bool(getattr(flags, "is_disconnect_packet_from_server", False))
            self._end_attempt(self._loss(from_broker, reason))
        if was and self._on_disconnect_cb is not None:
            try:
                self._on_disconnect_cb()
            except Exception:  # paho is inside its own handling of the loss
                log.exception("error in the on_disconnect callback of the MQTT client")

    def _handle_message(self, client: paho.Client, userdata: Any, m: paho.MQTTMessage) -> None:
        props = m.properties
        msg = Message(
            m.topic,
            m.payload,  # type: ignore[arg-type]  # bytes: paho slices it out of the packet
            m.qos,
            bool(m.retain),
            m.mid,
            bool(m.dup),
            self._generation,
            getattr(props, "ContentType", None) if props is not None else None,
        )
        cb = self._on_message
        if cb is None:
            self._queue.put_nowait(msg)
            return
        try:
            cb(msg)
        except Exception:  # an application error must not break the connection
            log.exception("error in MQTT message handler for %s", m.topic)

    def _handle_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        topics = self._sub_mids.pop(mid, [])
        for topic, reason in zip(topics, reasons, strict=False):
            if reason.is_failure:
                log.warning(
                    "MQTT broker at %s refused the subscription to %r for client id %r: %s "
                    "(check the broker's ACL for this user)",
                    self._url,
                    topic,
                    self.settings.client_id,
                    reason,
                )

    def _handle_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        fut = self._confirm.get(mid)
        if fut is not None and not fut.done():
            fut.set_result(int(reason.value) if reason is not None else 0)

    def _confirmed(self, info: paho.MQTTMessageInfo, qos: int) -> asyncio.Future[int]:
        """A future for the PUBACK reason code of ``info`` (0 at once for QoS 0)."""
        assert self._loop is not None
        fut: asyncio.Future[int] = self._loop.create_future()
        if qos == 0:
            fut.set_result(0)
            return fut
        # paho calls on_publish for QoS 0 writes too, with mids from the same counter: a QoS 0
        # publish could only share a waiting mid after 65,535 more publishes.
        mid = info.mid
        self._confirm[mid] = fut
        self._client.on_publish = self._handle_publish

        def done(_: object) -> None:
            if self._confirm.get(mid) is fut:
                del self._confirm[mid]
            if not self._confirm:
                self._client.on_publish = None

        fut.add_done_callback(done)
        return fut

    # -- the socket (loop thread) ---------------------------------------------------------------

    def _socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._client.drop_buffer()
        self._sock = sock
        self._closed.clear()
        if self.settings.tcp_nodelay:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop.add_reader(sock, self._read)
        if self._misc is None:
            self._misc = self._loop.call_soon(self._misc_tick)

    def _read(self) -> None:
        client = self._client
        rc = client.loop_read()
        sock = self._sock
        # Bytes already read into our buffer (or, with TLS, decrypted into the SSL object) do
        # not wake the selector again: go on until they are used up.
        while (
            rc == _OK
            and sock is self._sock
            and sock is not None
            and (client.buffered() or (isinstance(sock, ssl.SSLSocket) and sock.pending()))
        ):
            rc = client.loop_read()
        if rc != _OK and rc != _AGAIN:
            self._lost()

    def _socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._client.drop_buffer()
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock)
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_writer(sock)
        if sock is self._sock:
            self._sock = None
            self._closed.set()

    def _register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        if sock is not self._sock:
            # a socket we dropped (_drop_socket: no CONNACK, kill, stop) that paho still holds:
            # what paho queued waits for the next connection (QoS 1 is sent again then)
            return
        self._loop.add_writer(sock, self._write)

    def _write(self) -> None:
        self._client.coalesce()
        rc = self._client.loop_write()
        if rc != _OK and rc != _AGAIN:
            self._lost()

    def _unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_writer(sock)

    def _misc_tick(self) -> None:
        self._misc = None
        if self._sock is None or self._loop is None:
            return
        if self._client.loop_misc() != _OK:  # keepalive: paho reports the loss itself
            self._lost()
            return
        self._misc = self._loop.call_later(1.0, self._misc_tick)

    def _stop_misc(self) -> None:
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None

    def _lost(self) -> None:
        """paho gave up on the socket (it has called on_disconnect if it knew why)."""
        self._connected.clear()
        self._drop_socket()
        if not self._stopping and self._attempt_open():
            self._end_attempt(self._loss(False, None))

    def _drop_socket(self) -> None:
        sock = self._sock
        if sock is None:
            return
        self._socket_close(self._client, None, sock)
        with contextlib.suppress(OSError):
            sock.close()


class LoopMqttClient(AsyncMqttClient):
    """Deprecated name of :class:`AsyncMqttClient`, with the old method names."""

    def __init__(
        self,
        settings: MqttSettings,
        on_message: Callable[[Message], None] | None = None,
        *,
        manual_ack: bool = False,
        on_connect: Callable[[bool], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        warnings.warn(
            "LoopMqttClient is now AsyncMqttClient (await stop(), await wait_connected())",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(
            settings,
            on_message,
            manual_ack=manual_ack,
            on_connect=on_connect,
            on_disconnect=on_disconnect,
        )

    async def wait_connected_async(self, timeout: float = 10.0) -> bool:
        return await self.wait_connected(timeout)

    async def stop_async(self, final: Iterable[Will] = (), timeout: float = 5.0) -> None:
        await self.stop(final, timeout)
