"""The charger node's runtime and Node, on the in-memory broker against the real Bridge.

What the sans-IO tests cannot show: frames really cross a link in the runtime's encoding, the
node boots against the bridge's reference charge system, a Reset really restarts the node, a
stop leaves everything in the outbox for the next start, status.json says what happened, and
``charger-node`` reads its options from flags, ``CHARGER_NODE_*`` and a TOML file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bridge_memory_helpers import running, until
from click.testing import CliRunner

from ocpp_iot.bridge.reference import build_reference
from ocpp_iot.charger_node.cli import main
from ocpp_iot.charger_node.dir_lock import DataDirInUse, DirLock
from ocpp_iot.charger_node.node import Node, NodeConfig, make_link, read_status
from ocpp_iot.charger_node.outbox import Outbox, OutboxStore
from ocpp_iot.charger_node.runtime import decode_frame, encode_frame
from ocpp_iot.charger_node.scenario import parse_scenario
from ocpp_iot.charger_node.simulate import run_simulation
from ocpp_iot.charger_node.simulated import SimulatedEvse
from ocpp_iot.rpc import Call, CallResult
from ocpp_iot.transports.lora.memory_radio import scaled_clock
from ocpp_iot.transports.memory import MemoryBroker
from ocpp_iot.transports.memory_link import MemoryStationLink

VERSIONS = ["1.6", "2.0.1", "2.1"]


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def actions(db: Path, station: str) -> list[str]:
    return [
        a for (a,) in rows(db, "SELECT action FROM ref_events WHERE station=? ORDER BY id", station)
    ]


def quick_scenario() -> Any:
    return parse_scenario(
        {
            "steps": [
                {"at": 1.0, "plug": 1},
                {"after": 0.1, "token": "T1"},
                {"after": 0.1, "charge_kwh": 0.01, "power_kw": 11},
                {"unplug": 1, "after_full": 0.5},
            ]
        }
    )


def make_node(broker: MemoryBroker, tmp: Path, version: str, sid: str = "CP1", **kw: Any) -> Node:
    cfg = NodeConfig(sid, version=version, data_dir=tmp / sid, **kw)
    evse = SimulatedEvse(1, seed=sid, scenario=quick_scenario())
    return Node(
        cfg, link_factory=lambda c: MemoryStationLink(broker, c.station_id), evse=evse,
        status_every=0.05,
    )  # fmt: skip


@pytest.mark.parametrize("encoding", ["cbor", "json"])
def test_frame_codecs_round_trip(encoding: str) -> None:
    call = Call("7", "Heartbeat", {})
    data = encode_frame(call, "2.0.1", encoding)  # type: ignore[arg-type]
    assert decode_frame(data, "2.0.1", json=encoding == "json") == call
    assert decode_frame(data, "2.0.1") == call  # sniffed without the link's hint
    answer = CallResult("7", {"currentTime": "2026-01-01T00:00:00Z"}, "Heartbeat")
    assert decode_frame(encode_frame(answer, "2.0.1", "cbor"), "2.0.1").payload == answer.payload


def test_a_cbor_frame_of_another_version_is_refused() -> None:
    from ocpp_iot.codecs import DecodeError

    with pytest.raises(DecodeError, match="1.6"):
        decode_frame(encode_frame(Call("1", "Heartbeat", {}), "1.6", "cbor"), "2.0.1")


@pytest.mark.parametrize("version", VERSIONS)
def test_a_charging_session_through_the_bridge(tmp_path: Path, version: str) -> None:
    db = tmp_path / "bridge.db"

    async def scenario() -> None:
        broker = MemoryBroker()
        handlers = build_reference(str(db), versions=[version])
        async with running(broker, str(db), handlers):
            node = make_node(broker, tmp_path, version, variables={
                "SampledDataCtrlr.TxUpdatedInterval": "1"})  # fmt: skip
            task = asyncio.ensure_future(node.run())

            def ended() -> bool:
                want = "StopTransaction" if version == "1.6" else "TransactionEvent"
                done = [r for r in rows(db, "SELECT stopped_reason FROM ref_transactions") if r[0]]
                return want in actions(db, "CP1") and bool(done)

            await until(ended, "the transaction to end at the back end", timeout=15)
            await until(
                lambda: node.runtime is not None and node.runtime.machine.settled,
                "the queue to empty",
            )
            node.stop()
            await asyncio.wait_for(task, 5)
        seen = actions(db, "CP1")
        assert seen[0] == "BootNotification"
        assert "StatusNotification" in seen and "Authorize" in seen
        status = read_status(tmp_path / "CP1")
        assert status is not None and status["registration"] == "accepted"
        assert status["queue_depth"] == 0 and status["transactions"] == []

    asyncio.run(scenario())


def test_a_node_on_an_accelerated_clock_keeps_its_intervals_on_that_clock(tmp_path: Path) -> None:
    """``rate``: the runtime sleeps the machine's clock seconds as wall seconds / rate (a test on
    the radio simulator's clock). Meter values every 30 clock seconds through 2 clock minutes of
    charging (plugged in 100 s after the boot), at 100 x: about 2 wall seconds (waits slept as
    clock seconds would take minutes)."""
    db = tmp_path / "bridge.db"
    rate = 100.0
    clock = scaled_clock(rate)
    stamps: list[float] = []

    def seen(direction: str, frame: Any) -> None:
        if isinstance(frame, Call) and frame.payload.get("triggerReason") == "MeterValuePeriodic":
            stamps.append(clock())

    async def scenario() -> None:
        broker = MemoryBroker()
        async with running(broker, str(db), build_reference(str(db), versions=["2.0.1"])):
            cfg = NodeConfig("CP1", data_dir=tmp_path / "CP1",
                             variables={"SampledDataCtrlr.TxUpdatedInterval": "30"})  # fmt: skip
            steps = {"steps": [
                {"at": 100, "plug": 1}, {"after": 0.1, "token": "T1"},
                {"after": 0.1, "charge_kwh": 0.37, "power_kw": 11}, {"unplug": 1, "after_full": 1},
            ]}  # fmt: skip
            evse = SimulatedEvse(1, seed="CP1", scenario=parse_scenario(steps))
            node = Node(cfg, link_factory=lambda c: MemoryStationLink(broker, c.station_id),
                        evse=evse, clock=clock, rate=rate, on_frame=seen)  # fmt: skip
            task = asyncio.ensure_future(node.run())
            done = "SELECT 1 FROM ref_transactions WHERE stopped_reason IS NOT NULL"
            await until(lambda: bool(rows(db, done)), "the transaction to end", timeout=10)
            node.stop()
            await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert len(gaps) >= 2 and all(29 < g < 34 for g in gaps), gaps


def test_reset_restarts_the_node_and_it_boots_again(tmp_path: Path) -> None:
    db = tmp_path / "bridge.db"

    async def scenario() -> None:
        broker = MemoryBroker()
        handlers = build_reference(str(db), versions=["2.0.1"])
        async with running(broker, str(db), handlers) as bridge:
            node = make_node(broker, tmp_path, "2.0.1")
            task = asyncio.ensure_future(node.run())
            await until(lambda: "BootNotification" in actions(db, "CP1"), "the first boot")
            answer = await bridge.call_station("CP1", "Reset", {"type": "Immediate"}, timeout=5)
            assert isinstance(answer, CallResult) and answer.payload == {"status": "Accepted"}
            await until(lambda: actions(db, "CP1").count("BootNotification") == 2, "a second boot")
            assert node.restarts == 1
            boots = rows(db, "SELECT payload FROM ref_events WHERE action='BootNotification'")
            assert json.loads(boots[-1][0])["reason"] == "RemoteReset"
            node.stop()
            await asyncio.wait_for(task, 5)

    asyncio.run(scenario())


def test_stop_keeps_the_transaction_for_the_next_start(tmp_path: Path) -> None:
    """A stop (or SIGTERM) in mid-transaction leaves it recorded; the next run ends it as
    PowerLoss and delivers everything queued."""
    db = tmp_path / "bridge.db"

    async def scenario() -> None:
        broker = MemoryBroker()
        handlers = build_reference(str(db), versions=["2.0.1"])
        async with running(broker, str(db), handlers):
            scen = parse_scenario(
                {"steps": [{"at": 0.1, "plug": 1}, {"after": 0.1, "token": "T1"}]}
            )
            cfg = NodeConfig("CP1", data_dir=tmp_path / "CP1")
            factory = lambda c: MemoryStationLink(broker, c.station_id)  # noqa: E731
            node = Node(cfg, link_factory=factory, evse=SimulatedEvse(1, seed=1, scenario=scen))
            task = asyncio.ensure_future(node.run())
            await until(lambda: "TransactionEvent" in actions(db, "CP1"), "the Started event")
            node.stop()
            await asyncio.wait_for(task, 5)
            left = read_status(tmp_path / "CP1")
            assert left is not None and [t["id"] for t in left["transactions"]] == ["1"]
            again = Node(cfg, link_factory=factory, evse=SimulatedEvse(1, seed=1))
            task = asyncio.ensure_future(again.run())

            def ended() -> bool:
                return bool(
                    rows(db, "SELECT 1 FROM ref_transactions WHERE stopped_reason='PowerLoss'")
                )

            await until(ended, "the transaction to be ended as PowerLoss")
            await until(
                lambda: again.runtime is not None and again.runtime.machine.settled,
                "the queue to empty",
            )
            again.stop()
            await asyncio.wait_for(task, 5)
        events = [
            json.loads(p)
            for (p,) in rows(db, "SELECT payload FROM ref_events WHERE action='TransactionEvent'")
        ]
        kinds = [(e["eventType"], e["transactionInfo"]["transactionId"]) for e in events]
        assert kinds[0] == ("Started", "1") and kinds[-1] == ("Ended", "1")
        assert [k for k, _ in kinds].count("Started") == 1 == [k for k, _ in kinds].count("Ended")
        assert [e["seqNo"] for e in events] == list(range(len(events)))
        assert events[-1]["transactionInfo"]["stoppedReason"] == "PowerLoss"

    asyncio.run(scenario())


def test_status_command_reads_what_the_node_wrote(tmp_path: Path) -> None:
    data = tmp_path / "CP1"
    data.mkdir()
    (data / "status.json").write_text(json.dumps({
        "station": "CP1", "version": "2.0.1", "online": True, "registration": "accepted",
        "last_contact": None, "queue_depth": 3, "transactions": [
            {"id": "4", "connector": 1, "started_at": 0, "energy_wh": 120.5}],
        "connectors": {"1": "Occupied"}, "written_at": 0, "pid": 1,
    }))  # fmt: skip
    result = CliRunner().invoke(main, ["status", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "CP1 (OCPP 2.0.1)" in result.output and "queue depth   3" in result.output
    assert "transaction   4 on connector 1, 120.5 Wh" in result.output
    as_json = CliRunner().invoke(main, ["status", "--data-dir", str(data), "--json"])
    assert json.loads(as_json.output)["queue_depth"] == 3
    assert "reset" not in result.output
    info = json.loads((data / "status.json").read_text()) | {"reset_scheduled": True}
    (data / "status.json").write_text(json.dumps(info))
    pending = CliRunner().invoke(main, ["status", "--data-dir", str(data)])
    assert "reset         scheduled (Reset OnIdle)" in pending.output, pending.output
    missing = CliRunner().invoke(main, ["status", "--data-dir", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0 and "no status.json" in missing.output


def test_options_from_file_environment_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flags beat CHARGER_NODE_* which beat the TOML file; an unknown key names the nearest."""
    import ocpp_iot.charger_node.cli as cli

    seen: dict[str, Any] = {}

    class Recorder:
        def __init__(self, cfg: NodeConfig) -> None:
            seen["cfg"] = cfg

        async def run(self) -> None:
            return None

        def stop(self, how: str = "stop") -> None:
            pass

    monkeypatch.setattr(cli, "Node", Recorder)
    conf = tmp_path / "node.toml"
    conf.write_text(
        '[node]\nstation_id = "FILE"\nbroker = "mqtt://file:1883"\nversion = "1.6"\n'
        'connectors = 2\nvar = ["SampledDataCtrlr.TxUpdatedInterval=30"]\nkeepalive = 300\n'
    )
    env = {"CHARGER_NODE_BROKER": "mqtt://env:1883", "CHARGER_NODE_PASSWORD": "pw",
           "CHARGER_NODE_RECONNECT_MAX_DELAY": "120", "CHARGER_NODE_MAX_QUEUE": "800"}  # fmt: skip
    result = CliRunner().invoke(
        main,
        ["run", "--config", str(conf), "--version", "2.1", "--data-dir", str(tmp_path)],
        env=env,
    )
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert (cfg.station_id, cfg.broker, cfg.version, cfg.connectors, cfg.password) == (
        "FILE", "mqtt://env:1883", "2.1", 2, "pw"
    )  # fmt: skip
    assert cfg.variables == {"SampledDataCtrlr.TxUpdatedInterval": "30"}
    assert (cfg.keepalive, cfg.reconnect_max_delay, cfg.max_queue) == (300, 120.0, 800)
    link = make_link(cfg)  # what the MQTT client is given
    settings = link.settings  # type: ignore[attr-defined]
    assert (settings.keepalive, settings.reconnect_max_delay) == (300, 120.0)
    conf.write_text('[node]\nstation_id = "X"\nbrokr = "mqtt://x"\n')
    bad = CliRunner().invoke(main, ["run", "--config", str(conf)])
    assert bad.exit_code != 0 and "brokr" in bad.output and "broker" in bad.output


