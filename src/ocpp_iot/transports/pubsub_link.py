"""A :class:`~.link.StationLink` over any publish/subscribe client of ours (one copy of it).

:class:`PubSubStationLink` does everything the MQTT link and the in-memory link share: the
station's topics (``{prefix}/{id}/up``, ``.../down``, ``.../status``), its identity (client id
and username are the station id), its will and birth (retained ``offline`` / ``online`` on
``status``), the persistent session, and turning the client's callbacks into one ordered stream
of :class:`~.link.LinkUp`, :class:`~.link.LinkDown` and :class:`~.link.FrameReceived` events.
:mod:`.mqtt_link` and :mod:`.memory_link` only say which client to build.

Every callback of the client (connect, loss, message) runs in the event loop's thread, in the
order the connection saw them, and each one appends to the same queue: a frame that came after
a reconnect is behind its :class:`~.link.LinkUp`. Frames are acknowledged when they are queued
(the client's automatic ack): the node takes them at once, and what it must not lose it keeps
itself (the outbox).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Final, Protocol

from ._waiting import Inbox
from .base import PubSubClient
from .link import FrameReceived, LinkDown, LinkEvent, LinkUp
from .settings import Message, MqttSettings, Will

__all__ = ["JSON_CONTENT_TYPE", "ClientFactory", "PubSubStationLink", "station_settings"]

log = logging.getLogger("ocpp_iot.transports.link")

#: MQTT 5 content type of OCPP-J text (DESIGN.md, MQTT topics)
JSON_CONTENT_TYPE: Final = "application/json"


class ClientFactory(Protocol):
    """Builds the client a link runs on: :class:`~.aio.AsyncMqttClient` itself, or
    :meth:`~.memory.MemoryBroker.client`."""

    def __call__(
        self,
        settings: MqttSettings,
        on_message: Callable[[Message], None] | None = None,
        *,
        on_connect: Callable[[bool], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> PubSubClient: ...


class _End:
    """The marker queued once the link is closed or killed (wakes every waiting receive)."""


_END: Final = _End()


def station_settings(station_id: str, settings: MqttSettings, prefix: str = "ocpp") -> MqttSettings:
    """``settings`` made a station's: client id and username the station id (the broker's
    ACL ties the topic level to the username), will ``offline`` and birth ``online``, both
    retained QoS 1 on ``{prefix}/{id}/status``."""
    if not station_id or any(c in station_id for c in "/+#"):
        raise ValueError(f"{station_id!r} cannot be a station id (a single MQTT topic level)")
    status = f"{prefix}/{station_id}/status"
    return dataclasses.replace(
        settings,
        client_id=station_id,
        username=station_id,
        will=Will(status, b"offline", 1, True),
        birth=(Will(status, b"online", 1, True),),
    )


def _is_json(content_type: str | None) -> bool:
    # the media type before any parameters ("application/json; charset=utf-8"), any case
    return (
        content_type is not None
        and content_type.split(";", 1)[0].strip().lower() == JSON_CONTENT_TYPE
    )


class PubSubStationLink:
    """One station's link over a publish/subscribe client built by ``make_client``.

    ``settings`` carries the broker, credentials, TLS, keepalive and session options; the
    station's identity, will and birth are set here (:func:`station_settings`).
    """

    #: no practical limit on MQTT (the broker's maximum packet size is far above a frame)
    max_frame: int | None = None

    def __init__(
        self,
        station_id: str,
        settings: MqttSettings,
        make_client: ClientFactory,
        *,
        prefix: str = "ocpp",
    ) -> None:
        self.station_id = station_id
        self.prefix = prefix
        self.settings = station_settings(station_id, settings, prefix)
        self.settings.check()
        self.up_topic = f"{prefix}/{station_id}/up"
        self.down_topic = f"{prefix}/{station_id}/down"
        self.status_topic = f"{prefix}/{station_id}/status"
        self._events: Inbox[LinkEvent | _End] = Inbox()
        self._reported_up = False  # what the stream said last (LinkUp: True, LinkDown: False)
        self._opened = False
        self._ended = False  # closed or killed: nothing more is reported
        #: the client underneath (for diagnostics: ``connect_attempts``, ``last_connect_error``)
        self.client: PubSubClient = make_client(
            self.settings,
            self._message,
            on_connect=self._connected,
            on_disconnect=self._disconnected,
        )
        self.client.subscribe(self.down_topic, 1)  # and again on every reconnect

    # -- StationLink ----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._ended:
            raise RuntimeError(f"the link of {self.station_id} is closed: make a new one")
        if not self._opened:
            self._opened = True
            self.client.start()  # connects (and reconnects) in the background

    async def close(self, timeout: float = 5.0) -> None:
        """Say ``offline`` (retained, as the last message: a clean disconnect suppresses the
        will), wait up to ``timeout`` for the broker to have it and what was sent before it,
        and disconnect."""
        if self._ended:
            return
        self._end()
        await self.client.stop([Will(self.status_topic, b"offline", 1, True)], timeout)

    def kill(self) -> None:
        if self._ended:
            return
        self._end()
        self.client.kill()

    @property
    def up(self) -> bool:
        return not self._ended and self.client.connected

    def send(self, data: bytes, *, json: bool = False) -> None:
        if self._ended:
            log.debug("%s: frame dropped, the link is closed", self.station_id)
            return
        # QoS 1 (DESIGN.md): the client sends it again after a reconnect until the broker has it
        self.client.publish(
            self.up_topic, data, 1, False, content_type=JSON_CONTENT_TYPE if json else None
        )

    async def receive(self) -> LinkEvent:
        if self._ended:
            raise EOFError(f"the link of {self.station_id} is closed")
        event = await self._events.get()
        if isinstance(event, _End):
            self._events.put_nowait(event)  # for the next waiting receive
            raise EOFError(f"the link of {self.station_id} is closed")
        return event

    # -- the client's callbacks (loop thread, in the order they happened) -----------------------

    def _end(self) -> None:
        self._ended = True
        self._events.put_nowait(_END)

    def _emit(self, event: LinkEvent) -> None:
        if not self._ended:
            self._events.put_nowait(event)

    def _connected(self, session_present: bool) -> None:
        if self._reported_up:  # a loss the client did not report: keep down/up paired
            self._emit(LinkDown("connection replaced"))
        self._reported_up = True
        self._emit(LinkUp(resumed=session_present))

    def _disconnected(self) -> None:
        if self._reported_up:
            self._reported_up = False
            self._emit(LinkDown("connection lost"))

    def _message(self, msg: Message) -> None:
        if msg.topic != self.down_topic:
            log.debug("%s: ignored a message on %s", self.station_id, msg.topic)
            return
        self._emit(FrameReceived(msg.payload, json=_is_json(msg.content_type)))
