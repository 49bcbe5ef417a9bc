"""The charger's hardware seam (issue 16): the Evse interface, the simulated EVSE, scenario files,
and the example of a user's own Evse (examples/my_evse.py). No broker, no clock: time is passed."""

from __future__ import annotations

import bisect
import importlib.util
import json
import random
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import cast

import pytest

from ocpp_iot.charger_node.evse import (
    Connector,
    EvResumed,
    Evse,
    EvseEvent,
    EvSuspended,
    Fault,
    FaultCleared,
    MeterReading,
    Plugged,
    ScheduledEvse,
    TokenPresented,
    Unplugged,
    check_evse,
)
from ocpp_iot.charger_node.scenario import ScenarioError, load_scenario, parse_scenario
from ocpp_iot.charger_node.simulated import SimulatedEvse, Traffic


def approx(x: float) -> float:
    """``pytest.approx`` where a float goes (in an event compared whole)."""
    return cast(float, pytest.approx(x))


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "my_evse.py"


def drive(
    evse: SimulatedEvse,
    until: float,
    *,
    step: float = 5.0,
    authorize: bool = True,
    sample: bool = True,
) -> tuple[list[EvseEvent], list[tuple[int, MeterReading]]]:
    """A minimal station machine: closes the relay on a token, opens it on unplug, samples."""
    events: list[EvseEvent] = []
    readings: list[tuple[int, MeterReading]] = []
    t = 0.0
    while t <= until:
        for event in evse.events(t):
            events.append(event)
            if isinstance(event, TokenPresented) and authorize:
                evse.set_relay(event.connector, True, t)
            elif isinstance(event, Unplugged):
                evse.set_relay(event.connector, False, t)
        if sample:
            readings += [(c.number, evse.meter(c.number, t)) for c in evse.connectors]
        t += step
    return events, readings


def sessions(events: list[EvseEvent], connector: int) -> list[list[EvseEvent]]:
    """The connector's events cut into plug-in sessions (each starting with Plugged)."""
    out: list[list[EvseEvent]] = []
    for event in events:
        if event.connector != connector:
            continue
        if isinstance(event, Plugged):
            out.append([])
        out[-1].append(event)
    return out


SESSION = {
    "steps": [
        {"at": 0, "plug": 1},
        {"after": 5, "token": "ABC"},
        {"after": 5, "charge_kwh": 5, "power_kw": 11},
        {"unplug": 1, "after_full": 60},
    ]
}


# --- the interface


def test_simulated_evse_is_an_evse() -> None:
    evse = SimulatedEvse(connectors=2, phases=1)
    assert isinstance(evse, Evse) and isinstance(evse, ScheduledEvse)
    assert check_evse(evse) is evse
    assert [(c.number, c.evse_id, c.connector_id, c.phases) for c in evse.connectors] == [
        (1, 1, 1, 1),
        (2, 2, 1, 1),
    ]
    assert evse.connectors[0].max_power_w == pytest.approx(230 * 32)


def test_check_evse_names_what_is_missing() -> None:
    class Half:
        connectors = [Connector(1, 1)]

        def events(self, now: float) -> list[EvseEvent]:
            return []

    with pytest.raises(TypeError, match="Half is not an Evse: no meter, set_relay, unlock"):
        check_evse(Half())
    evse = SimulatedEvse(connectors=[Connector(1, 1), Connector(2, 1, 2)])
    assert [c.connector_id for c in evse.connectors] == [1, 2]
    with pytest.raises(ValueError, match="numbered 1..N"):
        SimulatedEvse(connectors=[Connector(2, 1)])
    with pytest.raises(ValueError, match="phases must be 1 or 3"):
        Connector(1, 1, phases=2)


# --- determinism


def test_same_seed_same_events_and_readings() -> None:
    def run(seed: int) -> tuple[list[EvseEvent], list[tuple[int, MeterReading]]]:
        return drive(SimulatedEvse(connectors=2, seed=seed, soc=True), 20_000, step=13.0)

    first, again, other = run(7), run(7), run(8)
    assert len(first[0]) > 10
    assert first == again
    assert first[0] != other[0] and first[1] != other[1]


