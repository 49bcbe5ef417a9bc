"""The one place that builds and tunes a paho-mqtt client (paho 2, callback API version 2).

Three speed-ups reach past paho's public API; :func:`internals` says which ones this paho
still allows, each falls back to paho's own behaviour (logging one WARNING) when it does not,
and ``tests/test_mqtt_transport.py`` fails as soon as a paho release changes what they rely on:

- ``Client._sock_recv(bufsize)``: paho reads every packet with three or more ``recv`` calls
  (the type byte, each byte of the length, the body). :class:`FastPaho` reads up to 64 KiB at
  a time and serves those small reads from a buffer.
- ``Client._create_socket()``: paho's ``reconnect()`` opens the TCP connection and does the
  TLS handshake itself, blocking. :class:`FastPaho` hands it a socket that was connected off
  the event loop (:func:`open_socket` in a worker thread) instead.
- ``Client._out_packet``: a deque of dicts (command, mid, qos, pos, to_process, packet,
  info). :meth:`FastPaho.coalesce` joins the waiting packets into one, so one ``send`` carries
  an answer, the ack of its request and whatever else is ready in the same turn of the loop.
- ``Client._handle_on_message(message)``: for every message paho first walks its matcher of
  topic callbacks (``message_callback_add``), a recursive generator whose closure is a
  reference cycle: garbage for the cyclic collector, several objects per message, so a
  collection every few hundred messages. :class:`FastPaho` calls ``on_message`` directly
  while no topic callback is registered (paho would call nothing else then).
"""

from __future__ import annotations

import functools
import inspect
import logging
import socket
import ssl
import types
from collections import deque
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .settings import BrokerAddress, MqttSettings, parse_url

__all__ = ["FastPaho", "build_client", "connect_properties", "internals", "open_socket"]

log = logging.getLogger("ocpp_iot.transports.mqtt")

_OUT_PACKET_KEYS = frozenset({"command", "mid", "qos", "pos", "to_process", "packet", "info"})
_PACKET_QUEUE = ["command", "packet", "mid", "qos", "info"]
_warned: set[str] = set()


def warn_once(name: str, text: str) -> None:
    if name not in _warned:
        _warned.add(name)
        log.warning("paho-mqtt %s: %s", getattr(paho, "__version__", "?"), text)


def _has_method(name: str, params: list[str]) -> bool:
    fn = vars(paho.Client).get(name)
    if not callable(fn):
        return False
    try:
        return list(inspect.signature(fn).parameters)[1:] == params
    except (TypeError, ValueError):
        return False


def internals() -> dict[str, bool]:
    """Which of paho's internals this paho offers in the shape we rely on."""
    probe = paho.Client(CallbackAPIVersion.VERSION2)
    out = getattr(probe, "_out_packet", None)
    return {
        "sock_recv": _has_method("_sock_recv", ["bufsize"]),
        "create_socket": _has_method("_create_socket", []),
        "out_packet": isinstance(out, deque) and _has_method("_packet_queue", _PACKET_QUEUE),
        "on_message": _has_method("_handle_on_message", ["message"])
        and _topic_callbacks_root(probe) is not None
        and all(hasattr(probe, n) for n in _ON_MESSAGE_ATTRS),
    }


#: what FastPaho._handle_on_message uses of paho's client, besides on_message
_ON_MESSAGE_ATTRS = ("_in_callback_mutex", "_easy_log", "suppress_exceptions", "_userdata")


def _topic_callbacks_root(client: paho.Client) -> Any:
    """The root of paho's matcher of topic callbacks, if it has the layout we know."""
    root = getattr(getattr(client, "_on_message_filtered", None), "_root", None)
    if not isinstance(getattr(root, "_children", None), dict) or not hasattr(root, "_content"):
        return None
    return root


_INTERNALS: dict[str, bool] | None = None


