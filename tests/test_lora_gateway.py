"""The LoRa gateway between charger nodes on a radio and the real bridge (issue 17, "gateway").

A charger :class:`Node` whose link is a LoraStationLink on the in-memory radio, the gateway on
the other modem and on a MemoryBroker, and the Bridge with the reference charge system on the
same broker: a charging session and a call to the station over the radio, 20 % loss delivering
every TransactionEvent once and in order, a station with a wrong key ignored and counted,
counter state surviving a gateway restart (a replayed frame refused, the restarted sender
accepted), statuses as the gateway hears them, the ACL entry, and the commands. The radio runs
20 times faster than real time (SF7), the stations' scenarios in real time.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bridge_memory_helpers import running, until
from click.testing import CliRunner

from ocpp_iot.bridge import _wire
from ocpp_iot.bridge.cli import main as bridge_main
from ocpp_iot.bridge.lora_gateway import (
    GATEWAY_FREQUENCY,
    STATION_FREQUENCY,
    GatewayConfig,
    LoraGateway,
    gateway_from_options,
)
from ocpp_iot.bridge.reference import build_reference
from ocpp_iot.bridge.service import Bridge
from ocpp_iot.charger_node.node import Node, NodeConfig
from ocpp_iot.charger_node.scenario import parse_scenario
from ocpp_iot.charger_node.simulated import SimulatedEvse
from ocpp_iot.deploy import render_acl
from ocpp_iot.lora_keys import LoraStation, key_id, load_stations, provision
from ocpp_iot.rpc import Call, CallResult
from ocpp_iot.transports.link import LinkUp
from ocpp_iot.transports.lora import ArqConfig, RadioConfig
from ocpp_iot.transports.lora.memory_radio import Air, MemoryChannel, MemoryModem, scaled_clock
from ocpp_iot.transports.lora_link import LoraStationLink
from ocpp_iot.transports.memory import MemoryBroker, MemoryClient, mosquitto_acl
from ocpp_iot.transports.settings import Message, MqttSettings

RATE = 20.0


def station_radio() -> RadioConfig:
    return RadioConfig(sf=7, max_packet=255, frequency_hz=STATION_FREQUENCY)


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def session(kwh: float = 0.01) -> Any:
    return parse_scenario({"steps": [
        {"at": 1.5, "plug": 1}, {"after": 0.1, "token": "T1"},
        {"after": 0.1, "charge_kwh": kwh, "power_kw": 11}, {"unplug": 1, "after_full": 0.3},
    ]})  # fmt: skip


@dataclass
class Site:
    """Radio, broker, bridge and gateway of one test; ``up`` records every frame published on
    ``ocpp/+/up`` (topic, payload)."""

    tmp: Path
    broker: MemoryBroker
    bridge: Bridge
    channel: MemoryChannel
    db: Path
    stations: dict[str, LoraStation]
    gateway: LoraGateway | None = None
    gw_modem: MemoryModem | None = None
    up: list[tuple[str, bytes]] = field(default_factory=list)
    _stop: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def stations_file(self) -> Path:
        return self.tmp / "gw" / "stations.json"

    async def start_gateway(self, **kw: Any) -> LoraGateway:
        if self.gw_modem is None:
            self.gw_modem = self.channel.modem("gw", tx_hz=GATEWAY_FREQUENCY,
                                               rx_hz=STATION_FREQUENCY)  # fmt: skip
        radio = RadioConfig(sf=7, max_packet=255, frequency_hz=GATEWAY_FREQUENCY)
        cfg = GatewayConfig(MqttSettings("mqtt://memory", username="lora-gw"),
                            self.stations_file, self.tmp / "gw" / "state.json", radio=radio,
                            **{"fresh_counters": True, **kw})  # fmt: skip
        gw = LoraGateway(cfg, self.gw_modem, client_factory=self.broker.client,
                         clock=self.channel.clock, rate=RATE)  # fmt: skip
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(gw.run(self._stop))
        await until(lambda: gw.client.connected and gw.adapter.is_open, "the gateway to start")
        self.gateway = gw
        return gw

    async def stop_gateway(self) -> None:
        assert self._stop is not None and self._task is not None
        self._stop.set()
        await asyncio.wait_for(self._task, 10)

    def node(self, sid: str, *, key: bytes | None = None, scenario: Any = None) -> Node:
        st = self.stations[sid]
        modem = self.channel.modems.get(sid) or self.channel.modem(
            sid, tx_hz=STATION_FREQUENCY, rx_hz=GATEWAY_FREQUENCY
        )
        clock = self.channel.clock

        def link(cfg: NodeConfig) -> LoraStationLink:
            return LoraStationLink(sid, modem, st.address, key or st.key, radio=station_radio(),
                                   state_file=cfg.data_dir / "lora-state.json", clock=clock,
                                   rate=RATE, fresh_counters=True)  # fmt: skip

        cfg = NodeConfig(sid, version="2.0.1", data_dir=self.tmp / sid,
                         variables={"SampledDataCtrlr.TxUpdatedInterval": "1"})  # fmt: skip
        evse = SimulatedEvse(1, seed=sid, scenario=scenario)
        return Node(cfg, link_factory=link, evse=evse, status_every=0.2)

    def events(self, sid: str, action: str | None = None) -> list[tuple[Any, ...]]:
        sql = "SELECT action, seq_no, event_type FROM ref_events WHERE station=? ORDER BY id"
        return [r for r in rows(self.db, sql, sid) if action is None or r[0] == action]

    def ended(self, sid: str) -> bool:
        sql = "SELECT 1 FROM ref_transactions WHERE station=? AND stopped_reason IS NOT NULL"
        return bool(rows(self.db, sql, sid))

    def published(self, sid: str, action: str) -> list[dict[str, Any]]:
        """Payloads of the CALLs ``action`` the gateway published for ``sid``."""
        out = []
        for topic, data in self.up:
            frame = _wire.decode(data)[1]
            if topic == f"ocpp/{sid}/up" and isinstance(frame, Call) and frame.action == action:
                out.append(frame.payload)
        return out


@asynccontextmanager
async def site(tmp: Path, ids: tuple[str, ...] = ("CP1",), **radio: Any) -> AsyncIterator[Site]:
    for sid in ids:
        provision(tmp / "gw" / "stations.json", sid)
    broker = MemoryBroker()
    db = tmp / "bridge.db"
    ch = MemoryChannel(station_radio(), clock=scaled_clock(RATE), rate=RATE, **radio)
    handlers = build_reference(str(db), versions=["2.0.1"])
    async with running(broker, str(db), handlers) as bridge:
        s = Site(tmp, broker, bridge, ch, db, load_stations(tmp / "gw" / "stations.json"))
        watcher = broker.client(MqttSettings("mqtt://memory", client_id="watcher"),
                                lambda m: s.up.append((m.topic, m.payload)))  # fmt: skip
        watcher.subscribe("ocpp/+/up", 1)
        assert await watcher.start(5)
        yield s
        await watcher.stop()


async def run_until_settled(node: Node, cond: Any, what: str, timeout: float = 20) -> None:
    task = asyncio.ensure_future(node.run())
    try:
        await until(cond, what, timeout=timeout)
        await until(lambda: node.runtime is not None and node.runtime.machine.settled,
                    "the node's queue to empty", timeout=timeout)  # fmt: skip
    finally:
        node.stop()
        await asyncio.wait_for(task, 10)


def retained(broker: MemoryBroker, topic: str) -> bytes | None:
    d = broker.retained.get(topic)
    return None if d is None else d.payload


# -- end to end -------------------------------------------------------------------------------


def test_a_charging_session_and_a_call_over_the_radio(tmp_path: Path) -> None:
    """CP1 charges through the gateway and answers a Bridge.call_station by radio; CP2, on the
    same channel with a wrong key, is ignored (counted, nothing published, never online)."""

    async def scenario() -> None:
        async with site(tmp_path, ("CP1", "CP2")) as s:
            gw = await s.start_gateway()
            cp1 = s.node("CP1", scenario=session())
            cp2 = s.node("CP2", key=bytes(16), scenario=session())
            started: list[asyncio.Task[None]] = []

            async def call_it() -> Any:
                await until(lambda: s.events("CP1", "BootNotification") != [], "CP1's boot")
                # (CP2 from now: its frames would collide with CP1's boot)
                started.append(asyncio.ensure_future(cp2.run()))
                return await s.bridge.call_station("CP1", "GetVariables", {"getVariableData": [
                    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "MessageTimeout",
                     "instance": "Default"}}]}, timeout=10)  # fmt: skip

            caller = asyncio.ensure_future(call_it())
            await run_until_settled(cp1, lambda: s.ended("CP1"), "the transaction to end")
            answer = await asyncio.wait_for(caller, 10)
            assert isinstance(answer, CallResult)
            result = answer.payload["getVariableResult"][0]
            assert result["attributeStatus"] == "Accepted" and result["attributeValue"] == "30"
            actions = [a for a, _, _ in s.events("CP1")]
            assert actions[0] == "BootNotification"
            assert {"StatusNotification", "Authorize", "TransactionEvent"} <= set(actions)
            assert retained(s.broker, "ocpp/CP1/status") == b"online"
            # CP2: heard, never authentic
            address2 = s.stations["CP2"].address
            await until(lambda: gw.endpoint.peer_stats(address2).bad_mic >= 2, "CP2's frames")
            assert cp2.runtime is not None
            cp2.runtime.link.kill()  # CP2 loses power (its frames in transit would be retried)
            cp2.stop()
            await asyncio.wait_for(started[0], 10)
            assert s.events("CP2") == [] and not [t for t, _ in s.up if t == "ocpp/CP2/up"]
            assert retained(s.broker, "ocpp/CP2/status") is None
            assert gw.stats["dropped"] >= 2 and gw.endpoint.peer_stats(address2).delivered == 0
            cp1_stats = gw.endpoint.peer_stats(s.stations["CP1"].address)
            assert cp1_stats.delivered == gw.stats["up"] + gw.stats["probes"]
            # a CALL and its answer are two frames: the gateway's REPLYs made ACKs rare
            assert cp1_stats.piggybacked >= gw.stats["up"] // 2 > cp1_stats.control_frames
            for name in ("CP1", "gw"):  # the duty cycle, on the channel's own account
                budget = 36.0 if name == "CP1" else 360.0
                assert s.channel.busiest_hour(name, 868_000_000, 870_000_000) < budget
            await s.stop_gateway()
            assert retained(s.broker, "ocpp/CP1/status") == b"offline"  # the gateway left

    asyncio.run(scenario())


def test_twenty_percent_loss_delivers_every_transaction_event_once_in_order(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with site(tmp_path, loss=0.2, seed=7) as s:
            gw = await s.start_gateway()
            node = s.node("CP1", scenario=session(kwh=0.015))
            await run_until_settled(node, lambda: s.ended("CP1"), "the transaction to end",
                                    timeout=25)  # fmt: skip
            published = s.published("CP1", "TransactionEvent")
            seqs = [p["seqNo"] for p in published]
            assert len(seqs) >= 6 and seqs == list(range(len(seqs)))  # once each, in order
            assert published[0]["eventType"] == "Started"
            assert published[-1]["eventType"] == "Ended"
            handled = [seq for _, seq, _ in s.events("CP1", "TransactionEvent")]
            assert handled == seqs
            st = gw.endpoint.peer_stats(s.stations["CP1"].address)
            assert s.channel.lost > 0 and st.duplicates + st.retransmissions > 0
            await s.stop_gateway()

    asyncio.run(scenario())


def test_counter_state_survives_a_gateway_restart(tmp_path: Path) -> None:
    """A frame recorded from the air and sent again after the gateway restarted is refused (the
    receive window came back from the state file); the gateway's own counters resume beyond
    those it used (the station takes its downlinks); the station restarted too is accepted.
    Without the state file the same replay would be taken (the control case)."""
    captured: list[Air] = []

    async def scenario() -> None:
        async with site(tmp_path) as s:
            s.channel.taps.append(lambda air: captured.append(air))
            await s.start_gateway()
            node = s.node("CP1")
            task = asyncio.ensure_future(node.run())
            await until(lambda: len(s.events("CP1", "StatusNotification")) >= 1, "the boot")
            await s.stop_gateway()
            saved = json.loads((tmp_path / "gw" / "state.json").read_text())
            address = s.stations["CP1"].address
            assert saved["stations"]["CP1"]["address"] == address
            assert stat.S_IMODE(os.stat(tmp_path / "gw" / "state.json").st_mode) == 0o600
            boot = next(a for a in captured if a.sender == "CP1")  # its BootNotification
            gw2 = await s.start_gateway()
            assert gw2.endpoint.state(address)["receive"] == saved["stations"]["CP1"]["state"][
                "receive"]  # fmt: skip
            published = len(s.up)
            s.channel.inject(boot.data, STATION_FREQUENCY)
            await until(lambda: gw2.endpoint.peer_stats(address).duplicates >= 1, "the replay")
            assert len(s.up) == published and gw2.stats["up"] == 0
            answer = await s.bridge.call_station(
                "CP1", "TriggerMessage", {"requestedMessage": "Heartbeat"}, timeout=10
            )
            assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
            await until(lambda: s.published("CP1", "Heartbeat") != [], "the triggered Heartbeat")
            link = node.runtime.link if node.runtime is not None else None
            assert isinstance(link, LoraStationLink)
            assert link.endpoint.peer_stats(address).too_old == 0  # gw2's downlinks were fresh
            node.stop()
            await asyncio.wait_for(task, 10)
            # the station restarts: its counters jump ahead (the reservation), accepted
            again = s.node("CP1")
            await run_until_settled(again, lambda: len(s.events("CP1", "BootNotification")) == 2,
                                    "the second boot")  # fmt: skip
            st = gw2.endpoint.peer_stats(address)
            assert st.jumps == 0 and st.too_old == 0
            await s.stop_gateway()
            # the control case: a gateway that lost its state takes the replay
            (tmp_path / "gw" / "state.json").unlink()
            gw3 = await s.start_gateway()
            s.channel.inject(boot.data, STATION_FREQUENCY)
            await until(lambda: gw3.stats["up"] == 1, "the replay taken without the state")
            await s.stop_gateway()

    asyncio.run(scenario())


# -- statuses, ACL and routing ---------------------------------------------------------------


def test_statuses_routing_and_the_acl(tmp_path: Path) -> None:
    """On a broker with the project's ACL and the gateway's own user: a station is offline
    while silent, online once heard, offline again when a downlink to it is abandoned; what the
    bridge's user publishes on down goes by radio, answers come back on up; a topic of a station
    the gateway does not serve is dropped."""

    async def scenario() -> None:
        path = tmp_path / "gw" / "stations.json"
        st = provision(path, "CP1")
        users = {"lora-gw": "gw-pw", "bridge": "bridge-pw"}
        broker = MemoryBroker(users=users, acl=mosquitto_acl(render_acl("ocpp")))
        ch = MemoryChannel(station_radio(), clock=scaled_clock(50), rate=50)
        mqtt = MqttSettings("mqtt://memory", username="lora-gw", password="gw-pw")
        cfg = GatewayConfig(mqtt, path, tmp_path / "gw" / "state.json", offline_after=5.0,
                            radio=RadioConfig(sf=7, frequency_hz=GATEWAY_FREQUENCY),
                            arq=ArqConfig(max_retries=1), fresh_counters=True)  # fmt: skip
        modem = ch.modem("gw", tx_hz=GATEWAY_FREQUENCY, rx_hz=STATION_FREQUENCY)
        gw = LoraGateway(cfg, modem, client_factory=broker.client, clock=ch.clock, rate=50)
        got: list[Message] = []
        back: MemoryClient = broker.client(
            MqttSettings("mqtt://memory", client_id="b", username="bridge", password="bridge-pw"),
            got.append,
        )
        back.subscribe("ocpp/+/up", 1)
        assert await back.start(5)
        stop = asyncio.Event()
        task = asyncio.ensure_future(gw.run(stop))
        await until(lambda: gw.client.connected, "the gateway's login")
        assert gw.client.settings.client_id == "lora-gw"
        await until(lambda: retained(broker, "ocpp/CP1/status") == b"offline", "silent: offline")
        gw.config.offline_after = 1e9  # from here on, only an abandoned downlink says offline
        link = LoraStationLink("CP1", ch.modem("CP1", tx_hz=STATION_FREQUENCY,
                               rx_hz=GATEWAY_FREQUENCY), st.address, st.key,
                               radio=station_radio(), clock=ch.clock, rate=50)  # fmt: skip
        await link.open()
        assert isinstance(await asyncio.wait_for(link.receive(), 5), LinkUp)
        heartbeat = _wire.encode(Call("h1", "Heartbeat", {}), "2.0.1")
        link.send(heartbeat)
        await until(lambda: [m.payload for m in got] == [heartbeat], "the frame on up")
        assert got[0].topic == "ocpp/CP1/up" and got[0].qos == 1
        assert retained(broker, "ocpp/CP1/status") == b"online"
        answer = _wire.encode(CallResult("h1", {"currentTime": "2026-01-01T00:00:00Z"},
                                         "Heartbeat"), "2.0.1")  # fmt: skip
        back.publish("ocpp/CP1/down", answer, 1)
        received = await asyncio.wait_for(link.receive(), 5)
        assert getattr(received, "data", None) == answer
        back.publish("ocpp/CP9/down", answer, 1)  # the gateway does not serve CP9
        link.kill()  # the station goes away: the next downlink is abandoned
        back.publish("ocpp/CP1/down", _wire.encode(Call("c1", "Reset", {"type": "Immediate"}),
                                                   "2.0.1"), 1)  # fmt: skip
        await until(lambda: gw.stats["failed"] == 1, "the downlink abandoned", timeout=10)
        assert retained(broker, "ocpp/CP1/status") == b"offline"
        assert gw.stats["down_dropped"] == 0  # CP9's never reached it: not subscribed
        gw._message(Message("ocpp/CP9/down", answer, 1, False, 1, False, 1))
        assert gw.stats["down_dropped"] == 1
        stop.set()
        await asyncio.wait_for(task, 10)
        await back.stop()

    asyncio.run(scenario())


# -- the commands -----------------------------------------------------------------------------


def test_add_station_lora_provisions_and_prints_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_PASSWD_FILE", str(tmp_path / "passwd"))
    path = tmp_path / "lora" / "stations.json"
    runner = CliRunner()
    result = runner.invoke(bridge_main, ["add-station", "--lora", "CP7", "--stations-file",
                                         str(path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    st = load_stations(path)["CP7"]
    assert f"--lora-address {st.address}" in result.output
    assert f"lora key: {st.key.hex()}" in result.output
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not (tmp_path / "passwd").exists()  # no MQTT user: the gateway speaks for it
    again = runner.invoke(bridge_main, ["add-station", "--lora", "CP7", "--stations-file",
                                        str(path)])  # fmt: skip
    assert again.exit_code != 0 and "provisioned already" in again.output
    rekeyed = runner.invoke(bridge_main, ["add-station", "--lora", "CP7", "--rekey",
                                          "--stations-file", str(path)])  # fmt: skip
    assert rekeyed.exit_code == 0 and load_stations(path)["CP7"].key != st.key
    env = {"BRIDGE_LORA_STATIONS": str(path)}
    other = runner.invoke(bridge_main, ["add-station", "--lora", "CP8", "--lora-address",
                                        str(st.address)], env=env)  # fmt: skip
    assert other.exit_code != 0 and "belongs to CP7" in other.output
    for bad_id in ("a/b", "bridge"):  # bridge: the bridge's own status topic
        bad = runner.invoke(bridge_main, ["add-station", "--lora", bad_id, "--stations-file",
                                          str(path)])  # fmt: skip
        assert bad.exit_code != 0 and set(load_stations(path)) == {"CP7"}, bad_id
    # the gateway's first counter state, next to the stations file: a gateway refuses to start
    # without one (test_a_gateway_without_its_counter_state_is_refused)
    state = path.parent / "lora-gateway-state.json"
    first = json.loads(state.read_text())
    assert first == {"format": 1, "stations": {}} and "first counter state" in result.output
    # lost once stations exist: not written again (a gateway may have used CP7's key)
    state.unlink()
    later = runner.invoke(bridge_main, ["add-station", "--lora", "CP9", "--stations-file",
                                        str(path)])  # fmt: skip
    assert later.exit_code == 0 and "is missing" in later.output and not state.exists()
    # the gateway's --state-file given as BRIDGE_LORA_STATE_FILE: the first state goes there
    elsewhere = tmp_path / "var" / "gw-state.json"
    other_file = tmp_path / "other" / "stations.json"
    env = {"BRIDGE_LORA_STATE_FILE": str(elsewhere)}
    there = runner.invoke(bridge_main, ["add-station", "--lora", "CP1", "--stations-file",
                                        str(other_file)], env=env)  # fmt: skip
    assert there.exit_code == 0 and elsewhere.exists()
    assert not (other_file.parent / "lora-gateway-state.json").exists()
    written = json.loads(path.read_text())  # a stations file edited by hand is checked too
    written["stations"].append({"id": "bridge", "address": 9, "key": "00" * 16})
    path.write_text(json.dumps(written))
    with pytest.raises(ValueError, match="invalid station id 'bridge'"):
        load_stations(path)


def test_a_gateway_without_its_counter_state_is_refused(tmp_path: Path) -> None:
    """A gateway that lost lora-gateway-state.json would seal downlinks from counter 0 again
    under every station's key (AES-CCM nonce reuse): refused, unless --fresh-counters says no
    gateway used the keys. The state file it starts with is written at once; a station added
    later (not in the file yet) is new and starts at 0."""
    stations = tmp_path / "stations.json"
    state = tmp_path / "state.json"
    provision(stations, "CP1")
    ch = MemoryChannel(station_radio())
    broker = MemoryBroker()

    def gateway(**kw: Any) -> LoraGateway:
        radio = RadioConfig(sf=7, frequency_hz=GATEWAY_FREQUENCY)
        mqtt = MqttSettings("mqtt://memory", username="lora-gw")
        cfg = GatewayConfig(mqtt, stations, state, radio=radio, **kw)
        modem = ch.modem(f"gw{len(ch.modems)}", tx_hz=GATEWAY_FREQUENCY, rx_hz=STATION_FREQUENCY)
        return LoraGateway(cfg, modem, client_factory=broker.client)

    with pytest.raises(ValueError, match="counter state .* is missing .*--fresh-counters"):
        gateway()
    assert not state.exists()
    gateway(fresh_counters=True)
    assert set(json.loads(state.read_text())["stations"]) == {"CP1"}  # before any frame
    gateway()  # found: no flag needed
    provision(stations, "CP2")
    assert set(gateway().stations) == {"CP1", "CP2"}
    state.unlink()
    with pytest.raises(ValueError, match="2 provisioned station"):
        gateway()


def test_re_keying_a_station_while_running_drops_its_old_peer_and_queue(tmp_path: Path) -> None:
    """SIGHUP after add-station --lora --rekey: the old peer (old key) is forgotten with the
    downlinks it still held, and their queue slots are free again. Before, the old peer kept
    retransmitting and the slots stayed taken: after max_queue, every downlink was dropped."""
    stations, state = tmp_path / "stations.json", tmp_path / "state.json"
    provision(stations, "CP1")
    ch = MemoryChannel(station_radio())
    cfg = GatewayConfig(MqttSettings("mqtt://memory", username="lora-gw"), stations, state,
                        radio=RadioConfig(sf=7, frequency_hz=GATEWAY_FREQUENCY), max_queue=3,
                        fresh_counters=True)  # fmt: skip
    modem = ch.modem("gw", tx_hz=GATEWAY_FREQUENCY, rx_hz=STATION_FREQUENCY)
    gw = LoraGateway(cfg, modem, client_factory=MemoryBroker().client)

    def down(n: int) -> None:
        call = _wire.encode(Call(f"c{n}", "Heartbeat", {}), "2.0.1")
        gw._message(Message("ocpp/CP1/down", call, 1, False, n, False, 0))

    for n in range(4):  # nobody on air: they stay queued; the fourth finds the queue full
        down(n)
    assert gw.queued["CP1"] == 3 and gw.stats["down_dropped"] == 1
    old = gw.stations["CP1"]
    provision(stations, "CP1", rekey=True)
    gw.reload_stations()
    assert gw.queued["CP1"] == 0 and gw.stations["CP1"].key != old.key
    assert len(gw.endpoint._peers) == 1  # the old peer is gone (same address, new key)
    down(9)
    assert gw.queued["CP1"] == 1 and gw.stats["down_dropped"] == 1
    provision(stations, "CP1", rekey=True, address=old.address ^ 1)  # and a new address
    gw.reload_stations()
    assert set(gw.endpoint._peers) == {old.address ^ 1} and gw.queued["CP1"] == 0
    # two stations swap addresses in one edit of the file
    provision(stations, "CP2")
    gw.reload_stations()
    written = json.loads(stations.read_text())
    a, b = written["stations"]
    a["address"], b["address"] = b["address"], a["address"]
    stations.write_text(json.dumps(written))
    gw.reload_stations()  # raised KeyError, and every state write after it
    now = load_stations(stations)
    assert set(gw.endpoint._peers) == {now["CP1"].address, now["CP2"].address}
    assert gw.by_address == {now["CP1"].address: "CP1", now["CP2"].address: "CP2"}
    gw._save_state(durable=True)
    saved = json.loads(state.read_text())["stations"]
    current = {sid: e["address"] for sid, e in saved.items() if "@" not in sid}
    assert current == {"CP1": now["CP1"].address, "CP2": now["CP2"].address}
    # CP1's two earlier keys keep their counters in the file, under "CP1@<key id>"
    retired = {sid for sid in saved if "@" in sid}
    assert retired == {f"CP1@{key_id(old.key)}", *retired} and len(retired) == 2
    # the counters belong to the key: used at an address, swapped away and back, they resume
    # (a nonce is address, direction and counter under the key: 0 again would repeat them)
    send = gw.endpoint._peers[now["CP1"].address].counters.send
    used = [send.take()[0] for _ in range(5)]
    for _ in range(2):  # swap, and swap back
        written = json.loads(stations.read_text())
        a, b = written["stations"]
        a["address"], b["address"] = b["address"], a["address"]
        stations.write_text(json.dumps(written))
        gw.reload_stations()
    assert load_stations(stations)["CP1"].address == now["CP1"].address
    after = gw.endpoint._peers[now["CP1"].address].counters.send.take()[0]
    assert after > max(used)
    # renamed in the file, same key and address: the same counters, on reload and on restart
    written = json.loads(stations.read_text())
    for entry in written["stations"]:
        if entry["id"] == "CP1":
            entry["id"] = "CP9"
    stations.write_text(json.dumps(written))
    gw.reload_stations()  # CP1 is no longer in the file; CP9 takes its address
    assert gw.endpoint._peers[now["CP1"].address].counters.send.take()[0] > after
    gw._save_state(durable=True)
    restarted = LoraGateway(cfg, modem, client_factory=MemoryBroker().client)
    assert restarted.endpoint._peers[now["CP1"].address].counters.send.take()[0] > after


def test_lora_gateway_options(tmp_path: Path) -> None:
    path = tmp_path / "stations.json"
    provision(path, "CP1")
    built: list[Any] = []

    def fake(settings: Any) -> MemoryModem:
        built.append(settings)
        return MemoryChannel().modem("gw", tx_hz=settings.tx_hz, rx_hz=settings.rx_hz,
                                     max_payload=55)  # fmt: skip

    opts = {"modem": "e32", "port": "/dev/ttyS1", "frequency": GATEWAY_FREQUENCY,
            "station_frequency": STATION_FREQUENCY, "sf": 9, "bandwidth": "125000",
            "coding_rate": 1, "preamble": 6, "power": 20, "max_packet": None, "stations": str(path),
            "state_file": None, "offline_after": 600.0, "client_id": None, "username": "lora-gw",
            "password": None, "broker": "mqtt://localhost:1883", "mqtt_version": "5",
            "ca_certs": None, "certfile": None, "keyfile": None, "tls_insecure": False,
            "prefix": "ocpp", "session_expiry": 300}  # fmt: skip
    with pytest.raises(ValueError, match="counter state .* is missing"):
        gateway_from_options(opts, make_modem=fake)  # no state file: refused, unless told
    gw = gateway_from_options({**opts, "fresh_counters": True}, make_modem=fake)
    assert built[0].rx_hz == STATION_FREQUENCY and built[0].power_dbm == 20
    assert built[0].preamble == 6 and gw.config.radio.preamble == 6
    assert gw.config.radio.max_packet == 55 and gw.config.radio.frequency_hz == GATEWAY_FREQUENCY
    assert gw.config.state_file == tmp_path / "lora-gateway-state.json"
    assert gw.client.settings.client_id == "lora-gw" and gw.client.settings.session_expiry == 300
    assert set(gw.stations) == {"CP1"}
    with pytest.raises(ValueError, match="no stations file"):
        gateway_from_options({**opts, "stations": str(tmp_path / "none.json")}, make_modem=fake)
    with pytest.raises(ValueError, match="sub-band"):
        gateway_from_options({**opts, "frequency": 868_650_000}, make_modem=fake)
    result = CliRunner().invoke(bridge_main, ["lora-gateway", "--help"])
    assert result.exit_code == 0 and "--station-frequency" in result.output
