"""The bridge's built-in reference charge system.

It accepts every boot notification, authorizes id tokens against an allow-list, and records
boots, status changes, authorizations, transaction events and meter values in SQLite, for
OCPP 1.6 (:class:`ReferenceChargeSystem16`), 2.0.1 (:class:`ReferenceChargeSystem201`) and 2.1
(:class:`ReferenceChargeSystem21`). It is a starting point and a test double, not a CSMS.

The classes are ordinary behaviours: each method takes the typed request of its version
(``ocpp_iot.model.v201.TransactionEventRequest``, ...) and returns the typed response.
:func:`build_reference` makes one of each for the versions asked, sharing one :class:`Recorder`.

Every received event is recorded with a plain INSERT (no de-duplication of its own), so the
``ref_events`` table shows exactly how often the handler ran for each CALL. Inside the bridge
its writes are committed together with the bridge's answer (:func:`.store.defer_sql`), which is
what makes "handled exactly once" hold across crashes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ...behaviours import Behaviour
from .._clock import utc_now  # re-exported: tests and stations use it
from ._charge_systems import (
    ReferenceChargeSystem16,
    ReferenceChargeSystem21,
    ReferenceChargeSystem201,
)
from ._recorder import MeterSample, Recorder, TransactionUpdate

__all__ = [
    "MeterSample",
    "Recorder",
    "ReferenceChargeSystem16",
    "ReferenceChargeSystem201",
    "ReferenceChargeSystem21",
    "TransactionUpdate",
    "build_reference",
    "utc_now",
]

log = logging.getLogger("ocpp_iot.bridge.reference")

#: The class of each version, as :func:`build_reference` makes them.
REFERENCE_CLASSES: dict[str, Callable[[Recorder, frozenset[str] | None, int], Behaviour]] = {
    "1.6": ReferenceChargeSystem16,
    "2.0.1": ReferenceChargeSystem201,
    "2.1": ReferenceChargeSystem21,
}


def build_reference(
    db_path: str,
    allow: Iterable[str] | None = None,
    *,
    heartbeat_interval: int = 300,
    versions: Iterable[str] = ("1.6", "2.0.1", "2.1"),
) -> dict[str, Behaviour]:
    """The reference charge system for each of ``versions``, recording into ``db_path``.

    ``allow`` lists the id tokens to accept (None: every token, with a warning in the log);
    ``heartbeat_interval`` is the interval the BootNotification answer gives.
    """
    recorder = Recorder(db_path)
    allow_set = None if allow is None else frozenset(allow)
    if allow_set is None:
        log.warning("no id token allow-list configured: every id token is accepted")
    return {v: REFERENCE_CLASSES[v](recorder, allow_set, heartbeat_interval) for v in versions}