def _available() -> dict[str, bool]:
    global _INTERNALS
    if _INTERNALS is None:
        _INTERNALS = internals()
        if not _INTERNALS["sock_recv"]:
            warn_once("sock_recv", "Client._sock_recv changed: socket reads are not buffered")
        if not _INTERNALS["create_socket"]:
            warn_once(
                "create_socket",
                "Client._create_socket changed: paho connects by itself, blocking the loop",
            )
        if not _INTERNALS["out_packet"]:
            warn_once("out_packet", "Client._out_packet changed: packets are not coalesced")
        if not _INTERNALS.get("on_message", False):
            warn_once(
                "on_message",
                "Client._handle_on_message changed: every message goes through the topic matcher",
            )
    return _INTERNALS


class FastPaho(paho.Client):
    """paho's client with buffered socket reads, sockets connected elsewhere, and coalesced
    writes. Whoever drives the socket must call ``loop_read`` again while :meth:`buffered` is
    true: the selector does not report bytes that are already out of the socket."""

    _READ_SIZE = 65536

    # Our attributes in slots, out of the instance dict: paho's own 75 fit a dict of 128 slots,
    # 86 made it double (3.3 instead of 1.6 KiB a client; CPython 3.11 shares the keys of
    # instance dicts only up to 30 attributes).
    __slots__ = (
        "_rbuf", "_rpos", "prepared_socket", "buffering", "external_connect", "coalescing",
        "_topic_root", "recv_calls", "coalesced", "prepared_used", "direct_messages",
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        use = _available()
        self._rbuf = b""
        self._rpos = 0
        self.prepared_socket: socket.socket | None = None
        self.buffering = use["sock_recv"]
        self.external_connect = use["create_socket"]
        self.coalescing = use["out_packet"]
        # paho's matcher root: message_callback_add changes it in place
        self._topic_root: Any = _topic_callbacks_root(self) if use.get("on_message") else None
        # counters for the tests of the speed-ups
        self.recv_calls = 0  # reads from the socket
        self.coalesced = 0  # packets joined into a bigger one
        self.prepared_used = 0  # connections made on a socket connected off the loop
        self.direct_messages = 0  # messages handed to on_message without the matcher
        plain = vars(paho.Client).get("_sock_recv")
        if not self.buffering and plain is not None:  # paho's own, whatever it looks like now
            self._sock_recv = types.MethodType(plain, self)  # type: ignore[method-assign]

    # -- reads ------------------------------------------------------------------------------

    def buffered(self) -> bool:
        return self._rpos < len(self._rbuf)

    def drop_buffer(self) -> None:
        self._rbuf = b""
        self._rpos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        pos = self._rpos
        buf = self._rbuf
        if pos >= len(buf):
            self.recv_calls += 1
            buf = super()._sock_recv(self._READ_SIZE)  # BlockingIOError when there is nothing
            if not buf:
                return buf  # connection closed
            self._rbuf = buf
            pos = 0
        end = pos + bufsize
        self._rpos = end
        return buf[pos:end]

    # -- messages -----------------------------------------------------------------------------

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        root = self._topic_root
        if root is None or root._children or root._content is not None:
            super()._handle_on_message(message)  # topic callbacks (or a paho we do not know)
            return
        self.direct_messages += 1
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:  # as paho calls it
            try:
                on_message(self, self._userdata, message)
            except Exception as err:
                self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise

    # -- connecting -------------------------------------------------------------------------

    def _create_socket(self) -> Any:
        sock = self.prepared_socket
        if sock is None:
            return super()._create_socket()
        self.prepared_socket = None
        self.prepared_used += 1
        return sock

    # -- writes -----------------------------------------------------------------------------

    def coalesce(self) -> None:
        """Join the packets waiting to be written into one.

        DISCONNECT and packets already partly written are left alone: paho acts on them once
        written. QoS 0 publishes are marked published here (paho would do it after writing).
        """
        if not self.coalescing:
            return
        q = self._out_packet
        if len(q) < 2:
            return
        packets = list(q)
        try:
            for p in packets:
                if p["pos"] or (p["command"] & 0xF0) == 0xE0:
                    return
            data = b"".join(bytes(p["packet"]) for p in packets)
            for p in packets:
                if (p["command"] & 0xF0) == 0x30 and p["qos"] == 0 and p["info"] is not None:
                    p["info"]._set_as_published()  # QoS 0: done once handed to the socket
        except (KeyError, TypeError, AttributeError):
            self.coalescing = False
            warn_once("out_packet", "unexpected _out_packet entries: packets are not coalesced")
            return
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
        self.coalesced += len(packets)


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=settings.ca_certs)
    if settings.certfile:
        ctx.load_cert_chain(settings.certfile, settings.keyfile)
    if settings.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def uses_tls(settings: MqttSettings, address: BrokerAddress | None = None) -> bool:
    address = address or parse_url(settings.url)
    return bool(address.tls or settings.ca_certs or settings.certfile)


