"""The simulated radio channel: who hears a transmission, and how well.

A :class:`Transmission` occupies its frequency for its time on air (Semtech's formula,
:func:`~..airtime.time_on_air`, at the sender's settings). At its end, each other radio gets it
(``outcome`` ``"delivered"``) only if all of these hold, checked in this order:

1. it was listening on that frequency, spreading factor and bandwidth when the transmission
   started (a receiver that tunes in late misses the preamble; otherwise it is not counted);
2. it did not transmit itself at any moment of it (``"half_duplex"``: a radio on air hears
   nothing);
3. it still listens at the end (``"deaf"``: it stopped, retuned or restarted meanwhile), and
   the sender did not restart mid-packet (``"aborted"``);
4. no other transmission overlapped it in time on the same frequency, spreading factor and
   bandwidth (``"collision"``; different spreading factors are taken as orthogonal). With
   ``capture_db`` set, a packet at least that much stronger than every one overlapping it at
   this receiver survives (the capture effect);
5. its SNR at the receiver is above the demodulation limit of its spreading factor (``"weak"``;
   SF7 -7.5 dB down to SF12 -20 dB, Semtech's figures);
6. it is not lost at random (``"lost"``: probability ``loss``, per receiver, seeded);

and then the receiving modem may still filter it (``"filtered"``: another address, another
network, another modem family).

Signal: a fixed RSSI/SNR per pair if set (:class:`Link`), otherwise log-distance path loss from
the radios' positions (``rssi = power - PL(1 m) - 10 n log10(d)`` plus Gaussian noise of
``sigma`` dB; PL(1 m) 31.2 dB is free space at 868 MHz, ``n`` 2.7) and SNR against the thermal
noise floor ``-174 + 10 log10(BW) + NF`` dBm (NF 6 dB: -117 dBm at 125 kHz), capped at 12 dB.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..airtime import time_on_air

if TYPE_CHECKING:
    from .core import SimRadio

__all__ = ["Transmission", "Link", "Propagation", "Channel", "DEMOD_SNR"]

#: the lowest SNR (dB) a packet is demodulated at, per spreading factor (Semtech SX127x/SX126x)
DEMOD_SNR = {5: -2.5, 6: -5.0, 7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}


@dataclass(eq=False)
class Transmission:
    id: int
    sender: SimRadio
    family: str  #: what kind of modem sent it ("rak", "reyax", "ebyte"): only its kind decodes it
    frequency_hz: int
    sf: int
    bandwidth_hz: int
    coding_rate: int
    preamble: int
    air_bytes: int  #: the LoRa payload length on air (what time on air is computed from)
    payload: bytes  #: what a receiving modem of the same family gets
    meta: dict[str, Any]
    power_dbm: float
    start: float
    end: float = 0.0
    aborted: bool = False
    listeners: list[SimRadio] = field(default_factory=list)
    #: receiving radio's name -> what became of it there (module docstring)
    outcome: dict[str, str] = field(default_factory=dict)

    @property
    def airtime(self) -> float:
        return self.end - self.start

    def key(self) -> tuple[int, int, int]:
        return (self.frequency_hz, self.sf, self.bandwidth_hz)

    def overlaps(self, other: Transmission) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass
class Link:
    """Fixed signal and loss between two radios (``None``: the model's / channel's)."""

    rssi: float | None = None
    snr: float | None = None
    loss: float | None = None


class Propagation:
    """Log-distance path loss and thermal noise (module docstring)."""

    def __init__(
        self,
        rng: random.Random,
        *,
        path_loss_1m: float = 31.2,
        exponent: float = 2.7,
        sigma: float = 2.0,
        noise_figure: float = 6.0,
    ) -> None:
        self.rng = rng
        self.path_loss_1m = path_loss_1m
        self.exponent = exponent
        self.sigma = sigma
        self.noise_figure = noise_figure

    def mean_rssi(self, tx: Transmission, rx: SimRadio, link: Link | None) -> float:
        if link is not None and link.rssi is not None:
            return link.rssi
        d = max(1.0, math.dist(tx.sender.position, rx.position))
        return tx.power_dbm - self.path_loss_1m - 10 * self.exponent * math.log10(d)

    def noise_floor(self, bandwidth_hz: int) -> float:
        return -174.0 + 10 * math.log10(bandwidth_hz) + self.noise_figure

    def sample(self, tx: Transmission, rx: SimRadio, link: Link | None) -> tuple[float, float]:
        """(RSSI dBm, SNR dB) of ``tx`` at ``rx``, this once."""
        rssi = self.mean_rssi(tx, rx, link) + self.rng.gauss(0.0, self.sigma)
        if link is not None and link.snr is not None:
            snr = link.snr + self.rng.gauss(0.0, self.sigma / 2)
        else:
            snr = rssi - self.noise_floor(tx.bandwidth_hz)
        return rssi, min(snr, 12.0)


class Channel:
    """The air between the simulator's radios (module docstring). Driven by the simulator's
    thread: :meth:`begin` when a modem starts sending, :meth:`end` at the end of its time on
    air (the simulator schedules it)."""

    def __init__(
        self,
        radios: list[SimRadio],
        rng: random.Random,
        *,
        loss: float = 0.0,
        capture_db: float | None = None,
        propagation: Propagation | None = None,
        keep: int = 10000,
    ) -> None:
        self.radios = radios
        self.rng = rng
        self.loss = loss
        self.capture_db = capture_db
        self.propagation = propagation or Propagation(rng)
        self.links: dict[tuple[str, str], Link] = {}
        self.counts: Counter[str] = Counter()
        #: the last ``keep`` transmissions, oldest first
        self.log: deque[Transmission] = deque(maxlen=keep)
        self._active: list[Transmission] = []
        self._recent: deque[Transmission] = deque()
        self._ids = 0

    def link(self, a: str, b: str) -> Link | None:
        return self.links.get((a, b))

    def set_link(self, a: str, b: str, link: Link, *, both_ways: bool = True) -> None:
        self.links[(a, b)] = link
        if both_ways:
            self.links[(b, a)] = link

    def begin(
        self,
        sender: SimRadio,
        *,
        family: str,
        frequency_hz: int,
        sf: int,
        bandwidth_hz: int,
        coding_rate: int,
        preamble: int,
        air_bytes: int,
        payload: bytes,
        meta: dict[str, Any],
        power_dbm: float,
        now: float,
        crc: bool = True,
        explicit_header: bool = True,
    ) -> Transmission:
        """Start a transmission (its ``end`` is set from its time on air)."""
        self._ids += 1
        tx = Transmission(
            self._ids, sender, family, frequency_hz, sf, bandwidth_hz, coding_rate, preamble,
            air_bytes, payload, meta, power_dbm, now,
        )  # fmt: skip
        airtime = time_on_air(
            min(air_bytes, 255), sf, bandwidth_hz, coding_rate, preamble, crc, explicit_header
        )
        tx.end = now + airtime
        tx.listeners = [r for r in self.radios if r is not sender and r.hears(tx)]
        sender.on_air.append(tx)
        self._active.append(tx)
        self.log.append(tx)
        self.counts["transmissions"] += 1
        return tx

    def end(
        self, tx: Transmission, now: float, deliver: Callable[[SimRadio, float, float], bool]
    ) -> None:
        """The transmission is over: decide each listener's outcome; ``deliver(radio, rssi,
        snr)`` hands it to a receiving modem (``False``: the modem filtered it)."""
        if tx in self._active:
            self._active.remove(tx)
        self._recent.append(tx)
        while self._recent and self._recent[0].end < now - 120.0:
            self._recent.popleft()
        for r in tx.listeners:
            outcome = self._outcome(tx, r)
            if outcome == "delivered":
                link = self.link(tx.sender.name, r.name)
                rssi, snr = self.propagation.sample(tx, r, link)
                if snr < DEMOD_SNR.get(tx.sf, -20.0):
                    outcome = "weak"
                elif self.rng.random() < self._loss(tx, r, link):
                    outcome = "lost"
                elif not deliver(r, rssi, snr):
                    outcome = "filtered"
            tx.outcome[r.name] = outcome
            self.counts[outcome] += 1
            r.counts["rx_" + outcome] += 1

    def _loss(self, tx: Transmission, r: SimRadio, link: Link | None) -> float:
        if link is not None and link.loss is not None:
            return link.loss
        return self.loss

    def _outcome(self, tx: Transmission, r: SimRadio) -> str:
        if any(own.overlaps(tx) for own in r.on_air):
            return "half_duplex"
        if tx.aborted:
            return "aborted"
        if not r.hears(tx):
            return "deaf"
        others = [
            u
            for u in (*self._active, *self._recent)
            if u is not tx and u.sender is not r and u.key() == tx.key() and u.overlaps(tx)
        ]
        if others:
            if self.capture_db is None:
                return "collision"
            mine = self.propagation.mean_rssi(tx, r, self.link(tx.sender.name, r.name))
            strongest = max(
                self.propagation.mean_rssi(u, r, self.link(u.sender.name, r.name)) for u in others
            )
            if mine < strongest + self.capture_db:
                return "collision"
        return "delivered"
