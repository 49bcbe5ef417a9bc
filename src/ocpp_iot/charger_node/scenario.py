"""Scenario files for the simulated EVSE: what happens at a charger, step by step.

A scenario is a TOML or JSON file with a list ``steps``; each step is one thing that happens, and
when. TOML::

    steps = [
      { at = 0, plug = 1 },                          # a cable into connector 1
      { after = 5, token = "ABC" },                  # a card at connector 1's reader
      { after = 5, charge_kwh = 5, power_kw = 11 },  # the EV wants 5 kWh at 11 kW
      { unplug = 1, after_full = 60 },               # unplugged a minute after it is full
    ]

JSON: ``{"steps": [{"at": 0, "plug": 1}, ...]}``, or the list alone.

When: exactly one of ``at`` (seconds from the start of the simulation), ``after`` (seconds after
the step before) or, on an ``unplug`` only, ``after_full`` (seconds after the EV on that connector
stopped drawing because it got the energy it wanted). Steps happen in the order written.

What (exactly one per step):

- ``plug = N``: a cable into connector N. Optional on the same step: ``charge_kwh`` and
  ``power_kw`` (the EV's wish: without them it draws the connector's maximum, without end),
  ``soc`` (state of charge at plug-in, %) with ``battery_kwh``.
- ``unplug = N``.
- ``token = "ID"``: an identifier shown at ``connector`` (default 1; 0 for a shared reader),
  of ``type`` (default ``ISO14443``).
- ``charge_kwh`` and/or ``power_kw`` alone: a new wish of the EV on ``connector`` (default 1),
  which must be plugged. ``charge_kwh`` counts from this step.
- ``suspend = N`` / ``resume = N``: the EV stops / starts drawing by itself.
- ``fault = "GroundFailure"``: a fault on ``connector`` (default 1; 0 for the whole station),
  with optional ``text``; ``clear_fault = N`` ends it.

Top level, besides ``steps``: ``repeat = N`` runs the steps N times (``true``: for ever; each
round's ``at`` counts from the end of the round before, and every cable must be out by then),
``name`` and ``description`` (ignored).

Every error names the file and the step (from 1) and what is wrong with it.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Scenario", "ScenarioError", "Step", "load_scenario", "parse_scenario"]

_ACTIONS = ("plug", "unplug", "token", "suspend", "resume", "fault", "clear_fault")
_WHEN = ("at", "after", "after_full")
_EXTRA: dict[str, set[str]] = {
    "plug": {"charge_kwh", "power_kw", "soc", "battery_kwh"},
    "unplug": set(),
    "token": {"connector", "type"},
    "charge": {"connector", "charge_kwh", "power_kw"},
    "suspend": set(),
    "resume": set(),
    "fault": {"connector", "text"},
    "clear_fault": set(),
}


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message names the file and the step."""