def test_simulate_refuses_a_password_file_without_every_station(tmp_path: Path) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text("CP1:a\n# comment\nCP2:b\n")
    result = CliRunner().invoke(main, ["simulate", "--stations", "3", "--password-file", str(pw)])
    assert result.exit_code != 0 and "CP3" in result.output


def test_an_mqtt_node_loads_no_lora_code() -> None:
    """The LoRa link layer and cryptography (7 MiB of RSS, issue 16's footprint) are loaded only
    by a node that uses a radio: not by ``charger-node``'s command line, nor an MQTT link."""
    code = (
        "import sys\n"
        "from ocpp_iot.charger_node.cli import main\n"
        "from ocpp_iot.charger_node.node import NodeConfig, make_link\n"
        "make_link(NodeConfig('CP1'))\n"
        "heavy = ('ocpp_iot.transports.lora.', 'cryptography')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy) or "
        "m == 'ocpp_iot.transports.lora'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_simulated_stations_share_one_outbox_and_adopt_an_old_own_file(tmp_path: Path) -> None:
    """``simulate`` keeps every station's outbox in ``data_dir/outbox.db``; a station's file of
    its own from an older run is moved in and its queued message still delivered."""
    db = tmp_path / "bridge.db"
    old = tmp_path / "CP2" / "outbox.db"
    old.parent.mkdir()
    with Outbox(old) as box:  # CP2 stopped with a queued, unanswered Authorize
        box.queue_all_messages = True
        box.put("Authorize", {"idToken": {"idToken": "OLD1", "type": "ISO14443"}}, now=0.0)

    async def scenario() -> None:
        broker = MemoryBroker()
        handlers = build_reference(str(db), versions=["2.0.1"])
        async with running(broker, str(db), handlers):
            template = NodeConfig("x", data_dir=tmp_path)
            result = await run_simulation(
                template, ["CP1", "CP2"], duration=1.5, drain_timeout=10,
                link_factory=lambda c: MemoryStationLink(broker, c.station_id),
            )  # fmt: skip
            assert result.drained, result

    asyncio.run(scenario())
    assert not old.exists() and not (tmp_path / "CP1" / "outbox.db").exists()
    with OutboxStore(tmp_path / "outbox.db") as store:
        assert store.stations() == ["CP1", "CP2"]
    sql = "SELECT payload FROM ref_events WHERE station='CP2' AND action='Authorize'"
    tokens = [json.loads(p)["idToken"]["idToken"] for (p,) in rows(db, sql)]
    assert "OLD1" in tokens
    result = CliRunner().invoke(main, ["status", "--data-dir", str(tmp_path / "CP2"), "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["queue_depth"] == 0
    assert status["outbox"] == {"path": str((tmp_path / "outbox.db").resolve()), "station": "CP2"}


def test_a_simulated_station_run_on_its_own_takes_its_queue_along(tmp_path: Path) -> None:
    """``charger-node run`` on the folder of a station of ``simulate`` finds the station's
    queue in the simulation's shared store (``status.json`` names it), moves it into its own
    ``outbox.db`` and delivers it once; while a simulation holds that store, the station does
    not start (the queue would be run twice)."""
    db = tmp_path / "bridge.db"

    def left_tokens() -> list[str]:
        sql = "SELECT payload FROM ref_events WHERE station='CP2' AND action='Authorize'"
        found = [json.loads(p)["idToken"]["idToken"] for (p,) in rows(db, sql)]
        return [t for t in found if t == "LEFT1"]

    async def scenario() -> None:
        broker = MemoryBroker()
        factory = lambda c: MemoryStationLink(broker, c.station_id)  # noqa: E731
        handlers = build_reference(str(db), versions=["2.0.1"])
        async with running(broker, str(db), handlers):
            template = NodeConfig("x", data_dir=tmp_path)
            result = await run_simulation(
                template, ["CP1", "CP2"], duration=1.0, drain_timeout=10, link_factory=factory
            )
            assert result.drained, result
            with OutboxStore(tmp_path / "outbox.db", shared=True) as store:
                box = Outbox(store, station="CP2")  # CP2 stopped with an unanswered Authorize
                box.queue_all_messages = True
                box.put("Authorize", {"idToken": {"idToken": "LEFT1", "type": "ISO14443"}},
                        now=0.0)  # fmt: skip
            cfg = NodeConfig("CP2", data_dir=tmp_path / "CP2")
            with DirLock(tmp_path):  # as if the simulation were still running
                with pytest.raises(DataDirInUse):
                    Node(cfg, link_factory=factory)
            assert not (tmp_path / "CP2" / "outbox.db").exists()
            node = Node(cfg, link_factory=factory)
            task = asyncio.ensure_future(node.run())
            await until(lambda: bool(left_tokens()), "the queued Authorize", timeout=10)
            await until(
                lambda: node.runtime is not None and node.runtime.machine.settled,
                "the queue to empty",
            )
            node.stop()
            await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert left_tokens() == ["LEFT1"]
    with OutboxStore(tmp_path / "outbox.db") as store:
        assert store.stations() == ["CP1"]
    with Outbox(tmp_path / "CP2" / "outbox.db") as own:
        assert own.entries() == []
    status = read_status(tmp_path / "CP2")
    assert status is not None
    assert status["outbox"] == {
        "path": str((tmp_path / "CP2" / "outbox.db").resolve()),
        "station": "",
    }


def test_a_simulation_leaves_the_own_file_of_a_running_station_alone(tmp_path: Path) -> None:
    """A station folder whose ``charger-node run`` is still running (its ``node.lock`` held):
    the simulation does not move that station's queue into its shared store from under it."""
    own = tmp_path / "CP2" / "outbox.db"
    own.parent.mkdir()
    with Outbox(own) as box:
        box.queue_all_messages = True
        box.put("Authorize", {"idToken": {"idToken": "OWN1", "type": "ISO14443"}}, now=0.0)
    with OutboxStore(tmp_path / "outbox.db", shared=True) as store:
        with DirLock(tmp_path / "CP2"):  # the running station's lock
            with pytest.raises(DataDirInUse):
                Node(NodeConfig("CP2", data_dir=tmp_path / "CP2"), outbox_store=store)
        assert store.stations() == []
        with Outbox(own) as box:
            assert [e.action for e in box.entries()] == ["Authorize"]
        Node(NodeConfig("CP2", data_dir=tmp_path / "CP2"), outbox_store=store)  # once it stopped
        assert not own.exists() and store.stations() == ["CP2"]


def test_a_stop_asked_for_during_a_turn_ends_the_run_at_once(tmp_path: Path) -> None:
    """stop() from inside the runtime's own turn (here the hardware's events, read by the
    machine's tick, once the BootNotification is up) ends run() then, not at the machine's
    next wake-up (the boot CALL's 30 s timeout: no back end answers)."""
    from ocpp_iot.charger_node.device_model import DeviceModel
    from ocpp_iot.charger_node.runtime import StationRuntime
    from ocpp_iot.charger_node.station import StationMachine

    class StoppingEvse(SimulatedEvse):
        """Asks the runtime to stop the first time it is read after ``armed``."""

        armed = False
        runtime: StationRuntime | None = None

        def events(self, now: float) -> Any:
            if self.armed and self.runtime is not None:
                self.runtime.stop()
            return super().events(now)

    # a scheduled EVSE with nothing to do for long: the machine's wake-up is the CALL timeout
    evse = StoppingEvse(
        1, seed="CP1", scenario=parse_scenario({"steps": [{"at": 3600.0, "plug": 1}]})
    )

    async def scenario() -> float:
        machine = StationMachine(
            "CP1", "2.0.1", evse, DeviceModel(), Outbox(tmp_path / "outbox.db")
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        armed_at: list[float] = []

        def on_frame(direction: str, frame: Any) -> None:
            if direction == "up" and not evse.armed:
                evse.armed = True
                armed_at.append(loop.time())

        runtime = StationRuntime(
            machine, MemoryStationLink(MemoryBroker(), "CP1"), on_frame=on_frame
        )
        evse.runtime = runtime
        assert await asyncio.wait_for(runtime.run(), 40) is None
        return loop.time() - armed_at[0]

    assert asyncio.run(scenario()) < 5.0


def test_the_runtime_tells_the_machine_the_links_largest_frame(tmp_path: Path) -> None:
    """On a link with a largest frame (LoRa), machine.frame_fits measures a CALL in the
    runtime's encoding against it; on one without, there is no limit."""
    from ocpp_iot.charger_node.device_model import DeviceModel
    from ocpp_iot.charger_node.runtime import StationRuntime
    from ocpp_iot.charger_node.station import StationMachine

    async def scenario(max_frame: int | None) -> Any:
        machine = StationMachine(
            "CP1", "2.0.1", SimulatedEvse(1, seed="CP1"), DeviceModel(),
            Outbox(tmp_path / f"outbox-{max_frame}.db"),
        )  # fmt: skip
        link = MemoryStationLink(MemoryBroker(), "CP1")
        link.max_frame = max_frame
        runtime = StationRuntime(machine, link)
        task = asyncio.ensure_future(runtime.run())
        await until(lambda: link.up, "the link")
        fits = machine.frame_fits
        runtime.stop()
        await asyncio.wait_for(task, 10)
        return fits

    fits = asyncio.run(scenario(200))
    assert fits is not None
    small = {"eventType": "Ended", "seqNo": 1, "timestamp": "2026-12-03T08:00:00Z"}
    assert fits("TransactionEvent", small)
    assert not fits("TransactionEvent", small | {"meterValue": [{"x": "y" * 300}]})
    assert asyncio.run(scenario(None)) is None


def test_a_stop_answers_the_calls_that_already_arrived(tmp_path: Path) -> None:
    """CALLs the link took in before a stop (SIGTERM) are answered before it closes: the
    broker counts them delivered, so none would come again after the restart."""
    from ocpp_iot.codecs import cbor
    from ocpp_iot.transports.settings import MqttSettings

    db = tmp_path / "bridge.db"

    async def scenario() -> tuple[list[str], list[Any]]:
        broker = MemoryBroker()
        async with running(broker, str(db), build_reference(str(db), versions=["2.0.1"])):
            node = make_node(broker, tmp_path, "2.0.1")
            task = asyncio.ensure_future(node.run())
            booted = lambda: node.runtime is not None and node.runtime.machine.registration  # noqa: E731
            await until(lambda: booted() == "accepted", "the boot")
            spy = broker.client(MqttSettings("mqtt://memory", client_id="spy"))
            spy.subscribe("ocpp/CP1/up")
            await spy.start(5)
            ids = [f"op{n}" for n in range(5)]
            for mid in ids:
                frame = json.dumps([2, mid, "ClearCache", {}]).encode()
                spy.publish("ocpp/CP1/down", frame, 1)
            node.stop()  # in the same turn: the CALLs are in the link's inbox, not yet handled
            await asyncio.wait_for(task, 5)
            answers = []
            while True:
                try:
                    msg = await asyncio.wait_for(spy.get(), 0.2)
                except TimeoutError:
                    break
                answers.append(cbor.decode(msg.payload)[1])
            await spy.stop()
        return ids, answers

    ids, answers = asyncio.run(scenario())
    results = {a.message_id: a.payload for a in answers if isinstance(a, CallResult)}
    assert results == {mid: {"status": "Accepted"} for mid in ids}
