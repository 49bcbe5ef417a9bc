"""``bridge demo``'s stations: charger nodes (:mod:`ocpp_iot.charger_node`) on a short scenario.

Each station is a :class:`~ocpp_iot.charger_node.node.Node` with its own MQTT connection to the
demo's broker and a :class:`~ocpp_iot.charger_node.simulated.SimulatedEvse` playing a scenario:
for each session an EV plugs in, a token is shown, the EV charges at 11 kW for a few meter
intervals and leaves. The scenario starts once the station's boot is accepted
(:class:`AfterBoot`); :class:`Sessions` tells when every station has finished its sessions.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from ..charger_node.evse import Connector, EvseEvent, MeterReading
from ..charger_node.node import Node, NodeConfig
from ..charger_node.scenario import Scenario, parse_scenario
from ..charger_node.simulated import SimulatedEvse, Traffic
from ..rpc import Call, CallError, CallResult, Frame

__all__ = ["AfterBoot", "Sessions", "demo_nodes", "meter_interval", "scenario"]

#: no EV ever comes to the EVSE that stands in until the boot is accepted
_NOBODY = Traffic(mean_gap_s=1e12)


def meter_interval(pace: float) -> int:
    """``SampledDataCtrlr.TxUpdatedInterval`` for a ``pace``: whole seconds, at least 1."""
    return max(1, math.ceil(pace))


def scenario(token: str, sessions: int, updates: int, pace: float) -> Scenario:
    """``sessions`` rounds of: plug in, show ``token``, charge at 11 kW for about ``updates``
    meter intervals, unplug; the steps ``pace`` seconds apart."""
    steps = [
        {"at": pace, "plug": 1, "power_kw": 11},
        {"after": pace, "token": token},
        {"after": pace + (updates + 0.5) * meter_interval(pace), "unplug": 1},
    ]
    return parse_scenario({"steps": steps, "repeat": sessions}, "bridge demo")


class AfterBoot:
    """An :class:`~ocpp_iot.charger_node.evse.Evse` that plays ``plan`` on a
    :class:`SimulatedEvse` from the first moment ``accepted()`` holds.

    A station asks the back end nothing but its BootNotification until it is accepted (OCPP
    2.0.1 B02): a token shown before then is decided locally, as offline, and a token it does
    not know yet is refused. Starting the scenario at the acceptance also makes each session as
    long whatever the boot took. Until then an idle simulated EVSE (no EV comes) answers for it.
    """

    def __init__(self, seed: str, plan: Scenario, accepted: Callable[[], bool]) -> None:
        self.seed = seed
        self.plan = plan
        self.accepted = accepted
        self.started = False
        self._evse = SimulatedEvse(1, seed=seed, traffic=_NOBODY)
        self._available: dict[int, bool] = {}

    def _start_if_accepted(self, now: float) -> None:
        if self.started or not self.accepted():
            return
        idle = self._evse
        self._evse = SimulatedEvse(
            1, seed=self.seed, scenario=self.plan, start=now, start_wh=idle.registers()
        )
        for number, available in self._available.items():
            self._evse.set_available(number, available, now)
        self.started = True

    @property
    def connectors(self) -> Sequence[Connector]:
        return self._evse.connectors

    def events(self, now: float) -> list[EvseEvent]:
        self._start_if_accepted(now)
        return self._evse.events(now)

    def meter(self, connector: int, now: float) -> MeterReading:
        return self._evse.meter(connector, now)

    def set_relay(self, connector: int, closed: bool, now: float) -> None:
        self._evse.set_relay(connector, closed, now)

    def unlock(self, connector: int, now: float) -> bool:
        return self._evse.unlock(connector, now)

    def set_available(self, connector: int, available: bool, now: float) -> None:
        self._available[connector] = available
        self._evse.set_available(connector, available, now)

    def next_event_at(self) -> float | None:
        if not self.started and self.accepted():
            return 0.0  # at once: the next events() starts the scenario
        return self._evse.next_event_at()


class Sessions:
    """Counts each station's finished sessions (a TransactionEvent Ended the bridge answered);
    :attr:`all_done` is set once every station has finished ``sessions``."""

    def __init__(self, stations: Sequence[str], sessions: int) -> None:
        self.sessions = sessions
        self.ended: dict[str, set[str]] = {s: set() for s in stations}
        self.done: dict[str, int] = dict.fromkeys(stations, 0)
        self.all_done = asyncio.Event()

    def __call__(self, direction: str, station: str, frame: Frame) -> None:
        if direction == "up" and isinstance(frame, Call) and frame.action == "TransactionEvent":
            if frame.payload.get("eventType") == "Ended":
                self.ended[station].add(frame.message_id)
        elif direction == "down" and isinstance(frame, CallResult | CallError):
            if frame.message_id in self.ended[station]:
                self.ended[station].discard(frame.message_id)
                self.done[station] += 1
                if all(n >= self.sessions for n in self.done.values()):
                    self.all_done.set()


def demo_nodes(
    ids: Sequence[str],
    broker_url: str,
    data_dir: Path,
    *,
    sessions: int,
    updates: int,
    pace: float,
    on_frame: Callable[[str, str, Frame], None],
) -> list[Node]:
    """One node per id (OCPP 2.0.1, compact CBOR, MQTT 3.1.1 to ``broker_url``), its files in
    ``data_dir/{id}``, showing the token ``TOKEN-{id}``; ``on_frame(direction, id, frame)``."""
    nodes: list[Node] = []
    for station in ids:
        cfg = NodeConfig(
            station,
            broker=broker_url,
            protocol="3.1.1",
            data_dir=data_dir / station,
            model="ocpp-iot demo",
            variables={"SampledDataCtrlr.TxUpdatedInterval": str(meter_interval(pace))},
        )
        plan = scenario(f"TOKEN-{station}", sessions, updates, pace)
        holder: list[Node] = []

        def accepted(holder: list[Node] = holder) -> bool:
            rt = holder[0].runtime if holder else None
            return rt is not None and rt.machine.registration == "accepted"

        def seen(direction: str, frame: Frame, station: str = station) -> None:
            on_frame(direction, station, frame)

        node = Node(cfg, evse=AfterBoot(station, plan, accepted), on_frame=seen)
        holder.append(node)
        nodes.append(node)
    return nodes
