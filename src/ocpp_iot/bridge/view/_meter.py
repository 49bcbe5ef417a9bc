"""Energy and power from MeterValue lists, in the 1.6 and the 2.x shape."""

from __future__ import annotations

from typing import Any

from ._fields import _dict, _number

_ENERGY = "Energy.Active.Import.Register"
_POWER = "Power.Active.Import"
_ENERGY_FACTORS = {"Wh": 1.0, "kWh": 1000.0}
_POWER_FACTORS = {"W": 1.0, "kW": 1000.0}
_PHASES = frozenset(("L1", "L2", "L3"))


def _meter(values: Any) -> tuple[float | None, float | None]:
    """(energy Wh, power W) of the latest meter value that has them (1.6 and 2.x shapes)."""
    energy: float | None = None
    power: float | None = None
    if type(values) is not list:
        return None, None
    for value in values:
        samples = _dict(value).get("sampledValue")
        if type(samples) is not list:
            continue
        e_total = p_total = None
        e_sum = p_sum = 0.0
        e_phases = p_phases = 0
        for sample in samples:
            if type(sample) is not dict:
                continue
            # SampledValue: measurand defaults to Energy.Active.Import.Register and the unit
            # to Wh, in 1.6 and 2.x alike; 2.x adds a power-of-ten multiplier (default 0).
            measurand = sample.get("measurand", _ENERGY)
            if measurand == _ENERGY:
                factors, default_unit = _ENERGY_FACTORS, "Wh"
            elif measurand == _POWER:  # a power "in Wh" makes no sense: read a missing unit as W
                factors, default_unit = _POWER_FACTORS, "W"
            else:
                continue
            x = _number(sample.get("value"))
            if x is None:
                continue
            unit_of_measure = sample.get("unitOfMeasure")
            if type(unit_of_measure) is dict:  # 2.x: unitOfMeasure.unit and .multiplier
                unit = unit_of_measure.get("unit", default_unit)
                multiplier = unit_of_measure.get("multiplier", 0)
                if type(multiplier) is not int or not -9 <= multiplier <= 9:
                    continue
            else:  # 1.6: unit beside the value
                unit = sample.get("unit", default_unit)
                multiplier = 0
            factor = factors.get(unit) if type(unit) is str else None
            if factor is None:
                continue
            x = round(x * factor * 10.0**multiplier, 3)
            phase = sample.get("phase")
            if phase is None:
                if measurand == _ENERGY:
                    e_total = x
                else:
                    p_total = x
            elif type(phase) is str and phase in _PHASES:
                if measurand == _ENERGY:
                    e_sum += x
                    e_phases += 1
                else:
                    p_sum += x
                    p_phases += 1
        if e_total is not None:
            energy = e_total
        elif e_phases:
            energy = round(e_sum, 3)
        if p_total is not None:
            power = p_total
        elif p_phases:
            power = round(p_sum, 3)
    return energy, power
