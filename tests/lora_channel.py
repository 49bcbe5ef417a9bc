"""A seeded, virtual-time radio channel for the LoRa link-layer tests (no I/O, no sleeping).

Endpoints transmit through :class:`Channel`: each frame reaches every other endpoint after its
time on air unless it is lost (independently per receiver, probability ``loss``), collides
with another transmission overlapping it in time, or the receiver was itself transmitting
(half-duplex). The channel keeps every transmission, so the tests can check the duty cycle
independently of the ledger under test.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ocpp_iot.transports.lora import (
    Delivered,
    Endpoint,
    Event,
    SendAcked,
    SendFailed,
    Transmit,
)
from ocpp_iot.transports.lora.airtime import HOUR, band_for


@dataclass
class Air:
    sender: str
    start: float
    end: float
    data: bytes
    frequency_hz: int


@dataclass
class Channel:
    endpoints: dict[str, Endpoint]
    loss: float = 0.0
    seed: int = 1
    collisions: bool = True
    #: called with (endpoint name, event, channel) for Delivered / SendAcked / SendFailed
    on_event: Callable[[str, Event, Channel], None] | None = None
    now: float = 0.0
    sent: list[Air] = field(default_factory=list)
    delivered: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    acked: dict[str, list[object]] = field(default_factory=dict)
    failed: dict[str, list[object]] = field(default_factory=dict)
    lost: int = 0
    collided: int = 0
    deaf: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._arrivals: list[tuple[float, int, Air]] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._recent: list[Air] = []  # what may still overlap a frame in the air
        self._seq = itertools.count()
        for name in self.endpoints:
            self.delivered[name] = []
            self.acked[name] = []
            self.failed[name] = []

    # -- driving --------------------------------------------------------------------------------

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` (an application's action) ``delay`` seconds from now."""
        heapq.heappush(self._timers, (self.now + delay, next(self._seq), fn))

    def send(self, name: str, address: int, data: bytes, **kw: object) -> None:
        self.handle(name, self.endpoints[name].send(address, data, self.now, **kw))  # type: ignore[arg-type]

    def handle(self, name: str, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, Transmit):
                air = Air(name, self.now, self.now + ev.airtime, ev.data, ev.frequency_hz)
                self.sent.append(air)
                self._recent.append(air)
                heapq.heappush(self._arrivals, (air.end, next(self._seq), air))
            elif isinstance(ev, Delivered):
                self.delivered[name].append((ev.address, ev.data))
            elif isinstance(ev, SendAcked):
                self.acked[name].append(ev.tag)
            elif isinstance(ev, SendFailed):
                self.failed[name].append(ev.tag)
            if self.on_event is not None and not isinstance(ev, Transmit):
                self.on_event(name, ev, self)

    def run(self, until: float, stop: Callable[[], bool] | None = None) -> None:
        """Advance virtual time to ``until`` (or until ``stop()`` is true and all is quiet)."""
        stuck = 0
        while True:
            deadlines = [
                (d, n) for n, e in self.endpoints.items() if (d := e.next_deadline()) is not None
            ]
            t_poll = min(deadlines, default=(None, ""))[0]
            t_air = self._arrivals[0][0] if self._arrivals else None
            t_app = self._timers[0][0] if self._timers else None
            candidates = [t for t in (t_poll, t_air, t_app) if t is not None]
            if not candidates or (stop is not None and stop() and t_air is None):
                return
            t = max(min(candidates), self.now)
            stuck = stuck + 1 if t == self.now else 0
            assert stuck < 10_000, f"no progress at t={t}: an endpoint's deadline does not move"
            if t > until:
                self.now = until
                return
            self.now = t
            if t_air is not None and t_air <= t:
                _, _, air = heapq.heappop(self._arrivals)
                self._arrive(air)
                continue
            if t_app is not None and t_app <= t:
                heapq.heappop(self._timers)[2]()
                continue
            for d, name in deadlines:
                if d <= t:
                    self.handle(name, self.endpoints[name].poll(t))

    def _arrive(self, air: Air) -> None:
        horizon = air.start - 15.0  # no LoRa frame lasts 15 s (SF12, 255 bytes: ~10 s)
        self._recent = [a for a in self._recent if a.end > horizon]
        overlapping = [
            a for a in self._recent if a is not air and a.start < air.end and air.start < a.end
        ]
        for name, endpoint in self.endpoints.items():
            if name == air.sender:
                continue
            if any(a.sender == name for a in overlapping):
                self.deaf += 1  # it was transmitting: half-duplex
                continue
            if self.collisions and any(a.frequency_hz == air.frequency_hz for a in overlapping):
                self.collided += 1
                continue
            if self.rng.random() < self.loss:
                self.lost += 1
                continue
            self.handle(name, endpoint.receive(air.data, self.now))

    # -- independent checks ---------------------------------------------------------------------

    def airtime(self, name: str | None = None) -> float:
        return sum(a.end - a.start for a in self.sent if name is None or a.sender == name)

    def worst_hour(self, name: str) -> dict[str, float]:
        """Per sub-band, the most airtime ``name`` used in any one-hour window (windows ending at
        each of its transmissions' ends: where the maximum is reached)."""
        by_band: dict[str, list[Air]] = {}
        for a in self.sent:
            if a.sender == name:
                by_band.setdefault(band_for(a.frequency_hz).name, []).append(a)
        out: dict[str, float] = {}
        for band, airs in by_band.items():
            airs.sort(key=lambda a: a.start)  # one radio: they do not overlap each other
            prefix = list(itertools.accumulate((a.end - a.start for a in airs), initial=0.0))
            first, best = 0, 0.0
            for i, a in enumerate(airs):  # the window (a.end - HOUR, a.end]
                while airs[first].end <= a.end - HOUR:
                    first += 1
                used = prefix[i + 1] - prefix[first]
                cut = a.end - HOUR - airs[first].start  # the first may straddle the edge
                best = max(best, used - max(0.0, cut))
            out[band] = best
        return out