def test_reading_the_meter_more_often_changes_nothing_else() -> None:
    """Noise depends on (seed, connector, time) only: extra reads leave events and the readings at
    the common times as they were."""
    sparse, dense = SimulatedEvse(seed=3), SimulatedEvse(seed=3)
    sparse_log: list[EvseEvent] = []
    dense_log: list[EvseEvent] = []
    for k in range(4000):
        t = k * 5.0
        for evse, log in ((sparse, sparse_log), (dense, dense_log)):
            for event in evse.events(t):
                log.append(event)
                if isinstance(event, TokenPresented):
                    evse.set_relay(1, True, t)
        if k % 3:
            dense.meter(1, t + 1.0)
        if k % 3 == 0:
            assert sparse.meter(1, t) == dense.meter(1, t)
    assert sparse_log == dense_log and len(sparse_log) > 4


# --- the physics


def test_energy_is_the_integral_of_power_sampled_at_irregular_times() -> None:
    """Over a day of random sessions (relay toggled by the machine, EVs getting full) the register
    grows by what a left Riemann sum of the sampled power gives, to within what the sampling can
    miss at each power change; and with the exact change times, to rounding."""
    evse = SimulatedEvse(connectors=1, seed=11, traffic=Traffic(mean_gap_s=600))
    rng = random.Random(1)
    t, total, changes = 0.0, 0.0, 0
    first = evse.meter(1, t)
    last = first
    max_gap = 0.0
    while t < 86_400:
        gap = rng.uniform(0.2, 40.0)
        max_gap = max(max_gap, gap)
        t += gap
        total += last.power_w * gap / 3600
        reading = evse.meter(1, t)
        for event in evse.events(t):
            if isinstance(event, TokenPresented):
                evse.set_relay(1, True, t)
            if isinstance(event, Unplugged):
                evse.set_relay(1, False, t)
        changes += reading.power_w != last.power_w
        assert reading.energy_wh >= last.energy_wh  # monotonic register
        last = evse.meter(1, t)
    grown = last.energy_wh - first.energy_wh
    assert changes >= 10 and grown > 20_000
    assert abs(grown - total) <= changes * 11_000 * max_gap / 3600
    assert abs(grown - total) / grown < 0.01


def test_energy_exact_for_a_known_session() -> None:
    """5 kWh at 11 kW: full after 5/11 h of closed relay; the register at stop is start + 5 kWh."""
    evse = SimulatedEvse(scenario=parse_scenario(SESSION), start=0.0, start_wh=123_456.0)
    assert evse.events(10.0) == [Plugged(1, 0.0), TokenPresented(1, 5.0, "ABC", "ISO14443")]
    evse.set_relay(1, True, 10.0)
    half = evse.meter(1, 10.0 + 900)
    assert half.power_w == 11_000
    assert half.energy_wh == pytest.approx(123_456.0 + 11_000 * 900 / 3600)
    full_at = 10.0 + 5 / 11 * 3600
    assert evse.next_event_at() == pytest.approx(full_at)
    assert evse.events(full_at + 59) == [EvSuspended(1, approx(full_at))]
    assert evse.meter(1, full_at + 59).power_w == 0
    assert evse.events(full_at + 61) == [Unplugged(1, approx(full_at + 60))]
    assert evse.meter(1, 100_000).energy_wh == pytest.approx(123_456.0 + 5000, abs=1e-6)
    assert evse.next_event_at() is None


def test_relay_open_no_power_and_energy_constant() -> None:
    scenario = parse_scenario([{"at": 0, "plug": 1, "power_kw": 7.2}])
    evse = SimulatedEvse(scenario=scenario, start=0.0, phases=1)
    idle = [evse.meter(1, t) for t in (1.0, 50.0, 600.0)]
    assert all(r.power_w == 0 and r.current_a == (0.0,) for r in idle)
    assert len({r.energy_wh for r in idle}) == 1
    evse.set_relay(1, True, 600.0)
    on = evse.meter(1, 1200.0)
    assert on.power_w == 7200 and on.energy_wh == pytest.approx(idle[0].energy_wh + 7200 / 6)
    evse.set_relay(1, False, 1200.0)
    off = [evse.meter(1, t) for t in (1200.0, 1300.0, 5000.0)]
    assert all(r.power_w == 0 and r.energy_wh == on.energy_wh for r in off)
    assert evse.unlock(1, 5000.0)
    evse.set_relay(1, True, 5000.0)
    assert not evse.unlock(1, 5000.0)  # never a live cable


