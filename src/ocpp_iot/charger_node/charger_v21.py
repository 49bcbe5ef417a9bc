"""The node's OCPP 2.1 charger behaviour: :class:`~.charger_v2.V2Actions` on the generated
2.1 ``Charger`` (a module of its own, so that a 2.1 station loads no other version's models)."""

from __future__ import annotations

from ..behaviours import v21
from .charger_v2 import V2Actions

__all__ = ["Charger21"]


class Charger21(V2Actions, v21.Charger):
    """The node's 2.1 charger behaviour; subclass it to add or change actions."""
