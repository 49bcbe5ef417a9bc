"""The charger behaviour a station machine hosts by default, per OCPP version."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..behaviours import Behaviour
    from .station import StationMachine

__all__ = ["PER_CONNECTOR", "default_charger", "send_triggered"]

#: triggered messages about a connector or an EVSE: for the others a connector or EVSE in the
#: request is not relevant and is ignored, the message is sent (2.0.1 F06.FR.02; 1.6 5.17)
PER_CONNECTOR = frozenset({"StatusNotification", "MeterValues", "TransactionEvent"})


def default_charger(machine: StationMachine) -> Behaviour:
    """The node's own charger behaviour for ``machine.version``."""
    if machine.version == "1.6":
        from .charger_v16 import Charger16

        return Charger16(machine)
    if machine.version == "2.1":
        from .charger_v21 import Charger21

        return Charger21(machine)
    from .charger_v201 import Charger201

    return Charger201(machine)


#: triggered messages that report an idle process with nothing of their own to say
_IDLE_STATUS = (
    "FirmwareStatusNotification",
    "LogStatusNotification",
    "DiagnosticsStatusNotification",
)


def send_triggered(machine: StationMachine, what: str, numbers: list[int]) -> bool:
    """Send what a TriggerMessage asked for, where every version sends it alike (boot,
    heartbeat, connector statuses, an idle firmware/log/diagnostics status); ``False`` for a
    message the version's behaviour builds itself (MeterValues, TransactionEvent)."""
    m, tag = machine, ("trigger", what)
    if what == "BootNotification":
        m.call(*m.reg.boot("Triggered"), "boot")
    elif what == "Heartbeat":
        m.call(*m.messages.heartbeat(), tag)
    elif what == "StatusNotification":
        t = m.csms_time(m.now)
        for n in numbers:
            m.call(*m.messages.status(m.tx.view(n), t), tag)
    elif what in _IDLE_STATUS:
        m.call(what, {"status": "Idle"}, tag)
    else:
        return False
    return True