@pytest.mark.parametrize("phases", [1, 3])
def test_phases_add_up_to_power(phases: int) -> None:
    evse = SimulatedEvse(seed=5, phases=phases, scenario=parse_scenario([{"at": 0, "plug": 1}]))
    evse.set_relay(1, True, 0.0)
    for t in range(1, 200):
        r = evse.meter(1, float(t))
        assert r.phases == phases == len(r.voltage_v)
        assert r.power_w == pytest.approx(phases * 230 * 32)
        assert sum(i * v for i, v in zip(r.current_a, r.voltage_v, strict=True)) == pytest.approx(
            r.power_w, rel=1e-9
        )
        assert all(227.6 <= v <= 232.4 for v in r.voltage_v)  # 230 V +- 1 %
        assert all(
            abs(i - r.power_w / phases / 230) < 0.03 * r.power_w / phases / 230 for i in r.current_a
        )
    assert len({r.voltage_v for r in (evse.meter(1, 300.0), evse.meter(1, 301.0))}) == 2
    assert evse.meter(1, 302) == evse.meter(1, 302.0)  # an int time is the same time


def test_faults_cut_power_and_are_reported() -> None:
    scenario = parse_scenario(
        [
            {"at": 0, "plug": 1},
            {"at": 0, "plug": 2},
            {"at": 100, "fault": "GroundFailure", "text": "RCD tripped"},
            {"at": 200, "clear_fault": 1},
            {"at": 300, "fault": "OverVoltage", "connector": 0},
            {"at": 400, "clear_fault": 0},
        ]
    )
    evse = SimulatedEvse(2, scenario=scenario, start=0.0)
    evse.set_relay(1, True, 0.0)
    evse.set_relay(2, True, 0.0)
    assert evse.events(150.0)[2:] == [Fault(1, 100.0, "GroundFailure", "RCD tripped")]
    assert evse.meter(1, 150.0).power_w == 0 and evse.meter(2, 150.0).power_w > 0
    assert evse.events(350.0) == [FaultCleared(1, 200.0), Fault(0, 300.0, "OverVoltage", "")]
    assert evse.meter(1, 350.0).power_w == 0 == evse.meter(2, 350.0).power_w
    assert evse.events(450.0) == [FaultCleared(0, 400.0)]
    on = [evse.meter(c, 450.0) for c in (1, 2)]
    assert all(r.power_w > 0 for r in on)
    # connector 1 drew for 0-100, 200-300 and 400-450 s; connector 2 for 0-300 and 400-450 s
    start = SimulatedEvse(2, scenario=scenario).registers()
    p = 3 * 230 * 32
    assert on[0].energy_wh - start[1] == pytest.approx(p * 250 / 3600)
    assert on[1].energy_wh - start[2] == pytest.approx(p * 350 / 3600)


def test_suspend_resume_and_a_new_wish() -> None:
    scenario = parse_scenario(
        [
            {"at": 0, "plug": 1, "charge_kwh": 1, "power_kw": 3.6},
            {"at": 100, "suspend": 1},
            {"at": 200, "resume": 1},
            {"at": 5000, "charge_kwh": 0.5},
            {"after": 10, "power_kw": 1.8},
            {"at": 9000, "unplug": 1},
        ]
    )
    evse = SimulatedEvse(scenario=scenario, start=0.0, start_wh=0.0)
    evse.set_relay(1, True, 0.0)
    events = evse.events(10_000.0)
    full = 200 + 900  # 100 Wh before the pause, 900 Wh at 3.6 kW after
    assert events == [
        Plugged(1, 0.0),
        EvSuspended(1, 100.0),
        EvResumed(1, 200.0),
        EvSuspended(1, approx(full)),
        EvResumed(1, 5000.0),
        EvSuspended(1, approx(5010 + 490 / 1800 * 3600)),
        Unplugged(1, 9000.0),
    ]
    assert evse.registers()[1] == pytest.approx(1500.0)


def test_state_of_charge_rises_with_energy() -> None:
    scenario = parse_scenario([{"at": 0, "plug": 1, "soc": 20, "battery_kwh": 50}])
    evse = SimulatedEvse(scenario=scenario, start=0.0)
    assert evse.meter(1, 0.0).soc_percent == 20
    evse.set_relay(1, True, 0.0)
    assert evse.meter(1, 3600.0).soc_percent == pytest.approx(20 + 22.08 / 50 * 100)
    assert evse.meter(1, 36_000.0).soc_percent == 100
    assert SimulatedEvse().meter(1, 0.0).soc_percent is None


