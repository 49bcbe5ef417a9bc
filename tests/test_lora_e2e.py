"""LoRa end to end through the radio simulator, for each of the three modems (issue 17, "How it
is checked": a full charging session from ``charger-node`` to ``bridge serve`` and back,
including a ``bridge call`` to the station).

Real processes throughout, as deployed: mosquitto with the project's ACL (the gateway logs in
as its own user ``lora-gw``), ``bridge serve`` with the reference charge system, ``bridge
lora-gateway`` on the simulator's pty 0 and ``charger-node run --link lora`` on its pty 1
(both driving their real modem drivers: nothing in them knows the port is a pty), the station
provisioned with ``bridge add-station --lora``; the simulator (:class:`Simulator`) in this
process, so that its own duty-cycle check is asserted. OCPP 2.0.1, a short session (plug,
card, 10 Wh at 11 kW, unplug), then ``bridge call`` twice (GetVariables, and TriggerMessage
Heartbeat: the triggered Heartbeat must reach the back end too).

Time: the radio runs in real time (``rate=1``), at SF7: the commands take no rate of radio
time to wall time, and a simulator faster than the processes' own radio clocks would judge
their duty cycle on another clock than theirs. At SF7 the whole session is about 1.5 s on air,
so real time costs little; the case's wall time is the scenario and the process starts.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import USERS, BridgeProcess, Probe
from node_processes import (
    BRIDGE,
    NodeProcess,
    check_exactly_once,
    check_transactions,
    ref_events,
    summary,
    transactions,
    wait_until,
    write_scenario,
)

from ocpp_iot.bridge.lora_gateway import GATEWAY_FREQUENCY as GATEWAY_HZ
from ocpp_iot.bridge.lora_gateway import STATION_FREQUENCY as STATION_HZ
from ocpp_iot.testing import Mosquitto
from ocpp_iot.transports.lora.sim import Simulator

STATION = "CP1"
GATEWAY_USER, GATEWAY_PASSWORD = "lora-gw", "pw-lora-gw"
SF = 7
UPDATED_EVERY = 1  # SampledDataCtrlr.TxUpdatedInterval, seconds
#: plug a moment after the start (the boot is accepted by then: a card shown before would be
#: refused offline), then the card, 10 Wh at 11 kW (3.3 s), unplugged 0.3 s after full
SCENARIO = [
    {"at": 2.5, "plug": 1},
    {"after": 0.2, "token": "TOK-LORA"},
    {"after": 0.1, "charge_kwh": 0.01, "power_kw": 11},
    {"unplug": 1, "after_full": 0.3},
]


@dataclass(frozen=True)
class Case:
    """One modem kind: its frequency plan and the simulated modules' own settings."""

    modem: str
    #: where the station and the gateway transmit (None: the defaults, 868.1 / 869.525 MHz)
    station_hz: int | None = None
    gateway_hz: int | None = None
    #: simulated modem options: for all radios, and per radio (0: gateway, 1: station)
    options: dict[str, Any] = field(default_factory=dict)
    radio_options: list[dict[str, Any]] | None = None

    def gateway_args(self) -> list[str]:
        args = ["--modem", self.modem, "--sf", str(SF)]
        if self.gateway_hz is not None:
            args += ["--frequency", str(self.gateway_hz)]
        if self.station_hz is not None:
            args += ["--station-frequency", str(self.station_hz)]
        return args

    def station_args(self) -> list[str]:
        args = ["--lora-modem", self.modem, "--lora-sf", str(SF)]
        if self.station_hz is not None:
            args += ["--lora-frequency", str(self.station_hz)]
        if self.gateway_hz is not None:
            args += ["--lora-gateway-frequency", str(self.gateway_hz)]
        return args


