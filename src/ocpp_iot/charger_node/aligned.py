"""When clock-aligned meter values are due (OCPP 2.0.1 J01, ``AlignedDataCtrlr.Interval``; 1.6
``ClockAlignedDataInterval``): the day is cut into intervals of that many seconds from midnight
UTC on the back end's clock (900 s: :00, :15, :30, :45; one that does not divide the day leaves
a shorter last interval before the next midnight), and each boundary is sampled, so readings of
many stations line up for the grid and for billing.

Sans-IO: time is passed in. ``csms_offset`` is the back end's clock minus the station's
(``StationMachine.clock_offset``, learnt from ``currentTime``): the boundaries are on that clock,
the wake-up is returned on the station's. A boundary is sampled once; if the station was busy or
asleep past several, only the latest is taken (a late reading is still that boundary's best). A
station that starts, whose interval changes or whose clock is set (a new offset, as at boot:
not a boundary the meter really crossed) waits for the next boundary. Interval 0: off.
"""

from __future__ import annotations

import math

__all__ = ["AlignedSchedule"]


DAY = 86400


class AlignedSchedule:
    """Which boundary was sampled last, and when the next one falls."""

    __slots__ = ("_interval", "_offset", "_slot")

    #: a change of the clock offset by more than this sets the clock (re-arms, fires nothing)
    CLOCK_SET = 1.0

    def __init__(self) -> None:
        self._interval = 0
        self._offset = 0.0
        self._slot = (0, 0)  # (day since the epoch, interval of that day), back end's clock

    def due(self, now: float, csms_offset: float, interval: int) -> bool:
        """Whether a sample is due at ``now`` (station clock); counts it as taken."""
        if interval <= 0:
            self._interval = 0
            return False
        slot = _slot(now + csms_offset, interval)
        if interval != self._interval or abs(csms_offset - self._offset) > self.CLOCK_SET:
            self._interval, self._offset, self._slot = interval, csms_offset, slot
            return False
        if slot <= self._slot:
            return False
        self._slot = slot
        return True

    def next_at(self, csms_offset: float, interval: int) -> float | None:
        """The station-clock time of the next boundary (``None``: off, or not set up by a
        :meth:`due` with this interval yet)."""
        if interval <= 0 or interval != self._interval:
            return None
        day, k = self._slot
        boundary = min((k + 1) * interval, DAY)  # the day's last interval ends at midnight
        return day * DAY + boundary - csms_offset


def _slot(t: float, interval: int) -> tuple[int, int]:
    day = math.floor(t / DAY)
    return day, math.floor((t - day * DAY) / interval)