def test_register_persists_across_a_restart_and_time_only_goes_forward() -> None:
    evse = SimulatedEvse(seed=2)
    drive(evse, 30_000, sample=False)
    saved = evse.registers()
    again = SimulatedEvse(seed=2, start_wh=saved)
    assert again.meter(1, 0.0).energy_wh == saved[1]
    assert SimulatedEvse(seed=2).meter(1, 0.0).energy_wh == SimulatedEvse(seed=2).registers()[1]
    assert 100_000 <= SimulatedEvse(seed=9).registers()[1] <= 5_000_000  # not a new meter
    with pytest.raises(ValueError, match="backwards"):
        evse.meter(1, 10.0)
    with pytest.raises(ValueError, match="no connector 3"):
        evse.meter(3, 40_000.0)


# --- random traffic


def test_random_traffic_makes_complete_sessions_within_bounds() -> None:
    traffic = Traffic(mean_gap_s=1200, power_kw=(4.0, 9.0), energy_kwh=(3.0, 12.0))
    evse = SimulatedEvse(connectors=3, seed=4, traffic=traffic, start_wh=0.0)
    events, readings = drive(evse, 3 * 86_400, step=10.0)
    assert all(e.at <= 3 * 86_400 for e in events)
    for c in (1, 2, 3):
        mine = [r for n, r in readings if n == c]
        times = [r.timestamp for r in mine]
        assert [r.energy_wh for r in mine] == sorted(r.energy_wh for r in mine)

        def at(t: float, times: list[float] = times) -> int:
            return bisect.bisect_left(times, t)  # the first reading at or after t

        done = [s for s in sessions(events, c) if isinstance(s[-1], Unplugged)]
        assert len(done) >= 5
        for s in done:
            kinds = [type(e) for e in s]
            assert kinds == [Plugged, TokenPresented, EvSuspended, Unplugged], kinds
            assert [e.at for e in s] == sorted(e.at for e in s)
            token = s[1]
            assert isinstance(token, TokenPresented) and token.id_token in traffic.tokens
            assert 2.0 <= s[1].at - s[0].at <= 15.0
            assert 0 <= s[3].at - s[2].at <= 300.0
            charging = mine[at(s[1].at) + 1 : at(s[2].at)]
            power = {r.power_w for r in charging}
            assert len(power) == 1 and 4000 <= power.pop() <= 9000
            got = mine[at(s[3].at)].energy_wh - mine[at(s[0].at) - 1].energy_wh
            assert 3000 - 1e-6 <= got <= 12_000 + 1e-6
            assert all(r.power_w == 0 for r in mine[at(s[2].at) + 1 : at(s[3].at)])


def test_random_ev_gives_up_when_not_authorized_and_avoids_unavailable() -> None:
    traffic = Traffic(mean_gap_s=300, patience_s=120)
    evse = SimulatedEvse(seed=6, traffic=traffic)
    events, readings = drive(evse, 20_000, step=3.0, authorize=False)
    done = [s for s in sessions(events, 1) if isinstance(s[-1], Unplugged)]
    assert len(done) >= 10
    for s in done:
        assert [type(e) for e in s] == [Plugged, TokenPresented, Unplugged]
        assert s[-1].at - s[0].at == pytest.approx(120)
    assert {r.power_w for _, r in readings} == {0.0}
    quiet = SimulatedEvse(seed=6, traffic=traffic)
    quiet.set_available(1, False, 0.0)
    assert quiet.events(50_000.0) == []
    quiet.set_available(1, True, 50_000.0)
    assert any(isinstance(e, Plugged) for e in quiet.events(60_000.0))


def test_next_event_at_says_when_to_poll() -> None:
    evse = SimulatedEvse(connectors=2, seed=1, start=0.0)
    seen = 0
    for _ in range(30):
        due = evse.next_event_at()
        assert due is not None
        assert evse.events(due - 1e-6) == []
        got = evse.events(due)
        assert got and all(e.at == pytest.approx(due) for e in got)
        seen += len(got)
        for e in got:
            if isinstance(e, TokenPresented):
                evse.set_relay(e.connector, True, due)
    assert seen >= 30


# --- scenario files

GOOD_TOML = """
name = "one session"
steps = [
  { at = 0, plug = 1 },
  { after = 5, token = "ABC" },
  { after = 5, charge_kwh = 5, power_kw = 11 },
  { unplug = 1, after_full = 60 },
]
"""


def test_scenario_files_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(GOOD_TOML)
    js = tmp_path / "s.json"
    js.write_text(json.dumps(SESSION))
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(SESSION["steps"]))
    a, b, c = load_scenario(toml), load_scenario(js), load_scenario(bare)
    assert a.steps == b.steps == c.steps
    assert [s.action for s in a.steps] == ["plug", "token", "charge", "unplug"]
    assert a.steps[2].charge_wh == 5000 and a.steps[2].power_w == 11_000
    assert a.steps[3].after_full == 60 and a.source == str(toml)
    run = SimulatedEvse(scenario=toml, start=0.0)  # a path works too
    assert [type(e) for e in run.events(10.0)] == [Plugged, TokenPresented]


