"""Behaviours: implement one method per OCPP action, and let ``dispatch`` do the rest.

Pick the class of your side and version, override the methods of the actions you support::

    from ocpp_iot.behaviours.v201 import BasicChargeSystem

    class MyChargeSystem(BasicChargeSystem):
        def heartbeat(self, request, ctx):
            ...

``dispatch(handler, call, ctx)`` (or ``await dispatch_async(...)`` for ``async def`` methods)
validates the CALL, runs the method and returns the CALLRESULT or the CALLERROR that OCPP-J
part 4 prescribes. Version modules (``v16``, ``v201``, ``v21``) are imported on first use.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ._base import Behaviour, Context, OcppError, method_for, unimplemented
from ._dispatch import dispatch, dispatch_async

__all__ = [
    "Behaviour",
    "Context",
    "OcppError",
    "dispatch",
    "dispatch_async",
    "method_for",
    "unimplemented",
    "for_version",
    "load_handler",
]

_MODULES = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}


def for_version(version: str) -> ModuleType:
    """The behaviour module of OCPP ``version`` ("1.6", "2.0.1" or "2.1")."""
    try:
        return importlib.import_module(f"{__name__}.{_MODULES[version]}")
    except KeyError:
        raise ValueError(f"unknown OCPP version {version!r}") from None


def load_handler(spec: str) -> type[Behaviour]:
    """Import a behaviour class from ``"package.module:Class"`` (as ``bridge --handler`` takes)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'package.module:Class', got {spec!r}")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Behaviour)):
        raise TypeError(f"{spec} is not a behaviour class")
    return obj


def __getattr__(name: str) -> ModuleType:
    if name in _MODULES.values():
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
