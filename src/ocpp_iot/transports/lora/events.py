"""What an :class:`~.endpoint.Endpoint` tells its adapter, and what it counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .frame import FrameType

__all__ = [
    "Transmit",
    "Delivered",
    "SendAcked",
    "SendFailed",
    "PersistState",
    "Dropped",
    "Event",
    "LinkStats",
]


@dataclass(frozen=True, slots=True)
class Transmit:
    """Put ``data`` on air now (it occupies the channel ``airtime`` seconds)."""

    data: bytes
    airtime: float
    frequency_hz: int
    address: int
    type: FrameType
    retransmission: bool = False


@dataclass(frozen=True, slots=True)
class Delivered:
    """A complete message from the peer ``address`` (once, in the order sent)."""

    address: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SendAcked:
    """The peer acknowledged the message given with ``tag``; ``confirmed`` False: it went as
    a REPLY, which is never acknowledged (the peer asks again by repeating its CALL)."""

    address: int
    tag: Any
    confirmed: bool = True


@dataclass(frozen=True, slots=True)
class SendFailed:
    """The message given with ``tag`` was abandoned unacknowledged (it may have arrived)."""

    address: int
    tag: Any
    data: bytes


@dataclass(frozen=True, slots=True)
class PersistState:
    """Write :meth:`Endpoint.state` of ``address``: before the next transmission if
    ``urgent`` (a counter reservation moved), else soon (the receive window moved)."""

    address: int
    urgent: bool


@dataclass(frozen=True, slots=True)
class Dropped:
    """A received packet was not accepted (counted in the stats too)."""

    address: int | None
    reason: str


Event = Transmit | Delivered | SendAcked | SendFailed | PersistState | Dropped


@dataclass(slots=True)
class LinkStats:
    """What happened on the link, per peer (``Endpoint.stats`` for the unattributable)."""

    data_frames: int = 0
    retransmissions: int = 0
    control_frames: int = 0  #: bare ACK, NACK and CTRL frames sent
    data_airtime: float = 0.0
    control_airtime: float = 0.0  #: the airtime every bare acknowledgement cost
    piggybacked: int = 0  #: acknowledgements carried by a DATA frame instead
    delivered: int = 0
    acked: int = 0
    failed: int = 0
    received: int = 0
    bad_mic: int = 0
    duplicates: int = 0
    too_old: int = 0
    jumps: int = 0
    resyncs: int = 0
    malformed: int = 0
    truncated: int = 0
    unknown_peer: int = 0
    not_for_us: int = 0
    reacks_suppressed: int = 0
    #: repeats of a message delivered before a restart, acknowledged again (peer.py)
    reacked_after_restart: int = 0
    #: fresh messages older than one delivered: dropped, they would arrive out of order
    stale: int = 0
    duty_waits: int = 0