CASES = [
    Case("rak3172"),
    Case("rylr998"),
    # The E22's channels are 850.125 + n MHz (none in the 10 % sub-band at 125 kHz, see
    # docs/lora.md): the station on 868.125 MHz (channel 18), the gateway on 867.125 MHz (17).
    # A module listens on the channel set in its configuration mode, and its air rate is set
    # there too: the simulated modules' options, as an installer would have set them.
    Case(
        "e22",
        station_hz=868_125_000,
        gateway_hz=867_125_000,
        options={"sf": SF},
        radio_options=[{"channel": 18}, {"channel": 17}],
    ),
]


@dataclass
class Site:
    case: Case
    broker: Mosquitto
    bridge: BridgeProcess
    sim: Simulator
    gateway: NodeProcess
    node: NodeProcess
    tmp: Path

    def call(self, action: str, payload: dict[str, Any]) -> Any:
        """``bridge call`` (the command line, the operator's user): the station's answer."""
        args = [*BRIDGE, "call", "--broker", self.broker.url, "--username", "operator"]
        args += ["--timeout", "20", STATION, action, json.dumps(payload)]
        env = {**os.environ, "BRIDGE_PASSWORD": USERS["operator"]}
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{self.logs()}"
        frame = json.loads(done.stdout.strip().splitlines()[-1])
        assert frame[0] == 3, frame  # a CALLRESULT
        return frame[2]

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{text[-3000:]}"
            for name, text in (
                ("gateway", self.gateway.log()),
                ("node", self.node.log()),
                ("bridge", self.bridge.log()),
            )  # fmt: skip
        )


