"""Time on air of a LoRa packet, and the EU868 duty-cycle ledger that spends it.

Time on air follows Semtech's formula (SX1276/77/78/79 datasheet section 4.1.1.6, LoRa Modem
Designer's Guide AN1200.13):

- symbol time ``Ts = 2**SF / BW``;
- preamble ``(n_preamble + 4.25) * Ts``;
- payload ``8 + max(ceil((8*PL - 4*SF + 28 + 16*CRC - 20*IH) / (4*(SF - 2*DE))) * (CR + 4), 0)``
  symbols, with ``IH`` 1 for an implicit header, ``CR`` 1..4 for coding rates 4/5..4/8 and
  ``DE`` the low-data-rate optimisation, which the datasheet requires when ``Ts`` is 16 ms or
  more (SF11 and SF12 at 125 kHz): that is what ``low_data_rate=None`` chooses.

The duty-cycle limits are those of ETSI EN 300 220-2 (V3.2.1) for the 863-870 MHz sub-bands a
LoRa radio uses without listen-before-talk (the same bands LoRaWAN RP002's EU863-870 plan points
to): the share of one hour a transmitter may be on, per sub-band. :class:`DutyCycleLedger` keeps
what was sent per sub-band and answers whether, and from when, a transmission fits. No clock is
read here: ``now`` is passed in (seconds, any monotonic origin).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EU868_BANDS",
    "HOUR",
    "SubBand",
    "DutyCycleLedger",
    "band_for",
    "symbol_time",
    "time_on_air",
]

#: the duty-cycle observation period (ETSI EN 300 220: one hour)
HOUR = 3600.0


def symbol_time(sf: int, bandwidth_hz: int = 125000) -> float:
    """Seconds per LoRa symbol: ``2**SF / BW``."""
    return float(2**sf) / bandwidth_hz


def time_on_air(
    payload_bytes: int,
    sf: int,
    bandwidth_hz: int = 125000,
    coding_rate: int = 1,
    preamble: int = 8,
    crc: bool = True,
    explicit_header: bool = True,
    low_data_rate: bool | None = None,
) -> float:
    """Seconds a LoRa packet of ``payload_bytes`` (the PHY payload: what the modem is given)
    occupies the channel, by Semtech's formula (module docstring).

    ``coding_rate`` is 1..4 for 4/5..4/8; ``low_data_rate`` ``None`` turns the optimisation on
    exactly when the symbol time is 16 ms or more, as the datasheet requires. Raises
    ``ValueError`` for parameters no SX127x/SX126x LoRa modem accepts."""
    if not 7 <= sf <= 12:
        # SF5/SF6 exist on some chips but with other header/preamble rules: not modelled here
        raise ValueError(f"spreading factor {sf} not in 7..12")
    if not 1 <= coding_rate <= 4:
        raise ValueError(f"coding rate {coding_rate} not in 1..4 (4/5..4/8)")
    if bandwidth_hz <= 0 or preamble < 0:
        raise ValueError("bandwidth must be positive and the preamble not negative")
    if not 0 <= payload_bytes <= 255:
        raise ValueError(f"a LoRa packet carries 0..255 bytes, not {payload_bytes}")
    ts = symbol_time(sf, bandwidth_hz)
    de = (ts >= 0.016) if low_data_rate is None else low_data_rate
    ih = 0 if explicit_header else 1
    numerator = 8 * payload_bytes - 4 * sf + 28 + 16 * int(crc) - 20 * ih
    denominator = 4 * (sf - 2 * int(de))
    payload_symbols = 8 + max(math.ceil(numerator / denominator) * (coding_rate + 4), 0)
    return (preamble + 4.25 + payload_symbols) * ts


# -- duty cycle ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubBand:
    """One sub-band with its duty-cycle limit (a fraction of the observation period)."""

    name: str
    low_hz: int
    high_hz: int
    duty_cycle: float

    @property
    def budget(self) -> float:
        """Seconds of transmission allowed per hour."""
        return self.duty_cycle * HOUR


#: EN 300 220-2 V3.2.1 sub-bands for non-specific short-range devices in 863-870 MHz that a LoRa
#: radio can use with a duty-cycle limit (no LBT/AFA); the gaps between them (868.6-868.7,
#: 869.2-869.4, 869.65-869.7 MHz) are for alarms and other specific uses and are refused.
#: 869.7-870.0 MHz allows 1 % at 25 mW (no limit only at 5 mW or less: not assumed here).
EU868_BANDS: tuple[SubBand, ...] = (
    SubBand("863.0-865.0", 863_000_000, 865_000_000, 0.001),
    SubBand("865.0-868.0", 865_000_000, 868_000_000, 0.01),
    SubBand("868.0-868.6", 868_000_000, 868_600_000, 0.01),
    SubBand("868.7-869.2", 868_700_000, 869_200_000, 0.001),
    SubBand("869.4-869.65", 869_400_000, 869_650_000, 0.10),
    SubBand("869.7-870.0", 869_700_000, 870_000_000, 0.01),
)


def band_for(
    frequency_hz: int, bandwidth_hz: int = 125000, bands: tuple[SubBand, ...] = EU868_BANDS
) -> SubBand:
    """The sub-band a channel lies in: its whole occupied width, ``frequency +- bandwidth/2``,
    must be inside one sub-band (a 125 kHz channel at 868.1 MHz spans 868.0375-868.1625 MHz).
    ``ValueError`` if it lies in none (or across two)."""
    low = frequency_hz - bandwidth_hz / 2
    high = frequency_hz + bandwidth_hz / 2
    for band in bands:
        if band.low_hz <= low and high <= band.high_hz:
            return band
    raise ValueError(
        f"a {bandwidth_hz / 1000:g} kHz channel at {frequency_hz / 1e6:.4f} MHz is not inside "
        "one duty-cycled EU868 sub-band"
    )


class DutyCycleLedger:
    """What one transmitter sent per sub-band in the last hour, and whether more fits.

    Conservative rule (it never lets any one-hour window exceed the budget): a transmission
    ``[start, start + airtime)`` is allowed when, over the hour that ends as it ends, the past
    transmissions that end inside that hour, counted whole, plus this one, stay within the
    sub-band's budget. Counting a transmission whole until it has wholly left the window can
    only overstate the use, never understate it.
    """

    __slots__ = ("bands", "bandwidth_hz", "_sent", "_total", "_band_of")

    def __init__(
        self, bands: tuple[SubBand, ...] = EU868_BANDS, bandwidth_hz: int = 125000
    ) -> None:
        self.bands = bands
        self.bandwidth_hz = bandwidth_hz
        #: sub-band name -> (start, airtime) of each transmission, oldest first
        self._sent: dict[str, deque[tuple[float, float]]] = {}
        #: sub-band name -> the sum of the airtimes in ``_sent``
        self._total: dict[str, float] = {}
        self._band_of: dict[int, SubBand] = {}

    def band(self, frequency_hz: int) -> SubBand:
        band = self._band_of.get(frequency_hz)
        if band is None:
            band = self._band_of[frequency_hz] = band_for(
                frequency_hz, self.bandwidth_hz, self.bands
            )
        return band

    def _entries(self, band: SubBand, now: float) -> deque[tuple[float, float]]:
        sent = self._sent.setdefault(band.name, deque())
        while sent and sent[0][0] + sent[0][1] <= now - HOUR:  # wholly out of any window
            self._total[band.name] -= sent.popleft()[1]
        if not sent:
            self._total[band.name] = 0.0  # (no rounding drift left behind)
        return sent

    def used(self, frequency_hz: int, now: float) -> float:
        """Seconds counted against the sub-band for the hour ending at ``now``."""
        band = self.band(frequency_hz)
        self._entries(band, now)
        return self._total[band.name]

    def remaining(self, frequency_hz: int, now: float) -> float:
        band = self.band(frequency_hz)
        return band.budget - self.used(frequency_hz, now)

    def can_send(
        self, frequency_hz: int, airtime: float, now: float, *, reserve: float = 0.0
    ) -> bool:
        """Whether a transmission of ``airtime`` seconds may start at ``now``."""
        return self.wait_until(frequency_hz, airtime, now, reserve=reserve) <= now

    def wait_until(
        self, frequency_hz: int, airtime: float, now: float, *, reserve: float = 0.0
    ) -> float:
        """The earliest time, ``now`` or later, at which ``airtime`` fits the budget, leaving
        ``reserve`` seconds of it unused (for other traffic of the caller's).
        ``ValueError`` if it never can (longer than the whole budget)."""
        band = self.band(frequency_hz)
        budget = band.budget - reserve
        if airtime > budget:
            raise ValueError(
                f"{airtime:.3f} s exceeds the {band.budget:.1f} s/h budget of {band.name}"
            )
        sent = self._entries(band, now)
        used = self._total[band.name]
        end = now + airtime
        for s, a in sent:  # oldest first: each leaves the window in turn
            # (a nanosecond of slack: a transmission that ends as the hour starts is out)
            if s + a <= end - HOUR + 1e-9:
                used -= a  # already out of the hour that ends as this one would
                continue
            if used + airtime <= budget + 1e-9:
                break
            used -= a
            # it leaves the hour ending at t + airtime once t + airtime - HOUR >= s + a
            end = max(end, s + a + HOUR)
        return end - airtime

    def record(self, frequency_hz: int, airtime: float, now: float) -> None:
        """Account for a transmission of ``airtime`` seconds that starts at ``now``."""
        band = self.band(frequency_hz)
        self._entries(band, now).append((now, airtime))
        self._total[band.name] += airtime

    # -- persistence (a restart must not reset the hour) ----------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {name: [[s, a] for s, a in sent] for name, sent in self._sent.items() if sent}

    @classmethod
    def from_json(
        cls,
        value: dict[str, Any] | None,
        bands: tuple[SubBand, ...] = EU868_BANDS,
        bandwidth_hz: int = 125000,
    ) -> DutyCycleLedger:
        ledger = cls(bands, bandwidth_hz)
        for name, sent in (value or {}).items():
            ledger._sent[name] = deque((float(s), float(a)) for s, a in sent)
            ledger._total[name] = sum(a for _, a in ledger._sent[name])
        return ledger
