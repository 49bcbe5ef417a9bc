"""The charger behaviour a station machine hosts by default, per OCPP version."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..behaviours import Behaviour
    from .station import StationMachine

__all__ = ["default_charger"]


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
