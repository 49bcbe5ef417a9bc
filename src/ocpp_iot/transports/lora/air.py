"""One transmission on a simulated radio channel: the record that the in-memory channel
(:mod:`.memory_radio`) and the virtual-time channel (:mod:`.virtual_channel`) both keep of
what went on air, for collisions and for duty-cycle checks."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Air"]


@dataclass(frozen=True, slots=True)
class Air:
    """Who sent what, on which frequency, and when it was on air (``start`` to ``end``)."""

    sender: str
    start: float
    end: float
    data: bytes
    frequency_hz: int
    #: the link layer said it is a repeat of an earlier frame (virtual channel only)
    retransmission: bool = False

    def overlaps(self, other: Air) -> bool:
        """Whether both were on air at some moment (touching ends do not overlap)."""
        return self.start < other.end and other.start < self.end