def build_client(settings: MqttSettings, *, manual_ack: bool) -> FastPaho:
    """A paho client with our settings: protocol, session, credentials, TLS, will, limits.

    Connection attempts and their back-off are the caller's (``reconnect_on_failure`` off).
    """
    settings.check()
    address = parse_url(settings.url)
    kwargs: dict[str, Any] = {}
    if not settings.mqtt5:
        kwargs["clean_session"] = settings.clean_start
    c = FastPaho(
        CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        protocol=paho.MQTTv5 if settings.mqtt5 else paho.MQTTv311,
        manual_ack=manual_ack,
        reconnect_on_failure=False,
        **kwargs,
    )
    username, password = settings.credentials()
    if username is not None:
        c.username_pw_set(username, password)
    if uses_tls(settings, address):
        # paho only uses this when it connects by itself (the fallback of _create_socket)
        c.tls_set_context(tls_context(settings))
        if settings.tls_insecure:
            c.tls_insecure_set(True)
    if settings.will is not None:
        w = settings.will
        c.will_set(w.topic, w.payload, qos=w.qos, retain=w.retain)
    c.connect_timeout = settings.connect_timeout
    c.max_inflight_messages_set(settings.max_inflight)
    c.max_queued_messages_set(0)
    # where to connect, and the CONNECT packet's session settings (reconnect() uses them)
    if settings.mqtt5:
        c.connect_async(
            address.host,
            address.port,
            settings.keepalive,
            clean_start=settings.clean_start,
            properties=connect_properties(settings),
        )
    else:
        c.connect_async(address.host, address.port, settings.keepalive)
    return c


def connect_properties(settings: MqttSettings) -> Properties | None:
    """CONNECT properties (MQTT 5): session expiry and receive maximum. The object is shared by
    every client with the same values (paho only packs it): a paho ``Properties`` holds ~5.7 KiB
    of tables of its own, per client in ``charger-node simulate`` (issue 16). Do not change it."""
    if not settings.mqtt5:
        return None
    expiry = 0 if settings.clean_start else settings.session_expiry
    return _connect_properties(expiry, max(1, min(65535, settings.receive_maximum)))


@functools.lru_cache(maxsize=8)
def _connect_properties(session_expiry: int, receive_maximum: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry
    props.ReceiveMaximum = receive_maximum
    return props


def publish_properties(content_type: str | None) -> Properties | None:
    if content_type is None:
        return None
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = content_type
    return props


def open_socket(
    address: BrokerAddress, ctx: ssl.SSLContext | None, timeout: float, nodelay: bool
) -> socket.socket:
    """TCP connect and TLS handshake (blocking: run it in a worker thread)."""
    sock = socket.create_connection((address.host, address.port), timeout=timeout)
    try:
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ctx is not None:
            sock = ctx.wrap_socket(sock, server_hostname=address.host)
    except BaseException:
        sock.close()
        raise
    return sock
