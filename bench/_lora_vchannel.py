"""A seeded, virtual-time radio channel that drives sans-IO link layers (no I/O, no sleeping).

Used by ``bench/lora_airtime.py`` to run our :class:`~ocpp_iot.transports.lora.Endpoint` and
the RadioHead-style baseline (``bench/_radiohead.py``) on the same channel. A *link* is
anything with the endpoint's four calls, ``send(address, data, now, **kw)``, ``receive(raw,
now)``, ``poll(now)`` and ``next_deadline()``, each returning the endpoint's events
(:class:`Transmit`, :class:`Delivered`, :class:`SendAcked`, :class:`SendFailed`; others are
passed to ``on_event`` and otherwise ignored).

The model (the same rules as the pty simulator's channel, ``transports/lora/sim/channel.py``,
without its RSSI/SNR part): a transmission occupies its frequency for its time on air; at its
end every other link receives it unless (in this order) it transmitted itself at any moment of
it (half-duplex: ``deaf``), another transmission on the same frequency overlapped it
(``collided``: both lost), or it is lost at random (``lost``: probability ``loss`` per
receiver, from a seeded generator). A link given a frequency in ``listens`` hears only that
one. Every transmission is kept in :attr:`VChannel.sent`, every outcome counted per receiver.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ocpp_iot.transports.lora import Event, Transmit

__all__ = ["Link", "Air", "VChannel"]


class Link(Protocol):
    def send(self, address: int, data: bytes, now: float, **kw: Any) -> list[Event]: ...
    def receive(self, raw: bytes, now: float) -> list[Event]: ...
    def poll(self, now: float) -> list[Event]: ...
    def next_deadline(self) -> float | None: ...


@dataclass
class Air:
    sender: str
    start: float
    end: float
    data: bytes
    frequency_hz: int
    retransmission: bool


@dataclass
class VChannel:
    links: dict[str, Link]
    #: the frequency each link listens on (absent: it hears every frequency)
    listens: dict[str, int] = field(default_factory=dict)
    loss: float = 0.0
    seed: int = 1
    #: called with (link name, event) for every event but Transmit
    on_event: Callable[[str, Event], None] | None = None
    now: float = 0.0
    sent: list[Air] = field(default_factory=list)
    lost: int = 0
    collided: int = 0
    deaf: int = 0
    #: (receiver, outcome) -> count, outcome "received", "deaf", "collided" or "lost"
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._arrivals: list[tuple[float, int, Air]] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._recent: list[Air] = []
        self._seq = itertools.count()

    def later(self, at: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` (the application's action) at virtual time ``at``."""
        heapq.heappush(self._timers, (at, next(self._seq), fn))

    def send(self, name: str, address: int, data: bytes, **kw: Any) -> None:
        self.handle(name, self.links[name].send(address, data, self.now, **kw))

    def handle(self, name: str, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, Transmit):
                air = Air(
                    name,
                    self.now,
                    self.now + ev.airtime,
                    ev.data,
                    ev.frequency_hz,
                    ev.retransmission,
                )
                self.sent.append(air)
                self._recent.append(air)
                heapq.heappush(self._arrivals, (air.end, next(self._seq), air))
            elif self.on_event is not None:
                self.on_event(name, ev)

    def run(self, until: float) -> None:
        """Advance virtual time until nothing is left to do, or to ``until``."""
        stuck = 0
        while True:
            deadlines = [
                (d, n) for n, k in self.links.items() if (d := k.next_deadline()) is not None
            ]
            candidates = [
                t
                for t in (
                    min(deadlines, default=(None, ""))[0],
                    self._arrivals[0][0] if self._arrivals else None,
                    self._timers[0][0] if self._timers else None,
                )
                if t is not None
            ]
            if not candidates:
                return
            t = max(min(candidates), self.now)
            stuck = stuck + 1 if t == self.now else 0
            if stuck > 10_000:
                raise RuntimeError(f"no progress at t={t}: a link's deadline does not move")
            if t > until:
                self.now = until
                return
            self.now = t
            if self._arrivals and self._arrivals[0][0] <= t:
                self._arrive(heapq.heappop(self._arrivals)[2])
            elif self._timers and self._timers[0][0] <= t:
                heapq.heappop(self._timers)[2]()
            else:
                for d, name in deadlines:
                    if d <= t:
                        self.handle(name, self.links[name].poll(t))

    def _arrive(self, air: Air) -> None:
        horizon = air.start - 15.0  # no LoRa frame lasts 15 s (SF12, 255 bytes: ~9 s)
        self._recent = [a for a in self._recent if a.end > horizon]
        overlapping = [
            a for a in self._recent if a is not air and a.start < air.end and air.start < a.end
        ]
        for name, link in self.links.items():
            if name == air.sender or self.listens.get(name, air.frequency_hz) != air.frequency_hz:
                continue
            if any(a.sender == name for a in overlapping):
                self.deaf += 1
                self.outcomes[name, "deaf"] += 1
                continue
            if any(a.frequency_hz == air.frequency_hz for a in overlapping):
                self.collided += 1
                self.outcomes[name, "collided"] += 1
                continue
            if self.rng.random() < self.loss:
                self.lost += 1
                self.outcomes[name, "lost"] += 1
                continue
            self.outcomes[name, "received"] += 1
            self.handle(name, link.receive(air.data, self.now))

    def airtime(self, name: str | None = None) -> float:
        return sum(a.end - a.start for a in self.sent if name is None or a.sender == name)