@dataclass(frozen=True, slots=True)
class Step:
    """One parsed step. ``index`` counts from 1, as the error messages do.

    Exactly one of ``at``, ``after``, ``after_full`` is set. ``action`` is one of ``plug``,
    ``unplug``, ``token``, ``charge``, ``suspend``, ``resume``, ``fault``, ``clear_fault``.
    ``charge_wh`` / ``power_w`` are in Wh and W (the file says kWh and kW).
    """

    index: int
    action: str
    connector: int
    at: float | None = None
    after: float | None = None
    after_full: float | None = None
    id_token: str | None = None
    token_type: str = "ISO14443"
    charge_wh: float | None = None
    power_w: float | None = None
    soc_percent: float | None = None
    battery_wh: float | None = None
    code: str | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class Scenario:
    """The steps of a scenario, in order; ``source`` names it in error messages.

    ``repeat``: how many times the steps run (``None``: for ever). Each round starts when the
    last step of the round before happened; ``at`` counts from there.
    """

    steps: tuple[Step, ...]
    source: str = "<scenario>"
    repeat: int | None = 1

    def check_connectors(self, max_power_w: Mapping[int, float]) -> None:
        """Raise :class:`ScenarioError` if a step names a connector that is not in
        ``max_power_w`` (connector number -> its maximum power) or asks for more power."""
        for step in self.steps:
            where = f"{self.source}: step {step.index} ({step.action})"
            if step.connector != 0 and step.connector not in max_power_w:
                known = ", ".join(str(n) for n in sorted(max_power_w))
                raise ScenarioError(f"{where}: no connector {step.connector} (there are {known})")
            if step.connector == 0 and step.action not in ("token", "fault", "clear_fault"):
                raise ScenarioError(f"{where}: connector 0 only for token and fault steps")
            limit = max_power_w.get(step.connector)
            if step.power_w is not None and limit is not None and step.power_w > limit:
                raise ScenarioError(
                    f"{where}: power_kw = {step.power_w / 1000:g} is above connector "
                    f"{step.connector}'s maximum of {limit / 1000:g} kW"
                )


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario from a ``.toml`` or ``.json`` file (by its suffix; TOML otherwise)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}"
        ) from exc
    return parse_scenario(data, source=str(path))


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Check a scenario already read into Python values (a mapping with ``steps``, or a list)."""
    if isinstance(data, Mapping):
        unknown = set(data) - {"steps", "repeat", "name", "description"}
        if unknown:
            raise ScenarioError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
        if "steps" not in data:
            raise ScenarioError(f"{source}: no steps")
        repeat = data.get("repeat", 1)
        data = data["steps"]
    else:
        repeat = 1
    if repeat is True:
        repeat = None
    elif isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ScenarioError(f"{source}: repeat must be a count from 1, or true for ever")
    if not isinstance(data, list) or not data:
        raise ScenarioError(f"{source}: steps must be a non-empty list")
    steps = tuple(_parse_step(i, raw, source) for i, raw in enumerate(data, start=1))
    _check_order(steps, source, repeat != 1)
    return Scenario(steps, source, repeat)


def _number(
    where: str, key: str, value: Any, *, minimum: float = 0.0, strict: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{where}: {key} must be a number, not {value!r}")
    if value < minimum or (strict and value == minimum):
        relation = "above" if strict else "at least"
        raise ScenarioError(f"{where}: {key} must be {relation} {minimum:g}, not {value!r}")
    return float(value)


def _connector(where: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ScenarioError(f"{where}: {key} must be a connector number, not {value!r}")
    return value


def _text(where: str, key: str, value: Any, longest: int) -> str:
    if not isinstance(value, str) or not value or len(value) > longest:
        raise ScenarioError(f"{where}: {key} must be a string of 1 to {longest} characters")
    return value


def _parse_step(index: int, raw: Any, source: str) -> Step:
    where = f"{source}: step {index}"
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: a step is a table of keys, not {raw!r}")
    actions = [a for a in _ACTIONS if a in raw]
    if not actions and ("charge_kwh" in raw or "power_kw" in raw):
        actions = ["charge"]
    if len(actions) != 1:
        found = " and ".join(actions) if actions else "none"
        raise ScenarioError(
            f"{where}: needs exactly one of {', '.join(_ACTIONS)}, charge_kwh/power_kw "
            f"(found {found})"
        )
    action = actions[0]
    where = f"{where} ({action})"
    allowed = set(_WHEN) | _EXTRA[action] | ({action} if action != "charge" else set())
    unknown = set(raw) - allowed
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    when = [w for w in _WHEN if w in raw]
    if len(when) != 1:
        raise ScenarioError(f"{where}: needs exactly one of at, after, after_full")
    if when[0] == "after_full" and action != "unplug":
        raise ScenarioError(f"{where}: after_full is for unplug steps only")
    times: dict[str, Any] = {w: _number(where, w, raw[w]) for w in when}
    fields: dict[str, Any] = {}
    if action in ("plug", "unplug", "suspend", "resume", "clear_fault"):
        connector = _connector(where, action, raw[action])
    else:
        connector = _connector(where, "connector", raw.get("connector", 1))
    if action == "token":
        fields["id_token"] = _text(where, "token", raw["token"], 255)
        fields["token_type"] = _text(where, "type", raw.get("type", "ISO14443"), 20)
    elif action == "fault":
        fields["code"] = _text(where, "fault", raw["fault"], 50)
        fields["text"] = raw.get("text", "")
        if not isinstance(fields["text"], str):
            raise ScenarioError(f"{where}: text must be a string")
    if "charge_kwh" in raw:
        fields["charge_wh"] = _number(where, "charge_kwh", raw["charge_kwh"], strict=True) * 1000
    if "power_kw" in raw:
        fields["power_w"] = _number(where, "power_kw", raw["power_kw"], strict=True) * 1000
    if "soc" in raw or "battery_kwh" in raw:
        if "soc" not in raw or "battery_kwh" not in raw:
            raise ScenarioError(f"{where}: soc and battery_kwh go together")
        soc = _number(where, "soc", raw["soc"])
        if soc > 100:
            raise ScenarioError(f"{where}: soc must be at most 100, not {soc:g}")
        fields["soc_percent"] = soc
        fields["battery_wh"] = _number(where, "battery_kwh", raw["battery_kwh"], strict=True) * 1000
    return Step(index, action, connector, **times, **fields)


def _check_order(steps: tuple[Step, ...], source: str, repeats: bool) -> None:
    """What a file can be checked for before it runs: times that do not go back, and plugs and
    unplugs that alternate per connector (``after_full`` needs an EV with an energy wish); a
    scenario that repeats must end with every cable out and take some time."""
    plugged: dict[int, int] = {}  # connector -> the step that plugged it
    wish: dict[int, bool] = {}  # connector -> its EV wants a finite energy
    last_at: tuple[float, int] | None = None
    duration, waits = 0.0, False
    for step in steps:
        where = f"{source}: step {step.index} ({step.action})"
        duration = max(duration, step.at or 0.0) + (step.after or 0.0)
        waits = waits or step.after_full is not None
        if step.at is not None:
            if last_at is not None and step.at < last_at[0]:
                raise ScenarioError(
                    f"{where}: at = {step.at:g} is before step {last_at[1]}'s at = {last_at[0]:g}"
                )
            last_at = (step.at, step.index)
        c = step.connector
        if step.action == "plug":
            if c in plugged:
                raise ScenarioError(
                    f"{where}: connector {c} is already plugged (step {plugged[c]})"
                )
            plugged[c] = step.index
            wish[c] = step.charge_wh is not None
        elif step.action in ("unplug", "charge", "suspend", "resume"):
            if c not in plugged:
                raise ScenarioError(f"{where}: connector {c} is not plugged")
            if step.action == "charge" and step.charge_wh is not None:
                wish[c] = True
            if step.action == "unplug":
                if step.after_full is not None and not wish[c]:
                    raise ScenarioError(
                        f"{where}: after_full, but the EV on connector {c} has no charge_kwh"
                    )
                del plugged[c]
    if repeats and plugged:
        left = ", ".join(f"{c} (step {i})" for c, i in sorted(plugged.items()))
        raise ScenarioError(f"{source}: repeat, but connector {left} is still plugged at the end")
    if repeats and duration == 0 and not waits:
        raise ScenarioError(f"{source}: repeat, but one round of steps takes no time")
