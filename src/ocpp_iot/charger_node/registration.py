"""Registration and liveness of a station, sans-IO: the BootNotification cycle, the heartbeat's
timing and the clock offset. The station machine (:mod:`.station`) owns one
:class:`Registration` and asks it what to send when the CALL slot is free.

Rules (OCPP 2.0.1 part 2 unless said; 1.6 section 4.2 / 4.6 has the same ones):

- B01-B03: nothing but BootNotification until it is Accepted; Pending and Rejected are retried
  after the ``interval`` of the answer (30 s if it gives none); a BootNotification that got no
  answer, or a CALLERROR, is retried with a growing back-off (10, 20, 40 ... at most 300 s); one
  lost with the link goes again as soon as the link is back.
- G02 (1.6 4.6): a Heartbeat every ``HeartbeatInterval`` seconds, counted from the last CALL
  sent: any CALL tells the back end the station is alive.
- B01 / G02: ``currentTime`` in the answers sets the offset between the node's clock and the
  back end's; timestamps in messages are on the back end's clock.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from .messages import Messages

__all__ = [
    "SCHEDULED_RESET", "BootInfo", "Registration", "RegistrationState", "boot_reason_after",
    "parse_time",
]  # fmt: skip

log = logging.getLogger(__name__)

RegistrationState = Literal["none", "pending", "accepted", "rejected"]

#: seconds between BootNotification attempts that got no answer: 10, 20, 40 ... at most 300
BOOT_BACKOFF = (10.0, 300.0)
#: the retry interval when a Pending or Rejected answer gives none
DEFAULT_RETRY = 30
#: the reset a station carries out once its transactions have ended (2.x Reset OnIdle answered
#: Scheduled, B12.FR.01)
SCHEDULED_RESET = "Scheduled"


def boot_reason_after(reset: str) -> str:
    """The BootNotification's reason after a Reset (2.x BootReasonEnumType): ScheduledReset
    after one that waited for the transactions to end, else RemoteReset (1.6 has no reason)."""
    return "ScheduledReset" if reset == SCHEDULED_RESET else "RemoteReset"


class BootInfo:
    """What BootNotification says about the station."""

    def __init__(
        self,
        model: str = "ocpp-iot node",
        vendor: str = "ocpp-iot",
        serial: str | None = None,
        firmware: str | None = None,
    ) -> None:
        self.model, self.vendor, self.serial, self.firmware = model, vendor, serial, firmware


def parse_time(text: object) -> float | None:
    """Epoch seconds of an OCPP timestamp, ``None`` if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Registration:
    """The BootNotification cycle, the heartbeat's timing and the clock offset of one station."""

    def __init__(self, station_id: str, messages: Messages, info: BootInfo) -> None:
        self.station_id = station_id
        self.messages = messages
        self.info = info
        self.state: RegistrationState = "none"
        self.reason = "PowerUp"  #: the boot reason of the next BootNotification
        self.clock_offset = 0.0  #: the back end's clock minus ours (seconds)
        self.due = 0.0  #: when the next BootNotification may go
        self.failures = 0  #: BootNotifications in a row without an answer
        self.last_sent = 0.0  #: when our last CALL went out (G02)

    @property
    def accepted(self) -> bool:
        return self.state == "accepted"

    def boot(self, reason: str | None = None) -> tuple[str, dict[str, Any]]:
        """The BootNotification to send (``reason`` overrides the start-up reason)."""
        i = self.info
        return self.messages.boot(reason or self.reason, i.model, i.vendor, i.serial, i.firmware)

    def boot_sent(self, now: float, timeout: float) -> None:
        """A BootNotification went out: the next waits for its answer or its timeout."""
        self.due = now + timeout + 1

    def boot_lost(self) -> None:
        """The link went down under it: not the back end's fault, boot again when it is back."""
        self.due = 0.0

    def answered(self, payload: dict[str, Any] | None, now: float) -> RegistrationState | None:
        """A BootNotification was answered (``payload``), or failed (``None``: a CALLERROR or
        no answer). Returns the new state, or ``None`` after a failure."""
        if payload is None:
            self.failures += 1
            low, high = BOOT_BACKOFF
            self.due = now + min(high, low * 2 ** (self.failures - 1))
            return None
        self.failures = 0
        self.set_clock(payload.get("currentTime"), now)
        status = payload.get("status")
        interval = payload.get("interval")
        if status == "Accepted":
            self.state = "accepted"
            self.last_sent = now
            log.info("%s: registered (%s)", self.station_id, self.messages.version)
            return self.state
        self.state = "pending" if status == "Pending" else "rejected"
        wait = interval if isinstance(interval, int) and interval > 0 else DEFAULT_RETRY
        self.due = now + wait
        log.info("%s: BootNotification %s, again in %d s", self.station_id, status, wait)
        return self.state

    def heartbeat_due(self, interval: float) -> float:
        return self.last_sent + interval

    def set_clock(self, text: object, now: float) -> None:
        t = parse_time(text)
        if t is not None:
            self.clock_offset = t - now

    def csms_time(self, now: float) -> float:
        return now + self.clock_offset
