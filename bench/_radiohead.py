"""A RadioHead-style reliable datagram link, the baseline of ``bench/lora_airtime.py``.

Written from the behaviour RadioHead's ``RHReliableDatagram`` documents (our own code, sans-IO,
with the same calls as our ``Endpoint`` so that both run on one ``VirtualChannel``,
``ocpp_iot.transports.lora.virtual_channel``):

- a packet is ``TO FROM ID FLAGS`` (4 bytes, the RH_RF95 header) and the message, no MIC, no
  encryption, no fragmentation (a message is at most 251 bytes);
- ``sendtoWait``: transmit, then wait a **fixed** ``timeout`` (200 ms) from the end of the
  transmission for the ACK; none: transmit the very packet again (``RETRY`` flag), at most
  ``retries`` (3) times, then give up (``SendFailed``). The timeout does not depend on the
  spreading factor (RadioHead adds a random 0..100 % of it; the issue's baseline is fixed);
- the receiver acknowledges every data packet at once with a separate ACK packet (header with
  the ``ACK`` flag, the message's ID, one payload byte ``!``: 5 bytes on air), duplicates too;
- duplicate detection by the **last ID only** seen from each sender: a packet with the same ID
  as the last one accepted from that sender is acknowledged and dropped;
- one message in flight; others wait in a queue (first come first served); ACKs go before
  data; one transmission at a time (the radio is half-duplex: it hears nothing while on air).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from ocpp_iot.transports.lora import (
    Delivered,
    Event,
    FrameType,
    RadioConfig,
    SendAcked,
    SendFailed,
    Transmit,
)

__all__ = ["RadioHeadLink", "HEADER", "ACK_SIZE", "MAX_MESSAGE"]

HEADER = 4
ACK_SIZE = HEADER + 1
MAX_MESSAGE = 251
FLAG_ACK = 0x80
FLAG_RETRY = 0x40


@dataclass
class _Sending:
    to: int
    id: int
    packet: bytes
    data: bytes
    tag: Any
    tries: int = 0
    deadline: float | None = None


@dataclass
class RadioHeadStats:
    data_frames: int = 0
    retransmissions: int = 0
    ack_frames: int = 0
    delivered: int = 0
    duplicates: int = 0
    acked: int = 0
    failed: int = 0


class RadioHeadLink:
    def __init__(
        self, address: int, radio: RadioConfig, *, timeout: float = 0.2, retries: int = 3
    ) -> None:
        self.address = address
        self.radio = radio
        self.timeout = timeout
        self.retries = retries
        self.queue: deque[tuple[int, bytes, Any]] = deque()
        self.inflight: _Sending | None = None
        self.acks: deque[bytes] = deque()
        self.seen: dict[int, int] = {}  # sender -> the last ID accepted (last ID only)
        self.last_id = 0
        self.busy_until = -math.inf
        self.stats = RadioHeadStats()

    def send(
        self, address: int, data: bytes, now: float, *, tag: Any = None, **_: Any
    ) -> list[Event]:
        if not 1 <= len(data) <= MAX_MESSAGE:
            raise ValueError(f"a RadioHead message is 1..{MAX_MESSAGE} bytes, not {len(data)}")
        self.queue.append((address, bytes(data), tag))
        return self.poll(now)

    def receive(self, raw: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        if len(raw) >= HEADER and raw[0] == self.address:
            frm, id_, flags = raw[1], raw[2], raw[3]
            inf = self.inflight
            if flags & FLAG_ACK:
                if inf is not None and inf.to == frm and inf.id == id_:
                    self.inflight = None
                    self.stats.acked += 1
                    events.append(SendAcked(frm, inf.tag))
            else:
                self.acks.append(bytes((frm, self.address, id_, FLAG_ACK)) + b"!")
                if self.seen.get(frm) == id_:
                    self.stats.duplicates += 1
                else:
                    self.seen[frm] = id_
                    self.stats.delivered += 1
                    events.append(Delivered(frm, raw[HEADER:]))
        return events + self.poll(now)

    def poll(self, now: float) -> list[Event]:
        events: list[Event] = []
        inf = self.inflight
        if inf is not None and inf.deadline is not None and now >= inf.deadline:
            if inf.tries > self.retries:
                self.inflight = None
                self.stats.failed += 1
                events.append(SendFailed(inf.to, inf.tag, inf.data))
            else:
                inf.deadline = None  # retransmit as soon as the radio is free
        if now < self.busy_until:
            return events
        if self.acks:
            self._transmit(self.acks.popleft(), FrameType.ACK, now, events, False)
            self.stats.ack_frames += 1
            return events
        if self.inflight is None and self.queue:
            to, data, tag = self.queue.popleft()
            self.last_id = (self.last_id + 1) & 0xFF
            packet = bytes((to, self.address, self.last_id, 0)) + data
            self.inflight = _Sending(to, self.last_id, packet, data, tag)
        inf = self.inflight
        if inf is not None and inf.deadline is None:
            again = inf.tries > 0
            packet = (
                inf.packet if not again else inf.packet[:3] + bytes((FLAG_RETRY,)) + inf.packet[4:]
            )
            self._transmit(packet, FrameType.DATA, now, events, again)
            self.stats.data_frames += 1
            self.stats.retransmissions += again
            inf.tries += 1
            inf.deadline = self.busy_until + self.timeout  # counted from the end of the packet
        return events

    def next_deadline(self) -> float | None:
        times: list[float] = []
        inf = self.inflight
        if self.acks or (inf is None and self.queue) or (inf is not None and inf.deadline is None):
            times.append(self.busy_until)
        if inf is not None and inf.deadline is not None:
            times.append(inf.deadline)
        return min(times) if times else None

    def _transmit(
        self, packet: bytes, type_: FrameType, now: float, events: list[Event], again: bool
    ) -> None:
        airtime = self.radio.airtime(len(packet))
        self.busy_until = now + airtime
        events.append(Transmit(packet, airtime, self.radio.frequency_hz, packet[0], type_, again))
