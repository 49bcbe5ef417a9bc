"""A simulated charger (:class:`SimulatedEvse`): EVs that plug in, show a token, charge, leave.

Two ways to drive it:

- **random traffic** (no scenario): on each connector EVs arrive at random (exponential gaps, so
  Poisson arrivals, mean :attr:`Traffic.mean_gap_s`), plug in, show one of
  :attr:`Traffic.tokens`, draw a random power until they have a random amount of energy, linger
  and unplug. An EV whose charge does not start (token rejected, connector out of service) gives up
  after :attr:`Traffic.patience_s`. No EV arrives at an unavailable or faulted connector.
- **a scenario** (:mod:`ocpp_iot.charger_node.scenario`): the steps of a file, in order.

The physics is the same for both. Power flows only while a cable is in, the relay is closed, there
is no fault and the EV wants energy; it is constant in between (the EV draws its wish), so the
register is the exact integral of power over time. Per phase, the power splits with a little noise
and ``current = phase power / voltage``: the phases add up to ``power_w`` exactly. Voltage is
230 V with noise. The noise of a reading depends on (seed, connector, time) only, so reading the
meter more or less often changes neither the readings at other times nor what happens.

Nothing here reads a clock: time is the ``now`` the caller passes. Everything random is seeded
from ``seed``: the same seed and the same calls give the same events and readings. Connectors are
independent (each draws from its own stream), so adding a connector does not change what happens
on the others. A stream is SplitMix64, one integer of state, not a ``random.Random`` (2.5 KiB of
Mersenne Twister state each: a thousand simulated stations share one process).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from ocpp_iot.charger_node.evse import (
    Connector,
    EvResumed,
    EvseEvent,
    EvSuspended,
    Fault,
    FaultCleared,
    MeterReading,
    Plugged,
    TokenPresented,
    Unplugged,
)
from ocpp_iot.charger_node.scenario import Scenario, Step, load_scenario
from ocpp_iot.charger_node.sim_physics import INF, Port, Traffic

__all__ = ["SimulatedEvse", "Traffic"]

_Due = tuple[float, int, str, Port | Step]  # time, tie-break, kind, what


_MASK64 = (1 << 64) - 1
T = TypeVar("T")


class Stream:
    """Seeded uniform numbers: SplitMix64 (Steele, Lea and Flood, "Fast splittable
    pseudorandom number generators", OOPSLA 2014), seeded with a hash of ``seed``. Enough for
    traffic; not for anything secret."""

    __slots__ = ("_state",)

    def __init__(self, seed: str) -> None:
        self._state = int.from_bytes(hashlib.blake2b(seed.encode(), digest_size=8).digest())

    def random(self) -> float:
        """In [0, 1), 53 bits."""
        self._state = z = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return ((z ^ (z >> 31)) >> 11) * (1.0 / (1 << 53))

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def expovariate(self, rate: float) -> float:
        return -math.log(1.0 - self.random()) / rate

    def choice(self, seq: Sequence[T]) -> T:
        return seq[int(self.random() * len(seq))]


class SimulatedEvse:
    """A simulated :class:`~ocpp_iot.charger_node.evse.Evse` (also a ``ScheduledEvse``).

    ``connectors``: how many (numbered 1..N, each its own 2.x EVSE), or the :class:`Connector`
    list. ``phases`` (1 or 3) and ``max_current_a`` give the default connectors' maximum power.
    ``scenario``: a :class:`Scenario` or a path to a TOML/JSON scenario file; without one, random
    ``traffic``. ``start``: the time scenario steps count from and random traffic starts at
    (default: the first ``now`` passed in). ``start_wh``: the meter registers at the start, one
    number for all, one per connector, or ``{connector: Wh}`` (what :meth:`registers` returned
    before a restart); default a seeded random value between 100 and 5,000 kWh. ``soc``: random
    traffic reports the EV's state of charge. ``noise``: relative noise of voltage and phase split.
    """

    def __init__(
        self,
        connectors: int | Sequence[Connector] = 1,
        phases: int = 3,
        seed: int | str = 0,
        scenario: Scenario | str | Path | None = None,
        *,
        traffic: Traffic | None = None,
        start: float | None = None,
        start_wh: float | Sequence[float] | Mapping[int, float] | None = None,
        max_current_a: float = 32.0,
        voltage_v: float = 230.0,
        noise: float = 0.01,
        soc: bool = False,
    ) -> None:
        if isinstance(connectors, int):
            if connectors < 1:
                raise ValueError("at least one connector")
            power = phases * voltage_v * max_current_a
            infos = [Connector(n, n, 1, phases, power) for n in range(1, connectors + 1)]
        else:
            infos = list(connectors)
            if [c.number for c in infos] != list(range(1, len(infos) + 1)):
                raise ValueError("connectors must be numbered 1..N in order")
        self._connectors = tuple(infos)
        self._seed = seed
        self._voltage = voltage_v
        self._noise = noise
        self._soc = soc
        self._ports = {c.number: Port(c, self._start_register(c.number, start_wh)) for c in infos}
        if isinstance(scenario, str | Path):
            scenario = load_scenario(scenario)
        if scenario is not None:
            scenario.check_connectors({c.number: c.max_power_w for c in infos})
        self._scenario = scenario
        self._traffic = (traffic or Traffic()) if scenario is None else None
        self._rngs = {n: Stream(f"{seed}:traffic:{n}") for n in self._ports}
        self._origin: float | None = None
        self._now = -INF
        self._cursor = 0  # the next scenario step
        self._rounds = 0  # scenario rounds done
        self._round_origin = 0.0  # when this round started
        self._last_step_at = 0.0
        self._events: list[EvseEvent] = []
        if start is not None:
            self._begin(start)

    # --- the Evse interface

    @property
    def connectors(self) -> Sequence[Connector]:
        return self._connectors

    def events(self, now: float) -> list[EvseEvent]:
        self._run(now)
        out, self._events = self._events, []
        return out

    def meter(self, connector: int, now: float) -> MeterReading:
        self._run(now)
        port = self._port(connector)
        n = port.info.phases
        # noise from a hash of (seed, connector, time): the same at the same time, whatever was
        # read before (a seeded Random costs ten times more per reading)
        key = f"{self._seed}:{connector}:{float(now)!r}".encode()
        digest = hashlib.blake2b(key, digest_size=4 * n).digest()
        u = [int.from_bytes(digest[k : k + 2]) / 32767.5 - 1 for k in range(0, 4 * n, 2)]
        volts = tuple(self._voltage * (1 + self._noise * x) for x in u[:n])
        weights = [1 + self._noise * x for x in u[n:]]
        total = sum(weights)
        power = port.power_now()
        amps = tuple(power * w / total / v for w, v in zip(weights, volts, strict=True))
        soc = None
        if port.plugged and port.soc_start is not None:
            soc = min(100.0, port.soc_start + port.session_wh / port.battery_wh * 100.0)
        return MeterReading(now, port.register_wh, power, amps, volts, soc)

    def set_relay(self, connector: int, closed: bool, now: float) -> None:
        self._run(now)
        port = self._port(connector)

        def switch() -> None:
            port.relay = closed

        self._change(port, now, switch)

    def unlock(self, connector: int, now: float) -> bool:
        self._run(now)
        port = self._port(connector)
        return not port.relay and port.fault != "ConnectorLockFailure"

    def set_available(self, connector: int, available: bool, now: float) -> None:
        self._run(now)
        self._port(connector).available = available

    def next_event_at(self) -> float | None:
        """When :meth:`events` next has something; ``None`` before the first call when no
        ``start`` was given (the first call starts the simulation), or when nothing is planned."""
        if self._events:
            return self._now
        if self._origin is None:
            return None
        due = self._next()
        return None if due is None else due[0]

    # --- extras for tests and the runtime

    def registers(self) -> dict[int, float]:
        """Each connector's meter register now (Wh): persist it, pass it back as ``start_wh``."""
        return {n: p.register_wh for n, p in self._ports.items()}

    def relay_closed(self, connector: int) -> bool:
        return self._port(connector).relay

    def plugged(self, connector: int) -> bool:
        return self._port(connector).plugged

    # --- the simulation

    def _start_register(
        self, n: int, start_wh: float | Sequence[float] | Mapping[int, float] | None
    ) -> float:
        if start_wh is None:
            return float(round(random.Random(f"{self._seed}:register:{n}").uniform(1e5, 5e6)))
        if isinstance(start_wh, int | float):
            value = float(start_wh)
        elif isinstance(start_wh, Mapping):
            value = float(start_wh[n])
        else:
            value = float(start_wh[n - 1])
        if not value >= 0:
            raise ValueError(f"start_wh of connector {n} must be >= 0, not {value}")
        return value

    def _port(self, connector: int) -> Port:
        try:
            return self._ports[connector]
        except KeyError:
            raise ValueError(f"no connector {connector}") from None

    def _begin(self, start: float) -> None:
        self._origin = self._now = self._last_step_at = self._round_origin = start
        for port in self._ports.values():
            port.t = port.idle_since = start
            port.anchor()
            if self._traffic is not None:
                rng = self._rngs[port.info.number]
                port.due = start + rng.expovariate(1 / self._traffic.mean_gap_s)

    def _run(self, now: float) -> None:
        if self._origin is None:
            self._begin(now)
        if now < self._now:
            raise ValueError(f"time went backwards: {now} after {self._now}")
        while (due := self._next()) is not None and due[0] <= now:
            t, _, kind, item = due
            if isinstance(item, Step):
                self._step(item, t)
            elif kind == "full":
                self._full(item, t)
            else:
                self._drive(item, t)
        for port in self._ports.values():
            port.integrate(now)
        self._now = now

    def _next(self) -> _Due | None:
        """The earliest thing due: an EV getting full, a scenario step, a random EV's move.

        At equal times: physics first, then connectors in number order, then the scenario."""
        best: _Due | None = None
        for n, port in self._ports.items():
            full = port.full_time()
            if full is not None and (best is None or full < best[0]):
                best = (full, n, "full", port)
            if self._traffic is not None:
                due = self._traffic_due(port)
                if due is not None and (best is None or due < best[0]):
                    best = (due, n, "drive", port)
        if self._scenario is not None and self._cursor < len(self._scenario.steps):
            step = self._scenario.steps[self._cursor]
            due = self._step_due(step)
            if due is not None and (best is None or due < best[0]):
                best = (due, 0, "step", step)
        return best

    def _change(self, port: Port, t: float, action: Callable[[], None]) -> None:
        """Integrate up to ``t``, apply ``action``, report the EV pausing or resuming."""
        port.integrate(t)
        wanted, was_drawing = port.wants(), port.drawing()
        action()
        port.anchor()
        if port.plugged and wanted != port.wants():
            self._events.append((EvResumed if port.wants() else EvSuspended)(port.info.number, t))
        if was_drawing and not port.drawing():
            port.idle_since = t

    def _full(self, port: Port, t: float) -> None:
        def full() -> None:
            # exactly the energy wanted (the time to get there was rounded)
            port.register_wh = port.since_register_wh + port.target_wh - port.since_session_wh
            port.session_wh = port.target_wh
            port.full_at = t

        self._change(port, t, full)

    def _plug(self, port: Port, t: float, power_w: float, target_wh: float) -> None:
        port.integrate(t)
        port.plugged, port.suspended, port.full_at = True, False, None
        port.power_w, port.target_wh, port.session_wh = power_w, target_wh, 0.0
        port.soc_start, port.idle_since = None, t
        port.anchor()
        self._events.append(Plugged(port.info.number, t))

    def _unplug(self, port: Port, t: float) -> None:
        port.integrate(t)
        port.plugged, port.suspended = False, False
        port.anchor()
        self._events.append(Unplugged(port.info.number, t))

    # scenario mode

    def _step_due(self, step: Step) -> float | None:
        assert self._origin is not None
        if step.at is not None:
            return max(self._round_origin + step.at, self._last_step_at)
        if step.after is not None:
            return self._last_step_at + step.after
        full_at = self._ports[step.connector].full_at
        if full_at is None or step.after_full is None:
            return None  # waits until the EV is full
        return max(full_at + step.after_full, self._last_step_at)

    def _step(self, step: Step, t: float) -> None:
        assert self._scenario is not None
        self._cursor += 1
        self._last_step_at = t
        if self._cursor == len(self._scenario.steps):
            self._rounds += 1
            if self._scenario.repeat is None or self._rounds < self._scenario.repeat:
                self._cursor, self._round_origin = 0, t
        c = step.connector
        if step.action == "token":
            self._events.append(TokenPresented(c, t, step.id_token or "", step.token_type))
        elif step.action in ("fault", "clear_fault"):
            code = step.code if step.action == "fault" else None
            for port in list(self._ports.values()) if c == 0 else [self._ports[c]]:
                self._change(port, t, _set_fault(port, c, code))
            if code is None:
                self._events.append(FaultCleared(c, t))
            else:
                self._events.append(Fault(c, t, code, step.text))
        else:
            port = self._ports[c]
            if step.action == "plug":
                target = step.charge_wh if step.charge_wh is not None else INF
                self._plug(port, t, step.power_w or port.info.max_power_w, target)
                port.soc_start, port.battery_wh = step.soc_percent, step.battery_wh or 0.0
            elif step.action == "unplug":
                self._unplug(port, t)
            else:  # charge, suspend, resume
                self._change(port, t, _wish(port, step))

    # random traffic

    def _traffic_due(self, port: Port) -> float | None:
        assert self._traffic is not None
        if port.phase in ("idle", "token"):
            return port.due
        if port.full_at is not None:
            return port.full_at + port.linger
        if not port.drawing():
            return port.idle_since + self._traffic.patience_s
        return None

    def _drive(self, port: Port, t: float) -> None:
        traffic = self._traffic
        assert traffic is not None
        rng = self._rngs[port.info.number]
        if port.phase == "idle":
            faulted = port.fault is not None or port.station_fault
            if not port.available or faulted or port.plugged:
                port.due = t + rng.expovariate(1 / traffic.mean_gap_s)
                return
            power = min(rng.uniform(*traffic.power_kw) * 1000, port.info.max_power_w)
            target = rng.uniform(*traffic.energy_kwh) * 1000
            token = rng.choice(traffic.tokens)
            token_at = t + rng.uniform(*traffic.token_delay_s)
            linger = rng.uniform(*traffic.linger_s)
            battery = max(rng.uniform(*traffic.battery_kwh) * 1000, target / 0.9)
            soc_start = rng.uniform(5.0, 100.0 - target / battery * 100.0)
            self._plug(port, t, power, target)
            if self._soc:
                port.soc_start, port.battery_wh = soc_start, battery
            port.phase, port.due, port.token, port.linger = "token", token_at, token, linger
        elif port.phase == "token":
            self._events.append(TokenPresented(port.info.number, t, port.token, traffic.token_type))
            port.phase = "plugged"
        else:
            self._unplug(port, t)
            port.phase = "idle"
            port.due = t + rng.expovariate(1 / traffic.mean_gap_s)


def _set_fault(port: Port, connector: int, code: str | None) -> Callable[[], None]:
    def apply() -> None:
        if connector == 0:
            port.station_fault = code is not None
        else:
            port.fault = code

    return apply


def _wish(port: Port, step: Step) -> Callable[[], None]:
    """A charge, suspend or resume step's change to the EV."""

    def apply() -> None:
        if step.action in ("suspend", "resume"):
            port.suspended = step.action == "suspend"
            return
        if step.power_w is not None:
            port.power_w = step.power_w
        if step.charge_wh is not None:
            port.target_wh = port.session_wh + step.charge_wh
            port.full_at = None

    return apply
