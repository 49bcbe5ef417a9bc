"""The log of one station: each message begins with the station's id, as the station machine's
own lines do, so that ``charger-node simulate`` (hundreds of stations in one process) says whose
transaction ended or whose outbox is full."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

__all__ = ["StationLog"]


class StationLog(logging.LoggerAdapter[logging.Logger]):
    """``logger`` with ``station``'s id before each message (none for an empty id)."""

    def __init__(self, logger: logging.Logger, station: str) -> None:
        super().__init__(logger, {"station": station})
        self.station = station

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return (f"{self.station}: {msg}" if self.station else msg), kwargs