def test_scenario_repeat() -> None:
    steps = [
        {"after": 100, "plug": 1, "charge_kwh": 1, "power_kw": 3.6},
        {"after": 5, "token": "ABC"},
        {"unplug": 1, "after_full": 10},
    ]
    evse = SimulatedEvse(scenario=parse_scenario({"steps": steps, "repeat": 3}), start=0.0)
    events, _ = drive(evse, 100_000, step=1.0, sample=False)
    # a round: 100 s idle, plugged, token 5 s later (relay closed at the next poll, t = 105),
    # 1000 s of charging, 10 s to unplug: 1115 s
    plugs = [e.at for e in events if isinstance(e, Plugged)]
    assert plugs == [100.0, 1215.0, 2330.0]
    assert len([e for e in events if isinstance(e, Unplugged)]) == 3
    assert evse.next_event_at() is None
    forever = SimulatedEvse(scenario=parse_scenario({"steps": steps, "repeat": True}), start=0.0)
    events, _ = drive(forever, 100_000, step=1.0, sample=False)
    assert len([e for e in events if isinstance(e, Plugged)]) == 100_000 // 1115 + 1
    toml = parse_scenario(
        tomllib.loads("repeat = 2\nsteps = [{ at = 1, plug = 1 }, { at = 9, unplug = 1 }]")
    )
    assert toml.repeat == 2
    for bad, message in [
        ({"steps": [{"at": 0, "plug": 1}], "repeat": 2}, r"connector 1 \(step 1\) is still plu"),
        ({"steps": [{"at": 0, "plug": 1}, {"at": 0, "unplug": 1}], "repeat": True}, "no time"),
        ({"steps": steps, "repeat": 0}, "repeat must be a count from 1"),
    ]:
        with pytest.raises(ScenarioError, match=message):
            parse_scenario(bad)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [{"at": 0, "plug": 1}, {"at": 5, "plug": 1}],
            r"step 2 \(plug\).*already plugged \(step 1",
        ),
        ([{"at": 0, "unplug": 1}], r"step 1 \(unplug\): connector 1 is not plugged"),
        ([{"at": 0, "plug": 1}, {"at": 1}], r"step 2: needs exactly one of plug"),
        ([{"at": 0, "plug": 1, "token": "A"}], r"step 1: .*found plug and token"),
        ([{"plug": 1}], r"step 1 \(plug\): needs exactly one of at, after, after_full"),
        ([{"at": 0, "plug": 1}, {"at": -1, "token": "A"}], r"step 2 \(token\): at must be at le"),
        ([{"at": 9, "plug": 1}, {"at": 3, "unplug": 1}], r"step 2 \(unplug\): at = 3 is before"),
        ([{"at": 0, "plug": 1, "colour": "red"}], r"step 1 \(plug\): unknown key\(s\) colour"),
        ([{"at": 0, "plug": 1}, {"at": 1, "charge_kwh": 0}], r"step 2 \(charge\): charge_kwh m"),
        ([{"at": 0, "plug": 1}, {"at": 1, "power_kw": "fast"}], r"step 2 \(charge\): power_kw"),
        ([{"at": 0, "plug": True}], r"step 1 \(plug\): plug must be a connector number"),
        ([{"at": 0, "token": ""}], r"step 1 \(token\): token must be a string of 1 to 255"),
        ([{"at": 0, "plug": 1}, {"after_full": 5, "unplug": 1}], r"step 2 .*has no charge_kwh"),
        ([{"after_full": 5, "plug": 1}], r"step 1 \(plug\): after_full is for unplug steps"),
        ([{"at": 0, "plug": 1, "soc": 20}], r"step 1 \(plug\): soc and battery_kwh go together"),
        ([{"at": 0, "plug": 1}, 7], r"step 2: a step is a table"),
        ([], r"steps must be a non-empty list"),
    ],
)
def test_bad_scenarios_name_the_step(steps: list[object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario({"steps": steps}, source="bad.toml")


def test_bad_scenario_files_and_connectors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("steps = [ { at = 0, plug = 1 }")
    with pytest.raises(ScenarioError, match=r"broken.toml: not valid toml"):
        load_scenario(broken)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")
    with pytest.raises(ScenarioError, match="unknown key"):
        parse_scenario({"steps": [{"at": 0, "plug": 1}], "stepz": []})
    third = parse_scenario([{"at": 0, "plug": 3}], source="x.json")
    with pytest.raises(ScenarioError, match=r"x.json: step 1 \(plug\): no connector 3"):
        SimulatedEvse(2, scenario=third)
    fast = parse_scenario([{"at": 0, "plug": 1, "power_kw": 50}])
    with pytest.raises(ScenarioError, match=r"step 1 \(plug\): power_kw = 50 is above .* 7.36 kW"):
        SimulatedEvse(1, phases=1, scenario=fast)


# --- the example of a user's own Evse


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("my_evse_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_example_is_an_evse(example: ModuleType) -> None:
    evse = example.MyEvse(example.FakeHardware())
    assert isinstance(evse, Evse) and check_evse(evse) is evse
    assert not isinstance(evse, ScheduledEvse)
    assert [c.number for c in evse.connectors] == [1]
    assert isinstance(example.PiHardware, type)  # the sketch imports without gpiozero


def test_example_session_on_fake_hardware(example: ModuleType) -> None:
    hw = example.FakeHardware()
    evse = example.MyEvse(hw)
    assert evse.events(0.0) == []
    hw.pilot, hw.card = "B", "04A1B2C3D4E5F6"
    assert evse.events(1.0) == [Plugged(1, 1.0), TokenPresented(1, 1.0, "04A1B2C3D4E5F6")]
    evse.set_relay(1, True, 2.0)
    assert not hw.contactor  # IEC 61851: not before the EV asks (state C)
    assert evse.events(3.0) == [EvSuspended(1, 3.0)]
    hw.pilot = "C"
    assert evse.events(4.0) == [EvResumed(1, 4.0)] and hw.contactor
    assert not evse.unlock(1, 4.0)
    hw.meter = example.RawMeter(1300.0, 11_000.0, (230.0, 231.0, 229.0), (16.0, 16.0, 16.0))
    r = evse.meter(1, 5.0)
    assert (r.energy_wh, r.power_w, r.voltage_v) == (1_300_000.0, 11_000.0, (230.0, 231.0, 229.0))
    hw.meter = example.RawMeter(0.0, 0.0, (230.0,) * 3, (0.0,) * 3)  # a bad read
    assert evse.meter(1, 6.0).energy_wh == 1_300_000.0  # never backwards
    hw.welded = True
    evse.set_relay(1, False, 7.0)
    hw.pilot = "B"
    assert evse.events(8.0) == [Fault(1, 8.0, "PowerSwitchFailure", "found by MyEvse")]
    hw.welded = False
    hw.pilot = "A"
    assert evse.events(9.0) == [Unplugged(1, 9.0), FaultCleared(1, 9.0)]
    assert evse.unlock(1, 9.0) and not hw.locked
    evse.set_available(1, False, 10.0)
    assert hw.light == "red"


def test_example_demo_runs(example: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    example.demo()
    out = capsys.readouterr().out
    assert "Plugged" in out and "Unplugged" in out and "unlock: True" in out


def test_the_traffic_stream_is_seeded_uniform_and_small() -> None:
    import math
    import sys

    from ocpp_iot.charger_node.simulated import Stream

    one, same, other = Stream("CP1:traffic:1"), Stream("CP1:traffic:1"), Stream("CP2:traffic:1")
    xs = [one.random() for _ in range(20_000)]
    assert xs == [same.random() for _ in range(20_000)]
    assert xs[:100] != [other.random() for _ in range(100)]
    assert all(0.0 <= x < 1.0 for x in xs)
    assert abs(sum(xs) / len(xs) - 0.5) < 0.01  # 0.5 +- ~5 sigma
    tenths = [sum(1 for x in xs if k / 10 <= x < (k + 1) / 10) for k in range(10)]
    assert min(tenths) > 1800 and max(tenths) < 2200  # 2,000 each +- ~7 sigma
    gaps = [one.expovariate(1 / 600) for _ in range(20_000)]
    assert abs(sum(gaps) / len(gaps) - 600) < 30 and min(gaps) >= 0
    assert not math.isinf(max(gaps))
    assert {one.choice("abc") for _ in range(200)} == {"a", "b", "c"}
    assert 1.0 <= one.uniform(1.0, 2.0) < 2.0
    assert sys.getsizeof(one) < 100  # a Mersenne Twister is 2.5 KiB
