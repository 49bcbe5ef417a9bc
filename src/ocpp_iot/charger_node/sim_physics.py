"""The pieces of :mod:`ocpp_iot.charger_node.simulated`: random traffic's settings and one
connector's physics.

Power flows while a cable is in, the relay is closed, there is no fault and the EV wants energy;
it is the EV's wish, constant between changes, so the register integrates it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ocpp_iot.charger_node.evse import Connector

__all__ = ["INF", "Port", "Traffic"]

INF = math.inf


@dataclass(frozen=True, slots=True)
class Traffic:
    """Random traffic: ranges are (low, high), drawn uniformly for each session."""

    mean_gap_s: float = 900.0  # mean free time between an EV leaving and the next arriving
    tokens: tuple[str, ...] = ("SIM-0001", "SIM-0002", "SIM-0003", "SIM-0004")
    token_type: str = "ISO14443"
    token_delay_s: tuple[float, float] = (2.0, 15.0)  # plug-in to token
    power_kw: tuple[float, float] = (3.7, 11.0)  # capped at the connector's maximum
    energy_kwh: tuple[float, float] = (2.0, 20.0)
    linger_s: tuple[float, float] = (0.0, 300.0)  # full to unplugged
    patience_s: float = 180.0  # not charging that long (and not full): the EV leaves
    battery_kwh: tuple[float, float] = (40.0, 80.0)  # for the state of charge, with soc=True

    def __post_init__(self) -> None:
        if not self.mean_gap_s > 0 or not self.patience_s > 0 or not self.tokens:
            raise ValueError("Traffic needs mean_gap_s > 0, patience_s > 0 and some tokens")
        for name in ("token_delay_s", "power_kw", "energy_kwh", "linger_s", "battery_kwh"):
            low, high = getattr(self, name)
            if not 0 <= low <= high or (name in ("power_kw", "energy_kwh") and low <= 0):
                raise ValueError(f"Traffic.{name} must be (low, high) with 0 <= low <= high")


class Port:
    """One connector's state, its register integrated up to time ``t``."""

    __slots__ = (
        "info", "register_wh", "t", "since", "since_register_wh", "since_session_wh", "plugged",
        "relay", "available", "fault", "station_fault", "suspended", "power_w", "target_wh",
        "session_wh", "full_at", "idle_since", "soc_start", "battery_wh", "phase", "due", "token",
        "linger",
    )  # fmt: skip

    def __init__(self, info: Connector, register_wh: float) -> None:
        self.info = info
        self.register_wh = register_wh
        self.t = 0.0
        self.since = 0.0  # the last change, and the register and session energy then
        self.since_register_wh = register_wh
        self.since_session_wh = 0.0
        self.plugged = False
        self.relay = False
        self.available = True
        self.fault: str | None = None  # this connector's fault code
        self.station_fault = False
        self.suspended = False  # paused by the EV
        self.power_w = 0.0  # what the EV draws when it can
        self.target_wh = INF  # energy the EV wants this session
        self.session_wh = 0.0
        self.full_at: float | None = None
        self.idle_since = 0.0  # when it last stopped drawing (or was plugged in)
        self.soc_start: float | None = None
        self.battery_wh = 0.0
        # the random EV: "idle" (next arrival at due), "token" (token at due), "plugged"
        self.phase = "idle"
        self.due = INF
        self.token = ""
        self.linger = 0.0

    def wants(self) -> bool:
        """A cable is in and the EV wants energy (not full, not paused)."""
        return self.plugged and self.full_at is None and not self.suspended

    def drawing(self) -> bool:
        faulted = self.fault is not None or self.station_fault
        return self.wants() and self.relay and not faulted and self.power_w > 0

    def power_now(self) -> float:
        return self.power_w if self.drawing() else 0.0

    def full_time(self) -> float | None:
        """When the EV will have what it wants, if nothing changes before."""
        if not self.drawing() or self.target_wh == INF:
            return None
        return self.since + (self.target_wh - self.since_session_wh) / self.power_w * 3600.0

    def integrate(self, t: float) -> None:
        """Bring the register up to ``t``. It is computed from the last change (:meth:`anchor`),
        not summed over reads, so how often the meter is read changes no value, to the bit."""
        if self.drawing():
            wh = self.power_w * (t - self.since) / 3600.0
            self.register_wh = self.since_register_wh + wh
            self.session_wh = self.since_session_wh + wh
        self.t = t

    def anchor(self) -> None:
        """Something changed at ``t``: the next stretch of constant power starts here."""
        self.since, self.since_register_wh, self.since_session_wh = (
            self.t,
            self.register_wh,
            self.session_wh,
        )
