"""Times in the state: the bridge's clock out as ISO 8601 text, the station's dateTimes in."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from ._fields import _str

_ISO_CACHE: dict[int, str] = {}  # whole second -> text: the same few seconds recur in a state


def _iso(t: float | None) -> str | None:
    """``t`` (seconds since the epoch) as ``YYYY-MM-DDTHH:MM:SSZ``; None when not representable."""
    if t is None:
        return None
    try:
        second = math.floor(t)
        text = _ISO_CACHE.get(second)
        if text is None:
            if len(_ISO_CACHE) >= 4096:
                _ISO_CACHE.clear()
            text = _ISO_CACHE[second] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return text
    except (OverflowError, OSError, ValueError, TypeError):
        return None


def _timestamp(value: Any) -> float | None:
    """Seconds since the epoch from an OCPP dateTime (RFC 3339); None when unreadable."""
    text = _str(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:  # OCPP requires UTC; read a missing offset as UTC
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None
