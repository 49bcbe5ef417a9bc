"""The node's OCPP 2.0.1 charger behaviour: :class:`~.charger_v2.V2Actions` on the generated
2.0.1 ``Charger`` (a module of its own, so that a 2.0.1 station loads no other version's models)."""

from __future__ import annotations

from ..behaviours import v201
from .charger_v2 import V2Actions

__all__ = ["Charger201"]


class Charger201(V2Actions, v201.Charger):
    """The node's 2.0.1 charger behaviour; subclass it to add or change actions."""
