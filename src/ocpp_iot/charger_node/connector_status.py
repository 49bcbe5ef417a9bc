"""Each connector's status as the back end knows it, sans-IO: what StatusNotification to send
when. The station machine (:mod:`.station`) calls :meth:`StatusReporter.report` after every
change, and when it (re)connects.

Rules (OCPP 2.0.1 part 2 G01, B01, B04; 1.6 4.2, 4.9):

- after BootNotification is Accepted, every connector's status;
- then each change, once (the status each version reports: :meth:`.messages.Messages.
  status_value`);
- B04: after an offline period longer than ``OfflineThreshold`` every connector's status again,
  after a shorter one only the ones that changed meanwhile;
- a StatusNotification lost with the link, or not answered in time, does not count as known:
  it is sent again (at link-up, or at the next report).

The device model's AvailabilityState follows the reported status (2.x GetVariables reads it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .device_model import DeviceModel
from .messages import Messages
from .transactions import Transactions

__all__ = ["StatusReporter", "v2_state"]

#: sends a CALL that is not queued durably (the station machine's ``call``)
Send = Callable[[str, dict[str, Any], Any], bool]


class StatusReporter:
    """The StatusNotifications of one station's connectors."""

    def __init__(
        self, tx: Transactions, model: DeviceModel, messages: Messages, send: Send
    ) -> None:
        self.tx = tx
        self.model = model
        self.messages = messages
        self.send = send

    def report(self, t: float, *, everything: bool = False) -> None:
        """Send the statuses that changed since last reported (all with ``everything``);
        ``t``: now on the back end's clock."""
        for s in self.tx.connectors_in_order():
            view = self.tx.view(s.info.number)
            value = self.messages.status_value(view)
            if everything or value != s.reported:
                c = s.info
                self.model.set_status(c.evse_id, c.connector_id, v2_state(value))
                if self.send(*self.messages.status(view, t), ("status", c.number, value)):
                    s.reported = value  # sent or queued; else it goes at the next report

    def abandoned(self, tag: tuple[Any, ...]) -> None:
        """The StatusNotification of ``tag`` was lost with the link, or not answered."""
        _, number, value = tag
        state = self.tx.connectors.get(number)
        if state is not None and state.reported == value:
            state.reported = None

    def values(self) -> dict[str, str]:
        """Each connector's status now, by connector number (for ``charger-node status``)."""
        return {
            str(s.info.number): self.messages.status_value(self.tx.view(s.info.number))
            for s in self.tx.connectors_in_order()
        }


def v2_state(value: str) -> str:
    """The 2.x AvailabilityState for a status of either version (1.6's Preparing, Charging,
    Suspended* and Finishing are all Occupied)."""
    if value in ("Available", "Occupied", "Reserved", "Unavailable", "Faulted"):
        return value
    return "Occupied"
