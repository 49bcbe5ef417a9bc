"""The station-level link: what carries one station's frames to the back end and back.

A charger node speaks to the back end through exactly one :class:`StationLink`. MQTT is one
implementation (:mod:`.mqtt_link`: ``{prefix}/{id}/up`` and ``.../down``, QoS 1, a persistent
session, ``online``/``offline`` on ``.../status``); a LoRa modem will be another, an OCPP-J
WebSocket a third. The node's runtime is written against this interface only, so adding a link
changes nothing there.

The interface is deliberately small and frame-shaped, not topic-shaped:

- :meth:`StationLink.open` starts connecting and returns at once; the link reconnects on its own
  for as long as it is open, and reports each change as a :class:`LinkUp` / :class:`LinkDown`
  event, in order, on the same stream as the frames (:meth:`StationLink.receive`), so that the
  runtime sees "down, then the frame that arrived after the reconnect" in the order it happened.
- :meth:`StationLink.send` hands one encoded frame over for transmission (MQTT: a QoS 1 publish
  on ``up``). It never blocks. A frame handed over while the link is down may be lost: what must
  not be lost is kept by the caller (the charger's durable outbox) and sent again after the next
  :class:`LinkUp`.
- ``max_frame`` is the largest frame the link carries in one piece (``None``: no practical
  limit); a LoRa link is small, and the node keeps what it sends under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["FrameReceived", "LinkDown", "LinkEvent", "LinkUp", "StationLink"]


@dataclass(frozen=True, slots=True)
class LinkUp:
    """The link (re)connected: frames sent from now on reach the back end.

    ``resumed`` is ``True`` when the far side kept our session (MQTT: session present), so frames
    queued for us while we were away will still arrive."""

    resumed: bool = False


@dataclass(frozen=True, slots=True)
class LinkDown:
    """The link was lost; ``reason`` says why, for the log."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class FrameReceived:
    """One frame from the back end, as it arrived. ``json`` is ``True`` when the link says it is
    OCPP-J text (MQTT 5 content type ``application/json``); otherwise the bytes are sniffed."""

    data: bytes
    json: bool = False


LinkEvent = LinkUp | LinkDown | FrameReceived


@runtime_checkable
class StationLink(Protocol):
    """One station's link to the back end. All methods are called from the event loop's thread."""

    #: the station id this link speaks for
    station_id: str
    #: the largest frame carried in one piece, in bytes; ``None``: no practical limit
    max_frame: int | None

    async def open(self) -> None:
        """Start connecting (returns without waiting for the connection: see :class:`LinkUp`)."""
        ...

    async def close(self, timeout: float = 5.0) -> None:
        """Leave cleanly: say we are going (MQTT: ``offline`` on ``status``), flush what was
        handed over if the link is up, and disconnect. ``receive`` then raises ``EOFError``."""
        ...

    def kill(self) -> None:
        """Drop the link at once, as a power cut would (tests: the far side sees the will)."""
        ...

    @property
    def up(self) -> bool:
        """Whether the link is connected now."""
        ...

    def send(self, data: bytes, *, json: bool = False) -> None:
        """Hand one encoded frame over for transmission; ``json``: it is OCPP-J text."""
        ...

    async def receive(self) -> LinkEvent:
        """The next event: a frame, or a change of the link's state. ``EOFError`` once closed."""
        ...
