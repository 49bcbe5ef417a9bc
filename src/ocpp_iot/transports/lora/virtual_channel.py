"""A seeded, virtual-time radio channel for tests and benchmarks of link layers.

What it is for: running sans-IO link layers (our :class:`~.endpoint.Endpoint`, or a baseline
such as ``bench/_radiohead.py``'s) against each other in virtual time, repeatably from a seed,
and checking what they did from the outside (every transmission is kept). Sans-IO like the
link layer itself: no I/O, no sleeping, no clock reads; time moves only in :meth:`run`, from
one thing to do to the next.

A *link* (:class:`Link`) is anything with the endpoint's four calls, ``send(address, data,
now, **kw)``, ``receive(raw, now)``, ``poll(now)`` and ``next_deadline()``, each returning the
endpoint's events: :class:`~.events.Transmit` puts a frame on air; :class:`~.events.Delivered`,
:class:`~.events.SendAcked` and :class:`~.events.SendFailed` are recorded per link; every event
but ``Transmit`` is passed to ``on_event`` (the application's turn: it may :meth:`send`, or
schedule an action with :meth:`at` / :meth:`later`).

The model is the pty simulator's channel's (``transports/lora/sim/channel.py``) without its
RSSI/SNR part: a transmission occupies its frequency for its time on air; at its end every
other link receives it unless (in this order) it transmitted itself at any moment of it
(half-duplex: ``deaf``), another transmission on the same frequency overlapped it
(``collided``: both lost), or it is lost at random (``lost``: probability ``loss`` per
receiver, from a generator seeded with ``seed``). A link given a frequency in ``listens`` hears
only that one. Outcomes are counted in total and per receiver (:attr:`VirtualChannel.outcomes`).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from .air import Air
from .airtime import HOUR, band_for
from .events import Delivered, Event, SendAcked, SendFailed, Transmit

__all__ = ["Link", "Air", "VirtualChannel"]

#: no LoRa frame lasts this long (SF12, 255 bytes: ~9 s): older transmissions overlap nothing new
LONGEST_FRAME = 15.0
#: polls in a row at the same instant before the channel calls a link stuck
STUCK_LIMIT = 10_000


class Link(Protocol):
    """The sans-IO link layer's calls (:class:`~.endpoint.Endpoint` has them)."""

    def send(self, address: int, data: bytes, now: float, *args: Any, **kw: Any) -> list[Event]: ...
    def receive(self, raw: bytes, now: float) -> list[Event]: ...
    def poll(self, now: float) -> list[Event]: ...
    def next_deadline(self) -> float | None: ...


L = TypeVar("L", bound=Link)


@dataclass
class VirtualChannel(Generic[L]):
    """The links by name, the channel's rules, virtual time and what happened on air."""

    links: dict[str, L]
    #: the frequency each link listens on (absent: it hears every frequency)
    listens: dict[str, int] = field(default_factory=dict)
    loss: float = 0.0
    seed: int = 1
    #: called with (link name, event) for every event but Transmit
    on_event: Callable[[str, Event], None] | None = None
    now: float = 0.0
    sent: list[Air] = field(default_factory=list)
    #: per link: (address, data) of each Delivered, the tag of each SendAcked / SendFailed
    delivered: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    acked: dict[str, list[Any]] = field(default_factory=dict)
    failed: dict[str, list[Any]] = field(default_factory=dict)
    lost: int = 0
    collided: int = 0
    deaf: int = 0
    #: (receiver, outcome) -> count, outcome "received", "deaf", "collided" or "lost"
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._arrivals: list[tuple[float, int, Air]] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._recent: list[Air] = []  # what may still overlap a frame in the air
        self._seq = itertools.count()  # ties in time: first scheduled, first done
        for name in self.links:
            self.delivered.setdefault(name, [])
            self.acked.setdefault(name, [])
            self.failed.setdefault(name, [])

    # -- driving --------------------------------------------------------------------------------

    def at(self, when: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` (an application's action) at virtual time ``when``."""
        heapq.heappush(self._timers, (when, next(self._seq), fn))

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` (an application's action) ``delay`` seconds from now."""
        self.at(self.now + delay, fn)

    def send(self, name: str, address: int, data: bytes, **kw: Any) -> None:
        """``name`` sends ``data`` to ``address`` now (``kw``: the link's send options)."""
        self.handle(name, self.links[name].send(address, data, self.now, **kw))

    def handle(self, name: str, events: list[Event]) -> None:
        """Act on the events link ``name`` returned: put its frames on air, record the rest."""
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
                continue
            if isinstance(ev, Delivered):
                self.delivered[name].append((ev.address, ev.data))
            elif isinstance(ev, SendAcked):
                self.acked[name].append(ev.tag)
            elif isinstance(ev, SendFailed):
                self.failed[name].append(ev.tag)
            if self.on_event is not None:
                self.on_event(name, ev)

    def run(self, until: float, stop: Callable[[], bool] | None = None) -> None:
        """Advance virtual time until nothing is left to do, to ``until``, or until ``stop()``
        is true with no frame in the air. At one instant: arrivals first, then the
        application's actions, then the links' polls."""
        stuck = 0
        while True:
            deadlines = [
                (d, n) for n, k in self.links.items() if (d := k.next_deadline()) is not None
            ]
            t_poll = min(deadlines, default=(None, ""))[0]
            t_air = self._arrivals[0][0] if self._arrivals else None
            t_app = self._timers[0][0] if self._timers else None
            candidates = [t for t in (t_poll, t_air, t_app) if t is not None]
            if not candidates or (stop is not None and t_air is None and stop()):
                return
            t = max(min(candidates), self.now)
            stuck = stuck + 1 if t == self.now else 0
            if stuck > STUCK_LIMIT:
                raise RuntimeError(f"no progress at t={t}: a link's deadline does not move")
            if t > until:
                self.now = until
                return
            self.now = t
            if t_air is not None and t_air <= t:
                self._arrive(heapq.heappop(self._arrivals)[2])
            elif t_app is not None and t_app <= t:
                heapq.heappop(self._timers)[2]()
            else:
                for d, name in deadlines:
                    if d <= t:
                        self.handle(name, self.links[name].poll(t))

    def _arrive(self, air: Air) -> None:
        horizon = air.start - LONGEST_FRAME
        self._recent = [a for a in self._recent if a.end > horizon]
        overlapping = [a for a in self._recent if a is not air and a.overlaps(air)]
        for name, link in self.links.items():
            if name == air.sender or self.listens.get(name, air.frequency_hz) != air.frequency_hz:
                continue
            if any(a.sender == name for a in overlapping):
                outcome = "deaf"  # it was transmitting: half-duplex
                self.deaf += 1
            elif any(a.frequency_hz == air.frequency_hz for a in overlapping):
                outcome = "collided"
                self.collided += 1
            elif self.rng.random() < self.loss:
                outcome = "lost"
                self.lost += 1
            else:
                outcome = "received"
            self.outcomes[name, outcome] += 1
            if outcome == "received":
                self.handle(name, link.receive(air.data, self.now))

    # -- checks independent of the links under test ---------------------------------------------

    def airtime(self, name: str | None = None) -> float:
        """Seconds on air of ``name``'s transmissions (of all, without a name)."""
        return sum(a.end - a.start for a in self.sent if name is None or a.sender == name)

    def worst_hour(self, name: str) -> dict[str, float]:
        """Per sub-band, the most airtime ``name`` used in any one-hour window (windows ending
        at each of its transmissions' ends: where the maximum is reached)."""
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
