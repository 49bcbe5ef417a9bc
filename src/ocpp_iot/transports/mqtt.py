"""A thin MQTT adapter over paho-mqtt 2 (callback API version 2).

Used by the bridge, the simulated stations and the charger node. It knows about URLs
(``mqtt://`` and ``mqtts://``), credentials, TLS, MQTT 3.1.1 and 5, persistent sessions,
reconnection with back-off and will messages; it knows nothing about OCPP.

paho runs its network loop in a thread of its own. :class:`MqttClient` calls ``on_message`` from
that thread; :class:`AsyncMqttClient` hands messages to an asyncio loop instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = [
    "BrokerAddress",
    "Message",
    "LoopMqttClient",
    "MqttClient",
    "MqttSettings",
    "AsyncMqttClient",
    "PublishRefused",
    "Will",
    "parse_url",
    "topic_matches",
]

log = logging.getLogger(__name__)

#: Session expiry the clients ask for by default (MQTT 5): one day. A station or bridge that is
#: away for less than that finds its queued QoS 1 messages waiting when it comes back.
DEFAULT_SESSION_EXPIRY = 86_400


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None


def parse_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...`` (default ports 1883/8883).

    A bare ``host[:port]`` is read as ``mqtt://host[:port]``.
    """
    if "://" not in url:
        url = "mqtt://" + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(
            f"unsupported broker URL scheme {parts.scheme!r} (use mqtt:// or mqtts://)"
        )
    tls = scheme in ("mqtts", "ssl")
    host = parts.hostname or "localhost"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ValueError(f"bad port in broker URL {url!r}") from exc
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return BrokerAddress(host, port, tls, user, password)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` and ``#``; ``$share/group/`` prefixes are ignored)."""
    if pattern.startswith("$share/"):
        pattern = pattern.split("/", 2)[2]
    return paho.topic_matches_sub(pattern, topic)


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(slots=True)
class MqttSettings:
    """Everything needed to connect one client. ``url`` may carry the credentials too."""

    url: str = "mqtt://localhost:1883"
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    protocol: str = "5"  # "5" or "3.1.1"
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    tls_insecure: bool = False
    keepalive: int = 30
    #: False keeps the session (subscriptions and queued QoS 1 messages) across reconnects
    #: and restarts; requires a stable, non-empty ``client_id``.
    clean_start: bool = False
    session_expiry: int = DEFAULT_SESSION_EXPIRY
    reconnect_min_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    #: MQTT 5 receive maximum: how many unacknowledged QoS 1 messages the broker may send us.
    receive_maximum: int = 1000
    #: how many of our QoS 1 publishes may await their PUBACK before paho queues the rest;
    #: 0 is no limit. paho rescans every queued message on each PUBACK when a limit is set,
    #: which cost the bridge a fifth of its throughput (docs/bridge-throughput.md). Mosquitto 2
    #: does not refuse QoS 1 publishes beyond the Receive Maximum it advertises; set this to
    #: the broker's Receive Maximum for a broker that does.
    max_inflight: int = 0
    will: Will | None = None
    #: send small packets at once (no Nagle delay: an answer and its ack would otherwise wait
    #: for the broker's delayed TCP ACK, up to 40 ms)
    tcp_nodelay: bool = True
    #: messages published (retained) right after every successful connection, e.g. a birth
    #: message ``online`` on the topic of the will.
    birth: tuple[Will, ...] = field(default_factory=tuple)

    @property
    def mqtt5(self) -> bool:
        return self.protocol in ("5", "5.0", "v5", "mqttv5")


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    dup: bool
    #: connection generation the message arrived on (acks of older generations are skipped)
    generation: int


class PublishRefused(RuntimeError):
    """The broker answered a QoS 1 PUBLISH with a failure reason code (MQTT 5)."""

    def __init__(self, topic: str, reason: int, name: str) -> None:
        super().__init__(f"publish to {topic!r} refused by the broker: {reason} {name}")
        self.topic = topic
        self.reason = reason
        self.reason_name = name


class _BufferedPahoClient(paho.Client):
    """paho's client reading the socket in large chunks.

    paho reads each packet with several ``recv`` calls (the type byte, each byte of the length,
    then the body): three or more system calls per PUBLISH and per PUBACK. This class reads up
    to 64 KiB at a time and serves paho's small reads from that buffer. Whoever drives the
    socket must call ``loop_read`` again while :meth:`buffered` is true, because the selector
    will not report bytes that are already out of the socket (see :class:`LoopMqttClient`).
    """

    _READ_SIZE = 65536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0

    def buffered(self) -> bool:
        return self._rpos < len(self._rbuf)

    def drop_buffer(self) -> None:
        self._rbuf = b""
        self._rpos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        pos = self._rpos
        buf = self._rbuf
        if pos >= len(buf):
            buf = super()._sock_recv(self._READ_SIZE)  # BlockingIOError when there is nothing
            if not buf:
                return buf  # connection closed
            self._rbuf = buf
            pos = 0
        end = pos + bufsize
        self._rpos = end
        return buf[pos:end]


class MqttClient:
    """A paho client with our defaults, resubscription on reconnect and manual acks.

    ``on_message(msg)`` runs in paho's network thread. With ``manual_ack=True`` every QoS 1
    message must be acknowledged with :meth:`ack` once it is processed; a message that is never
    acknowledged is delivered again on the next connection of a persistent session.
    """

    _paho_class: type[paho.Client] = paho.Client

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
        self._on_message = on_message
        self._on_connect_cb = on_connect
        self._on_disconnect_cb = on_disconnect
        self._manual_ack = manual_ack
        self._subscriptions: dict[str, int] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._generation = 0
        self._stopping = False
        # PUBACK reason codes for publish_confirmed: mid -> (arrival number, reason code).
        # Guarded by _reasons_cond, which is never held while calling into paho: paho calls
        # on_publish with its own lock held, so the opposite order would deadlock.
        self._reasons_cond = threading.Condition()
        self._reasons: dict[int, tuple[int, int]] = {}
        self._pubacks = 0  # PUBACKs recorded so far
        self._confirming = 0  # publish_confirmed calls in progress
        self.last_connect_error: str | None = None

        proto = paho.MQTTv5 if settings.mqtt5 else paho.MQTTv311
        if settings.clean_start is False and not settings.client_id:
            raise ValueError("a persistent session (clean_start=False) needs a client_id")
        kwargs: dict[str, Any] = {}
        if not settings.mqtt5:
            kwargs["clean_session"] = settings.clean_start
        self._client = self._paho_class(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=proto,
            manual_ack=manual_ack,
            reconnect_on_failure=True,
            **kwargs,
        )
        c = self._client
        username = settings.username or self.address.username
        password = settings.password or self.address.password
        if username is not None:
            c.username_pw_set(username, password)
        if self.address.tls or settings.ca_certs or settings.certfile:
            c.tls_set(
                ca_certs=settings.ca_certs,
                certfile=settings.certfile,
                keyfile=settings.keyfile,
                cert_reqs=ssl.CERT_NONE if settings.tls_insecure else ssl.CERT_REQUIRED,
            )
            if settings.tls_insecure:
                c.tls_insecure_set(True)
        if settings.will is not None:
            w = settings.will
            c.will_set(w.topic, w.payload, qos=w.qos, retain=w.retain)
        c.reconnect_delay_set(
            max(1, int(settings.reconnect_min_delay)), max(1, int(settings.reconnect_max_delay))
        )
        c.max_inflight_messages_set(settings.max_inflight)
        c.max_queued_messages_set(0)
        c.on_connect = self._handle_connect
        c.on_disconnect = self._handle_disconnect
        c.on_message = self._handle_message
        c.on_publish = self._handle_publish
        c.on_connect_fail = self._handle_connect_fail

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (retrying with back-off until the broker answers)."""
        s = self.settings
        props = None
        clean: Any = s.clean_start
        if s.mqtt5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0 if s.clean_start else s.session_expiry
            props.ReceiveMaximum = max(1, min(65535, s.receive_maximum))
            self._client.connect_async(
                self.address.host,
                self.address.port,
                s.keepalive,
                clean_start=clean,
                properties=props,
            )
        else:
            self._client.connect_async(self.address.host, self.address.port, s.keepalive)
        self._client.loop_start()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def generation(self) -> int:
        return self._generation

    def stop(self, final: Iterable[Will] = (), timeout: float = 5.0) -> None:
        """Publish ``final`` messages (e.g. a retained ``offline``), disconnect cleanly, stop.

        A clean DISCONNECT suppresses the will, so the final messages are how others learn that
        we left.
        """
        self._stopping = True
        if self._connected.is_set():
            infos = [
                self._client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain) for m in final
            ]
            for info in infos:
                try:
                    info.wait_for_publish(timeout)
                except (RuntimeError, ValueError):
                    pass
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def kill(self) -> None:
        """Drop the connection without DISCONNECT (the broker publishes the will). For tests."""
        self._stopping = True
        sock = self._client.socket()
        self._client.loop_stop()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        self._connected.clear()

    # -- operations --------------------------------------------------------------------------

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now (if connected) and again after every reconnect."""
        with self._lock:
            self._subscriptions[topic] = qos
        if self._connected.is_set():
            self._client.subscribe(topic, qos)

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        """Queue a message; paho sends it (again after a reconnect) until the broker has it."""
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    def publish_confirmed(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        timeout: float = 10.0,
    ) -> None:
        """Publish and wait for the broker's PUBACK; raise :class:`PublishRefused` on an MQTT 5
        failure reason code, TimeoutError if no PUBACK comes."""
        cond = self._reasons_cond
        with cond:
            self._confirming += 1
            before = self._pubacks  # our PUBACK is recorded after this
        try:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
            if qos == 0:
                return
            deadline = time.monotonic() + timeout
            with cond:
                while True:
                    got = self._reasons.get(info.mid)
                    if got is not None and got[0] > before:  # not a PUBACK of an older use
                        del self._reasons[info.mid]
                        code = got[1]
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"no PUBACK for {topic!r} within {timeout} s")
                    cond.wait(left)
        finally:
            with cond:
                self._confirming -= 1
        if code >= 0x80:
            raise PublishRefused(
                topic, code, ReasonCode(PacketTypes.PUBACK, identifier=code).getName()
            )

    def ack(self, msg: Message) -> None:
        """Acknowledge a QoS 1 message received with ``manual_ack=True``.

        Acks for messages of an earlier connection are skipped: the broker sends those again
        (same session) and the copy is acknowledged instead.
        """
        if not self._manual_ack or msg.qos == 0 or msg.generation != self._generation:
            return
        self._client.ack(msg.mid, msg.qos)

    # -- paho callbacks (network thread) ------------------------------------------------------

    def _handle_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self.last_connect_error = str(reason)
            log.warning("MQTT connection to %s refused: %s", self.settings.url, reason)
            return
        self._generation += 1
        if self.settings.tcp_nodelay:
            sock = client.socket()
            if sock is not None:
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session_present = bool(getattr(flags, "session_present", False))
        log.info(
            "MQTT connected to %s:%s as %r (session present: %s)",
            self.address.host,
            self.address.port,
            self.settings.client_id,
            session_present,
        )
        with self._lock:
            subs = list(self._subscriptions.items())
        if subs:
            client.subscribe([(t, q) for t, q in subs])
        for b in self.settings.birth:
            client.publish(b.topic, b.payload, qos=b.qos, retain=b.retain)
        self._connected.set()
        if self._on_connect_cb is not None:
            self._on_connect_cb(session_present)

    def _handle_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self.last_connect_error = "connection failed"
        log.debug("MQTT connection to %s failed, retrying", self.settings.url)

    def _handle_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._stopping:
            log.warning("MQTT connection to %s lost (%s); reconnecting", self.settings.url, reason)
        if self._on_disconnect_cb is not None:
            self._on_disconnect_cb()

    def _handle_message(self, client: paho.Client, userdata: Any, m: paho.MQTTMessage) -> None:
        msg = Message(
            m.topic, m.payload, m.qos, bool(m.retain), m.mid, bool(m.dup), self._generation
        )
        if self._on_message is None:
            return
        try:
            self._on_message(msg)
        except Exception:  # never let an application error kill paho's thread
            log.exception("error in MQTT message handler for %s", m.topic)

    def _handle_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        # paho's thread, with paho's lock held: take only _reasons_cond (see __init__)
        if not self._confirming:
            return
        with self._reasons_cond:
            self._pubacks += 1
            self._reasons[mid] = (self._pubacks, int(reason.value) if reason is not None else 0)
            if len(self._reasons) > 1024:  # PUBACKs of plain publishes nobody waits for
                del self._reasons[next(iter(self._reasons))]
            self._reasons_cond.notify_all()


class LoopMqttClient(MqttClient):
    """:class:`MqttClient` driven by the running asyncio loop instead of a thread of its own.

    paho's socket is watched with ``add_reader``/``add_writer``, so ``on_message`` runs in the
    loop's thread, publishes and acks are written without a thread switch, and two threads
    never compete for the GIL on the hot path. Reconnects (with back-off) are the loop's job.
    Every method must be called from the loop's thread.
    """

    _paho_class = _BufferedPahoClient

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
        super().__init__(
            settings,
            on_message,
            manual_ack=manual_ack,
            on_connect=on_connect,
            on_disconnect=on_disconnect,
        )
        self._loop = loop or asyncio.get_running_loop()
        self._misc: asyncio.Task[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._sock: Any = None
        c = self._client
        c.on_socket_open = self._socket_open
        c.on_socket_close = self._socket_close
        c.on_socket_register_write = self._register_write
        c.on_socket_unregister_write = self._unregister_write
        c.on_publish = None  # nothing here waits for PUBACKs (no publish_confirmed)

    # paho socket callbacks (loop thread)

    def _socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._client.drop_buffer()  # type: ignore[attr-defined]
        self._sock = sock
        self._loop.add_reader(sock, self._read)
        if self._misc is None or self._misc.done():
            self._misc = self._loop.create_task(self._misc_loop())

    def _read(self) -> None:
        client = self._client
        rc = client.loop_read()
        sock = self._sock
        # Bytes already read into our buffer (or, with TLS, decrypted into the SSL object) do
        # not wake the selector again: go on until they are used up.
        while (
            rc == MQTTErrorCode.MQTT_ERR_SUCCESS
            and sock is self._sock
            and sock is not None
            and (
                client.buffered()  # type: ignore[attr-defined]
                or (isinstance(sock, ssl.SSLSocket) and sock.pending())
            )
        ):
            rc = client.loop_read()
        if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
            self._lost()

    def _socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._client.drop_buffer()  # type: ignore[attr-defined]
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        self._sock = None

    def _register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._loop.add_writer(sock, self._write)

    def _write(self) -> None:
        self._coalesce()
        rc = self._client.loop_write()
        if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
            self._lost()

    def _coalesce(self) -> None:
        """Join the packets waiting to be written into one, so that one ``send`` carries them
        (an answer and the ack of its request, and the answers to other stations that are
        ready in the same turn of the loop) instead of one system call each.

        This reaches into paho's output queue (``_out_packet``); with a paho that lays it out
        differently it does nothing. DISCONNECT and packets already partly written are left
        alone: paho acts on them once written.
        """
        try:
            q = self._client._out_packet
            if len(q) < 2:
                return
            packets = list(q)
            if any(p["pos"] or (p["command"] & 0xF0) == 0xE0 for p in packets):
                return
            for p in packets:
                if (p["command"] & 0xF0) == 0x30 and p["qos"] == 0 and p["info"] is not None:
                    p["info"]._set_as_published()  # QoS 0: done once handed to the socket
            data = b"".join(bytes(p["packet"]) for p in packets)
            q.clear()
            q.append(
                {
                    "command": 0x40,  # treated like a PUBACK: nothing to do once written
                    "mid": 0,
                    "qos": 1,
                    "pos": 0,
                    "to_process": len(data),
                    "packet": data,
                    "info": None,
                }
            )
        except (AttributeError, KeyError, TypeError):
            return

    def _unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(sock)

    async def _misc_loop(self) -> None:
        while self._sock is not None:
            rc = self._client.loop_misc()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._lost()
                return
            await asyncio.sleep(1.0)

    def _lost(self) -> None:
        self._connected.clear()
        if self._sock is not None:
            self._socket_close(self._client, None, self._sock)
        if not self._stopping and (self._reconnector is None or self._reconnector.done()):
            self._reconnector = self._loop.create_task(self._reconnect_loop())

    def _handle_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        super()._handle_disconnect(client, userdata, flags, reason, props)
        if not self._stopping:
            self._loop.call_soon(self._lost)

    async def _reconnect_loop(self) -> None:
        delay = self.settings.reconnect_min_delay
        while not self._stopping:
            try:
                self._client.reconnect()  # blocking TCP (and TLS) connect: brief on a LAN
                return
            except (OSError, ValueError) as exc:
                self.last_connect_error = str(exc)
                log.debug(
                    "MQTT connect to %s failed (%s); retrying in %.1f s",
                    self.settings.url,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(self.settings.reconnect_max_delay, delay * 2)

    # lifecycle

    def start(self) -> None:
        s = self.settings
        if s.mqtt5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0 if s.clean_start else s.session_expiry
            props.ReceiveMaximum = max(1, min(65535, s.receive_maximum))
            self._client.connect_async(
                self.address.host,
                self.address.port,
                s.keepalive,
                clean_start=s.clean_start,
                properties=props,
            )
        else:
            self._client.connect_async(self.address.host, self.address.port, s.keepalive)
        self._reconnector = self._loop.create_task(self._reconnect_loop())

    async def wait_connected_async(self, timeout: float = 10.0) -> bool:
        deadline = self._loop.time() + timeout
        while not self._connected.is_set():
            if self._loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop_async(self, final: Iterable[Will] = (), timeout: float = 5.0) -> None:
        """Publish ``final`` messages, wait (up to ``timeout``) for them, disconnect."""
        self._stopping = True
        if self._reconnector is not None:
            self._reconnector.cancel()
        if self._connected.is_set():
            infos = [
                self._client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain) for m in final
            ]
            deadline = self._loop.time() + timeout
            while any(not i.is_published() for i in infos) and self._loop.time() < deadline:
                await asyncio.sleep(0.01)
            self._client.disconnect()
            for _ in range(50):  # let the DISCONNECT out
                if self._sock is None:
                    break
                await asyncio.sleep(0.01)
        if self._sock is not None:
            self._socket_close(self._client, None, self._sock)
        if self._misc is not None:
            self._misc.cancel()
        self._connected.clear()

    def stop(self, final: Iterable[Will] = (), timeout: float = 5.0) -> None:
        raise RuntimeError("LoopMqttClient: use await stop_async()")

    def publish_confirmed(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("LoopMqttClient cannot block for a PUBACK; use MqttClient")


class AsyncMqttClient:
    """:class:`MqttClient` delivering messages to an asyncio queue (in arrival order)."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        manual_ack: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.client = MqttClient(settings, self._on_message, manual_ack=manual_ack)

    def _on_message(self, msg: Message) -> None:
        self._loop.call_soon_threadsafe(self.queue.put_nowait, msg)

    async def start(self, timeout: float | None = None) -> bool:
        self.client.start()
        if timeout is None:
            return False
        return await asyncio.to_thread(self.client.wait_connected, timeout)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.client.subscribe(topic, qos)

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos, retain)

    def ack(self, msg: Message) -> None:
        self.client.ack(msg)

    async def get(self) -> Message:
        return await self.queue.get()

    async def stop(self, final: Iterable[Will] = ()) -> None:
        await asyncio.to_thread(self.client.stop, list(final))


def error_name(rc: MQTTErrorCode | int) -> str:
    return paho.error_string(int(rc))
