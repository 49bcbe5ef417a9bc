"""The device model's value types and checks, and its persistence (a JSON file, atomic writes).

The value formats are OCPP 2.0.1 part 2's (DataEnumType): ``integer`` and ``decimal`` as
decimal text, ``boolean`` as ``true``/``false``, ``dateTime`` as RFC 3339, ``OptionList`` one of
``valuesList``, ``MemberList`` / ``SequenceList`` comma-separated members of ``valuesList``. For a
string or list variable ``maxLimit`` is the longest value allowed (VariableCharacteristicsType).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .device_model_catalog import VarSpec

__all__ = [
    "AvailabilityChange",
    "Change",
    "DeviceModelError",
    "InvalidValue",
    "JsonFileStore",
    "Listener",
    "check_value",
]

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class DeviceModelError(ValueError):
    """A request the station answers with a CALLERROR ``code`` (e.g. too many items, B06)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


@dataclass(frozen=True, slots=True)
class Change:
    """One value that changed: ``path`` as in :meth:`DeviceModel.value`, with the new value."""

    path: str
    attribute: str
    value: str
    spec: VarSpec


@dataclass(frozen=True, slots=True)
class AvailabilityChange:
    """What :meth:`DeviceModel.set_availability` did, for the station machine.

    ``status`` is the ChangeAvailability answer (``Accepted``, ``Scheduled``, ``Rejected``).
    ``affected`` are the (evse, connector) pairs whose operability flipped: send their
    StatusNotification now, except those in ``scheduled`` (a transaction runs there: 2.0.1
    G03/G04 and 1.6 5.2 let it finish; report them Unavailable when it ends).
    """

    status: str
    affected: tuple[tuple[int, int], ...] = ()
    scheduled: tuple[tuple[int, int], ...] = ()


Listener = Callable[[Change], None]


class InvalidValue(ValueError):
    """A value the variable cannot take; ``reason`` is a StatusInfoType reasonCode (<= 20)."""

    def __init__(self, reason: str, info: str) -> None:
        super().__init__(info)
        self.reason = reason
        self.info = info


def check_value(spec: VarSpec, value: str, *, max_size: int, lenient: bool = False) -> str:
    """Return ``value`` in its stored form, or raise :class:`InvalidValue`.

    ``max_size`` is DeviceDataCtrlr.ConfigurationValueSize. ``lenient`` (the 1.6 view) accepts
    ``True``/``FALSE`` and blanks around list members, and stores them normalised.
    """
    if len(value) > max_size:
        raise InvalidValue("TooLong", f"longer than ConfigurationValueSize {max_size}")
    kind = spec.data_type
    if kind == "integer":
        if not _INTEGER.fullmatch(value.strip() if lenient else value):
            raise InvalidValue("InvalidValue", f"{spec.path}: not an integer")
        _check_range(spec, int(value))
        return str(int(value))
    if kind == "decimal":
        if not _DECIMAL.fullmatch(value.strip() if lenient else value):
            raise InvalidValue("InvalidValue", f"{spec.path}: not a decimal")
        number = float(value)
        if not math.isfinite(number):
            raise InvalidValue("InvalidValue", f"{spec.path}: not a finite decimal")
        _check_range(spec, number)
        return value.strip()
    if kind == "boolean":
        text = value.strip().lower() if lenient else value
        if text not in ("true", "false"):
            raise InvalidValue("InvalidValue", f"{spec.path}: not true or false")
        return text
    if kind == "dateTime":
        if not _DATE_TIME.fullmatch(value):
            raise InvalidValue("InvalidValue", f"{spec.path}: not an RFC 3339 date-time")
        return value
    _check_length(spec, value)
    if kind == "OptionList":
        if spec.values_list is not None and value not in spec.values_list:
            raise InvalidValue("NotInValuesList", f"{spec.path}: {value!r} is not an option")
        return value
    if kind in ("MemberList", "SequenceList"):
        members = [m.strip() if lenient else m for m in value.split(",")] if value else []
        if not members and spec.nonempty:
            raise InvalidValue("InvalidValue", f"{spec.path}: needs at least one member")
        if len(set(members)) != len(members):
            raise InvalidValue("InvalidValue", f"{spec.path}: a member is repeated")
        for member in members:
            if spec.values_list is not None and member not in spec.values_list:
                raise InvalidValue("NotInValuesList", f"{spec.path}: {member!r} not supported")
        return ",".join(members)
    return value  # string


def _check_range(spec: VarSpec, number: float) -> None:
    if spec.min_limit is not None and number < spec.min_limit:
        raise InvalidValue("OutOfRange", f"{spec.path}: below minLimit {spec.min_limit:g}")
    if spec.max_limit is not None and number > spec.max_limit:
        raise InvalidValue("OutOfRange", f"{spec.path}: above maxLimit {spec.max_limit:g}")


def _check_length(spec: VarSpec, value: str) -> None:
    if spec.max_limit is not None and len(value) > spec.max_limit:
        raise InvalidValue("TooLong", f"{spec.path}: longer than {spec.max_limit:g} characters")
    if spec.min_limit is not None and len(value) < spec.min_limit:
        raise InvalidValue("TooShort", f"{spec.path}: shorter than {spec.min_limit:g}")


class JsonFileStore:
    """The device model's persisted values: one small JSON file, replaced atomically.

    :meth:`save` writes a temporary file next to it, fsyncs it, renames it over the old one and
    fsyncs the directory, so a power cut leaves the old file or the new one, never half of one.
    The device model calls it only when a persisted value changed (SD cards wear out);
    ``writes`` counts the calls.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.writes = 0

    def load(self) -> dict[str, Any]:
        """The saved object, or ``{}`` when there is none (or it cannot be read)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, data: dict[str, Any]) -> None:
        """Replace the file with ``data`` (atomic: tmp + fsync + rename + fsync of the folder)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"), sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        try:
            folder = os.open(self.path.parent, os.O_RDONLY)
        except OSError:  # pragma: no cover - platforms without directory handles
            pass
        else:
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        self.writes += 1
