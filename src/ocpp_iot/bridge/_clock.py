"""Wall-clock timestamps as OCPP writes them (for adapters: the core reads no clock)."""

from __future__ import annotations

import time

__all__ = ["utc_now"]


def utc_now() -> str:
    """The current UTC time as OCPP writes it: RFC 3339, milliseconds, ``Z``.

    For example ``2026-06-05T12:53:51.074Z`` (what ``datetime.isoformat`` with milliseconds
    gives, in about half the time: it runs for every recorded event).
    """
    seconds, ns = divmod(time.time_ns(), 1_000_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{ns // 1_000_000:03d}Z"
