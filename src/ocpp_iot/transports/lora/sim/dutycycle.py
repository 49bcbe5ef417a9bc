"""The simulator's own duty-cycle check (ETSI EN 300 220-2 sub-bands, one rolling hour).

Independent of the link layer's :class:`~..airtime.DutyCycleLedger` (the code under test): it
only uses the sub-band table. For every transmission the monitor computes, exactly, how long
the radio was on air in each sub-band its channel touches during the hour that ends as that
transmission ends (transmissions partly inside that hour count partly). The on-air time of a
sliding one-hour window can only grow while a transmission is on, so its maximum over all
windows is reached at the end of some transmission: checking at every end finds every excess.

A channel must lie within duty-cycled sub-bands (centre +- bandwidth/2); one that straddles two
adjacent ones (an E32 at 868.0 MHz) counts against both; one reaching outside them (into the
gaps reserved for alarms, or outside 863-870 MHz) is a violation of its own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..airtime import EU868_BANDS, HOUR, SubBand

__all__ = ["DutyCycleMonitor", "Violation", "DutyCycleExceeded"]


@dataclass(frozen=True, slots=True)
class Violation:
    radio: str
    kind: str  #: "budget" (more than the sub-band allows in one hour) or "out_of_band"
    band: str  #: the sub-band's name ("" for out_of_band)
    at: float  #: the end of the transmission that found it (simulated seconds)
    used: float  #: seconds on air in that hour (the transmission's airtime for out_of_band)
    budget: float

    def __str__(self) -> str:
        if self.kind == "out_of_band":
            return f"{self.radio}: transmitted outside the duty-cycled sub-bands at t={self.at:.1f}"
        return (
            f"{self.radio}: {self.used:.2f} s on air in {self.band} within one hour "
            f"(budget {self.budget:.1f} s) at t={self.at:.1f}"
        )


class DutyCycleExceeded(AssertionError):
    """Some radio broke the duty cycle (the violations are in ``args[0]``)."""


class DutyCycleMonitor:
    """Per radio and sub-band: what was on air, and every violation found."""

    def __init__(self, bands: tuple[SubBand, ...] = EU868_BANDS, window: float = HOUR) -> None:
        self.bands = bands
        self.window = window
        self._sent: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        self.violations: list[Violation] = []

    def touched(self, frequency_hz: int, bandwidth_hz: int) -> tuple[list[SubBand], bool]:
        """The sub-bands the channel overlaps, and whether they cover all of it."""
        low, high = frequency_hz - bandwidth_hz / 2, frequency_hz + bandwidth_hz / 2
        hit = [b for b in self.bands if b.low_hz < high and low < b.high_hz]
        covered = low
        for b in sorted(hit, key=lambda b: b.low_hz):
            if b.low_hz > covered:
                break
            covered = max(covered, b.high_hz)
        return hit, covered >= high

    def used(self, radio: str, band: str, at: float) -> float:
        """Seconds ``radio`` was on air in ``band`` during the hour ending at ``at``."""
        total = 0.0
        for s, e in self._sent.get((radio, band), ()):
            total += max(0.0, min(e, at) - max(s, at - self.window))
        return total

    def record(
        self, radio: str, frequency_hz: int, bandwidth_hz: int, start: float, end: float
    ) -> list[Violation]:
        """Account for one transmission; the violations it reveals (also kept)."""
        found: list[Violation] = []
        bands, covered = self.touched(frequency_hz, bandwidth_hz)
        if not covered:
            found.append(Violation(radio, "out_of_band", "", end, end - start, 0.0))
        for band in bands:
            sent = self._sent.setdefault((radio, band.name), deque())
            sent.append((start, end))
            while sent and sent[0][1] <= end - self.window:
                sent.popleft()
            used = self.used(radio, band.name, end)
            if used > band.budget + 1e-6:
                found.append(Violation(radio, "budget", band.name, end, used, band.budget))
        self.violations.extend(found)
        return found

    def check(self) -> None:
        """``DutyCycleExceeded`` if any violation was found."""
        if self.violations:
            raise DutyCycleExceeded(self.violations, "; ".join(str(v) for v in self.violations[:5]))
