"""An in-memory LoRa channel and its modems, for tests and demos: :class:`MemoryChannel` and
:class:`MemoryModem` (the :class:`~.modem.Modem` protocol, no serial port).

What the channel models: each packet occupies the air for its time on air (``transmit`` returns
when it is over, as a modem's "sent" event comes); it reaches every *other* open modem listening
on its frequency (``rx_hz``) at its end, unless it is lost (independently per receiver, with
probability ``loss``; seeded), collides with another transmission overlapping it on the same
frequency (both are lost), or the receiver was transmitting itself at any moment of it
(half-duplex: a radio on air hears nothing). Every transmission is kept (:attr:`MemoryChannel.
sent`) so that a test can check the duty cycle on its own account, and :meth:`MemoryChannel.
inject` puts arbitrary bytes on air (a forger, a replayer).

Time: ``clock()`` gives radio seconds; ``rate`` radio seconds pass per wall-clock second
(tests run the radio faster than real time; :func:`scaled_clock`). The adapters above must use
the same clock and rate.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from .air import Air
from .airtime import HOUR
from .arq import RadioConfig
from .modem import ModemError, Received

__all__ = ["Air", "MemoryChannel", "MemoryModem", "scaled_clock"]


def scaled_clock(rate: float = 1.0) -> Callable[[], float]:
    """A clock that starts at the wall-clock time and runs ``rate`` times as fast."""
    start_wall, start = time.time(), time.monotonic()
    return lambda: start_wall + (time.monotonic() - start) * rate


class _Eof:
    pass


_EOF = _Eof()


class MemoryChannel:
    """The air shared by the modems made with :meth:`modem` (module docstring)."""

    def __init__(
        self,
        radio: RadioConfig | None = None,
        *,
        loss: float = 0.0,
        seed: int = 0,
        collisions: bool = True,
        clock: Callable[[], float] | None = None,
        rate: float = 1.0,
    ) -> None:
        if not 0.0 <= loss < 1.0 or rate <= 0:
            raise ValueError("loss is in [0, 1) and rate is positive")
        #: the modulation every modem uses (time on air); its max_packet and frequency unused
        self.radio = radio or RadioConfig()
        self.loss = loss
        self.collisions = collisions
        self.clock = clock or scaled_clock(rate)
        self.rate = rate
        self.rng = random.Random(seed)
        self.modems: dict[str, MemoryModem] = {}
        self.sent: list[Air] = []
        self.delivered = self.lost = self.collided = self.deaf = 0
        #: called with every transmission as it ends (a test's receiver of everything)
        self.taps: list[Callable[[Air], None]] = []

    def modem(
        self,
        name: str,
        *,
        tx_hz: int,
        rx_hz: int,
        max_payload: int = 255,
        loss: float | None = None,
    ) -> MemoryModem:
        """A modem on this channel that transmits on ``tx_hz`` and listens on ``rx_hz``
        (``loss``: this receiver's own loss rate instead of the channel's)."""
        if name in self.modems:
            raise ValueError(f"there is a modem {name!r} already")
        m = MemoryModem(self, name, tx_hz, rx_hz, max_payload, loss)
        self.modems[name] = m
        return m

    def airtime(self, size: int) -> float:
        return self.radio.airtime(size)

    def inject(self, data: bytes, frequency_hz: int, *, sender: str = "injected") -> Air:
        """Put ``data`` on air now, as a transmitter of no modem here would (no loss applied,
        no waiting: it arrives at once)."""
        now = self.clock()
        air = Air(sender, now - self.airtime(len(data)), now, bytes(data), frequency_hz)
        self.sent.append(air)
        self._arrive(air, lossless=True)
        return air

    def busiest_hour(self, sender: str, low_hz: int, high_hz: int) -> float:
        """The most airtime ``sender`` used in any one-hour window on frequencies in
        ``[low_hz, high_hz]`` (a duty-cycle check independent of the ledger)."""
        airs = sorted(
            (a for a in self.sent if a.sender == sender and low_hz <= a.frequency_hz <= high_hz),
            key=lambda a: a.start,
        )
        best = 0.0
        for i, first in enumerate(airs):
            total = sum(a.end - a.start for a in airs[i:] if a.end <= first.start + HOUR)
            best = max(best, total)
        return best

    # -- the modems' side ------------------------------------------------------------------------

    async def _transmit(self, modem: MemoryModem, payload: bytes) -> None:
        airtime = self.airtime(len(payload))
        start = self.clock()
        air = Air(modem.name, start, start + airtime, payload, modem.tx_hz)
        self.sent.append(air)
        await asyncio.sleep(airtime / self.rate)
        self._arrive(air)

    def _arrive(self, air: Air, *, lossless: bool = False) -> None:
        for tap in self.taps:
            tap(air)
        horizon = air.start - 60.0
        recent = [a for a in reversed(self.sent) if a.end >= horizon]
        for m in self.modems.values():
            if m.name == air.sender or not m.is_open or m.rx_hz != air.frequency_hz:
                continue
            if any(a.sender == m.name and a.overlaps(air) for a in recent):
                self.deaf += 1  # it was on air itself
                continue
            if (
                self.collisions
                and not lossless
                and any(
                    a is not air and a.frequency_hz == air.frequency_hz and a.overlaps(air)
                    for a in recent
                )
            ):
                self.collided += 1
                continue
            loss = self.loss if m.loss is None else m.loss
            if not lossless and self.rng.random() < loss:
                self.lost += 1
                continue
            self.delivered += 1
            m._rx.put_nowait(Received(air.data, rssi=-90.0, snr=7.5))


class MemoryModem:
    """One modem on a :class:`MemoryChannel` (the :class:`~.modem.Modem` protocol).

    Test knobs: ``fail_opens`` (the next opens raise ``OSError``, as a missing port does),
    ``fail_transmits`` (the next transmits raise :class:`ModemError`, as ``AT_BUSY_ERROR``)."""

    def __init__(
        self,
        channel: MemoryChannel,
        name: str,
        tx_hz: int,
        rx_hz: int,
        max_payload: int,
        loss: float | None,
    ) -> None:
        self.channel = channel
        self.name = name
        self.tx_hz = tx_hz
        self.rx_hz = rx_hz
        self.max_payload = max_payload
        self.loss = loss
        self.is_open = False
        self.opens = 0
        self.fail_opens = 0
        self.fail_transmits = 0
        self.transmitted = 0
        self._busy = False
        self._rx: asyncio.Queue[Received | _Eof] = asyncio.Queue()

    async def open(self) -> None:
        if self.fail_opens > 0:
            self.fail_opens -= 1
            raise OSError(f"could not open port of modem {self.name}")
        if not self.is_open:
            self._rx = asyncio.Queue()
            self.is_open = True
            self.opens += 1

    async def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self._rx.put_nowait(_EOF)

    async def transmit(self, payload: bytes) -> None:
        if not self.is_open:
            raise ModemError(f"modem {self.name} is closed")
        if not 1 <= len(payload) <= self.max_payload:
            raise ModemError(f"{len(payload)} bytes: this modem sends 1..{self.max_payload}")
        if self._busy:
            raise ModemError(f"modem {self.name} is busy transmitting")
        if self.fail_transmits > 0:
            self.fail_transmits -= 1
            raise ModemError(f"modem {self.name} refused the packet")
        self._busy = True
        try:
            await self.channel._transmit(self, bytes(payload))
            self.transmitted += 1
        finally:
            self._busy = False

    async def receive(self) -> Received:
        if not self.is_open:
            raise EOFError(f"modem {self.name} is closed")
        item = await self._rx.get()
        if isinstance(item, _Eof):
            self._rx.put_nowait(item)
            raise EOFError(f"modem {self.name} is closed")
        return item