def provision(tmp: Path) -> tuple[Path, int, str]:
    """``bridge add-station --lora`` for the station: (stations file, address, key)."""
    stations = tmp / "gateway" / "lora-stations.json"
    done = subprocess.run(
        [*BRIDGE, "add-station", "--lora", STATION, "--stations-file", str(stations)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    address = re.search(r"--lora-address (\d+)", done.stdout)
    key = re.search(r"lora key: ([0-9a-f]{32})", done.stdout)
    assert address is not None and key is not None, done.stdout
    return stations, int(address.group(1)), key.group(1)


@pytest.fixture
def site(
    request: pytest.FixtureRequest, broker: Mosquitto, bridge_process: Any, tmp_path: Path
) -> Iterator[Site]:
    case: Case = request.param
    broker.add_user(GATEWAY_USER, GATEWAY_PASSWORD)  # the gateway's own user (the ACL has it)
    stations, address, key = provision(tmp_path)
    bridge = bridge_process()  # online (subscribed) before anything is published
    sim = Simulator(case.modem, 2, rate=1.0, options=case.options,
                    radio_options=case.radio_options, seed=17)  # fmt: skip
    gateway = NodeProcess(
        ["lora-gateway", "--port", sim.paths[0], *case.gateway_args(), "--broker", broker.url,
         "--username", GATEWAY_USER, "--stations", str(stations), "--log-level", "INFO"],
        tmp_path / "gateway.log", env={"BRIDGE_PASSWORD": GATEWAY_PASSWORD}, program=BRIDGE,
    )  # fmt: skip
    scenario = write_scenario(tmp_path / "scenario.json", SCENARIO)
    node = NodeProcess(
        ["run", "--station-id", STATION, "--data-dir", str(tmp_path / "node"), "--version",
         "2.0.1", "--link", "lora", "--lora-port", sim.paths[1], *case.station_args(),
         "--lora-address", str(address), "--scenario", str(scenario), "--var",
         f"SampledDataCtrlr.TxUpdatedInterval={UPDATED_EVERY}", "--log-level", "INFO"],
        tmp_path / "node.log", env={"CHARGER_NODE_LORA_KEY": key},
    )  # fmt: skip
    s = Site(case, broker, bridge, sim, gateway, node, tmp_path)
    with sim:
        try:
            gateway.start()
            # the station starts once the gateway listens (its boot would wait for a retry)
            wait_until(lambda: "lora-gateway: modem open" in gateway.log(), 20,
                       "the gateway's modem", details=s.logs)  # fmt: skip
            yield s
        finally:
            node.close()
            gateway.close()


def ended(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            sql = "SELECT 1 FROM ref_transactions WHERE station=? AND stopped_reason IS NOT NULL"
            return bool(conn.execute(sql, (STATION,)).fetchall())
    except sqlite3.OperationalError:  # the table is not there yet
        return False


@pytest.mark.parametrize("site", CASES, indirect=True, ids=[c.modem for c in CASES])
def test_a_charging_session_and_calls_over_the_simulated_radio(site: Site) -> None:
    s = site
    topics = [f"ocpp/{STATION}/status", f"ocpp/{STATION}/json/up"]
    watch = Probe(s.broker.url, "operator", topics)
    try:
        s.node.start()
        wait_until(lambda: ended(s.bridge.db), 40, "the transaction's end at the back end",
                   details=lambda: summary(ref_events(s.bridge.db)) + "\n" + s.logs())  # fmt: skip
        # -- what the back end recorded: the boot, then one transaction in order
        events = ref_events(s.bridge.db, STATION)
        assert events[0].action == "BootNotification", summary(events)
        assert {e.version for e in events} == {"2.0.1"}
        problems = check_exactly_once(events) + check_transactions(events)
        assert not problems, f"{problems}\n{summary(events)}"
        (tx,) = transactions(events).values()
        kinds = [e.event_type for e in tx]
        updated = kinds.count("Updated")
        assert kinds == ["Started", *["Updated"] * updated, "Ended"], kinds
        assert updated >= 2, kinds  # 3.3 s of charging, a reading every second
        assert [e.seq_no for e in tx] == list(range(len(tx)))
        assert tx[-1].payload["transactionInfo"]["stoppedReason"] == "EVDisconnected"
        assert "Authorize" in [e.action for e in events]
        # the gateway spoke for the station: online on its status topic
        watch.wait_for(lambda m: m.topic.endswith("/status") and m.payload == b"online", 5)
        # -- the back end calls the station: the answers come back over the radio
        answer = s.call("GetVariables", {"getVariableData": [{
            "component": {"name": "SampledDataCtrlr"},
            "variable": {"name": "TxUpdatedInterval"}}]})  # fmt: skip
        (result,) = answer["getVariableResult"]
        assert result["attributeStatus"] == "Accepted", answer
        assert result["attributeValue"] == str(UPDATED_EVERY), answer
        watch.drain(0.0)
        answer = s.call("TriggerMessage", {"requestedMessage": "Heartbeat"})
        assert answer == {"status": "Accepted"}
        # the triggered Heartbeat, as the bridge mirrors what the station sent (OCPP-J)
        watch.wait_for(lambda m: m.topic.endswith("/json/up")
                       and json.loads(m.payload)[:3:2] == [2, "Heartbeat"], 20)  # fmt: skip
    finally:
        watch.close()
    # -- clean stops (the gateway's drain, the station's state written)
    assert s.node.terminate(30) == 0, s.logs()
    assert s.gateway.terminate(30) == 0, s.logs()
    assert json.loads((s.tmp / "node" / "lora-state.json").read_text())["state"]["send"]
    # -- the radio: both ends on air, in their sub-bands, within the duty cycle (the
    # simulator's own account of every transmission, not the ledgers under test)
    assert s.sim.errors == []
    assert s.sim.violations == []
    s.sim.check_duty_cycle()
    case = s.case
    plan = {f"{case.modem}-0": case.gateway_hz or GATEWAY_HZ,
            f"{case.modem}-1": case.station_hz or STATION_HZ}  # fmt: skip
    on_air: dict[str, set[int]] = {}
    for t in s.sim.transmissions():
        on_air.setdefault(t.sender.name, set()).add(t.frequency_hz)
    assert on_air == {name: {hz} for name, hz in plan.items()}, on_air
    counts = s.sim.counts()
    print(f"{case.modem}: {dict(counts)}")
    assert counts["delivered"] >= counts["transmissions"] - 2, counts  # a clean channel
