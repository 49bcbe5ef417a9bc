"""The behaviour base class, the handler context and ``OcppError``.

A behaviour is the Python form of the seed library's Elixir behaviours: a class with one method
per OCPP action that its side of the connection receives. The per-version classes in
:mod:`.v16`, :mod:`.v201` and :mod:`.v21` are generated from the model's action registry.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..rpc import error_code_for

__all__ = ["Behaviour", "Context", "OcppError", "method_for", "unimplemented"]

Side = Literal["charger", "charge_system"]


class OcppError(Exception):
    """Raise in a handler to answer the CALL with a CALLERROR of ``code``.

    ``code`` is an OCPP-J error code in either spelling (``FormatViolation`` or 1.6's
    ``FormationViolation``); it is sent as the station's OCPP version spells it.
    """

    def __init__(
        self, code: str, description: str = "", details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.details = dict(details or {})

    def code_for(self, version: str) -> str:
        # Accept the 1.6 spellings from users of any version, then spell for the peer.
        normalised = {
            "FormationViolation": "FormatViolation",
            "OccurenceConstraintViolation": "OccurrenceConstraintViolation",
        }.get(self.code, self.code)
        return error_code_for(normalised, version)


@dataclass
class Context:
    """What a handler knows about the CALL it is answering.

    ``state`` is the per-station dictionary that persists between calls (the adapter owns its
    storage). ``send_call`` is set by the adapter to let handler code call the other side: it
    takes an action and a request (a model or a JSON-level dict) and returns the answer, or an
    awaitable of it, as the adapter defines. ``warnings`` collects what lenient parsing let
    through.
    """

    station_id: str
    message_id: str
    version: str
    state: dict[str, Any] = field(default_factory=dict)
    send_call: Callable[[str, Any], Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def call(self, action: str, request: Any) -> Any:
        """Send a CALL to the other side through the adapter (see ``send_call``)."""
        if self.send_call is None:
            raise RuntimeError("this context has no way to send CALLs (send_call is not set)")
        return self.send_call(action, request)


def unimplemented(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a generated default method: dispatch answers NotSupported without calling it.

    OCPP-J part 4 section 4.3: the action is known to the version but not handled here.
    """
    func.__ocpp_unimplemented__ = True  # type: ignore[attr-defined]
    return func


class Behaviour(ABC):  # noqa: B024 - abstract only in the Basic* subsets
    """Base of every generated behaviour class.

    Class attributes set by the generated subclasses: ``version`` ("1.6", "2.0.1", "2.1"),
    ``side`` (which side of the connection the class plays) and ``actions`` (the OCPP actions
    it receives). Set ``lenient = True`` on a subclass to accept unknown enum values and
    over-long strings from sloppy peers, reported in ``Context.warnings``.
    """

    version: ClassVar[str]
    side: ClassVar[Side]
    actions: ClassVar[frozenset[str]] = frozenset()
    lenient: ClassVar[bool] = False

    def implemented_actions(self) -> frozenset[str]:
        """The actions this handler handles (the others of ``actions`` answer NotSupported)."""
        return frozenset(
            a
            for a in self.actions
            if not getattr(method_for(self, a), "__ocpp_unimplemented__", False)
        )


def method_for(handler: Behaviour, action: str) -> Callable[..., Any] | None:
    """The bound method of ``handler`` that answers ``action``, or ``None``.

    Method names come from the action registry (``Action.method``), not from a
    camel-to-snake rule: ``Get15118EVCertificate`` is ``get_15118_ev_certificate``.
    """
    from ..model import get_version

    spec = get_version(handler.version).ACTIONS.get(action)
    return None if spec is None else getattr(handler, spec.method, None)
