"""Ten charger nodes on one LoRa channel for a simulated hour (issue 17, "How it is checked").

Ten OCPP 2.0.1 :class:`Node` s, each with the real RAK3172 driver on its own pty of one radio
:class:`Simulator` (20 % loss per receiver, collisions between overlapping frames, half-duplex
radios, a fixed seed), built as ``charger-node run --link lora`` builds them
(:func:`make_lora_link`), powered up 6 s apart (so that their meter values do not fall due
together); one gateway radio with the real :class:`LoraGateway`; the real :class:`Bridge` with
the reference charge system on a MemoryBroker. All on the simulator's radio clock, ``RATE``
times as fast as the wall clock: the nodes' scenarios, meter interval
(``TxUpdatedInterval`` 60 s) and timeouts are radio seconds. Each station charges through
most of the hour; then:

- every TransactionEvent of every station handled by the back end exactly once, seqNo 0..n in
  order, one Started first and one Ended last; published by the gateway in that order, a
  message published again only right after itself and only as often as its station's radio
  link gave up on a message (the gateway had it, every acknowledgement of it was lost: the
  station sends it again after the link is back; the bridge answers it from its store);
- the simulator's own duty-cycle monitor (not the link layer's ledger) found no hour over
  budget for any radio (stations: 36 s in 868.0-868.6 MHz, gateway: 360 s in 869.4-869.65 MHz);
- frames were lost and collided, and every station's link layer retransmitted.

The stations' OCPP MessageTimeout is a LoRa node's default: the radio link's longest retry
span (``node.lora_message_timeout``, 360 s at SF7), checked here.
Airtime and the busiest hour of each radio, and the channel's counts, are printed
(``pytest -s``). One process, one event loop: the loop's and the threads' scheduling delays
are ``RATE`` times longer in radio time, so the channel is harsher than a real one (more
collisions from wake-ups that coincide, receivers still retuning: counted and printed).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge_memory_helpers import running, until
from station_harness import tmpfs_data_dir

from ocpp_iot.bridge import _wire
from ocpp_iot.bridge.lora_gateway import (
    GATEWAY_FREQUENCY,
    STATION_FREQUENCY,
    GatewayConfig,
    LoraGateway,
)
from ocpp_iot.bridge.reference import build_reference
from ocpp_iot.charger_node.node import Node, NodeConfig, lora_message_timeout, make_lora_link
from ocpp_iot.charger_node.scenario import parse_scenario
from ocpp_iot.charger_node.simulated import SimulatedEvse
from ocpp_iot.lora_keys import load_stations, provision
from ocpp_iot.rpc import Call
from ocpp_iot.transports.lora import LinkStats
from ocpp_iot.transports.lora.airtime import band_for
from ocpp_iot.transports.lora.sim import Simulator
from ocpp_iot.transports.lora_link import LoraStationLink
from ocpp_iot.transports.lora_setup import ModemSettings, make_modem
from ocpp_iot.transports.memory import MemoryBroker
from ocpp_iot.transports.settings import MqttSettings

STATIONS = 10
#: radio seconds per wall second: the hour in 100 s
RATE = 36.0
HOUR = 3600.0
SF = 7
SEED = 17
#: radio seconds between the stations' power-ups
STAGGER = 6.0


def scenario() -> Any:
    """Plugged in four minutes after the node started (by then the boot is accepted, as a
    rule; a token shown before is held for it, the cable being in), 8 kWh at 11 kW (about
    44 min of charging, Updated every 60 s), unplugged a minute after full: the Ended inside
    the hour."""
    return parse_scenario({"steps": [
        {"at": 240, "plug": 1}, {"after": 3, "token": "TOKEN"},
        {"after": 2, "charge_kwh": 8.0, "power_kw": 11}, {"unplug": 1, "after_full": 60},
    ]})  # fmt: skip


@dataclass
class Radio:
    """What one radio did in the hour: the simulator's account and its link layer's."""

    name: str
    band: str
    airtime: float  #: seconds on air, the simulator's count
    busiest_hour: float  #: seconds on air in its sub-band in the busiest hour (the monitor's)
    budget: float
    frames: int
    stats: LinkStats


def busiest_hours(sim: Simulator) -> dict[str, float]:
    """Per radio: the most seconds on air within one hour in its sub-band, as the simulator's
    duty-cycle monitor counts them (its maximum is at the end of some transmission)."""

    def go() -> dict[str, float]:
        out: dict[str, float] = {}
        for tx in sim.channel.log:
            name = tx.sender.name
            band = band_for(tx.frequency_hz, tx.bandwidth_hz).name
            out[name] = max(out.get(name, 0.0), sim.duty.used(name, band, tx.end))
        return out

    return sim.call(go)


def test_ten_stations_share_a_lossy_channel_for_an_hour(tmp_path: Path) -> None:
    files = tmpfs_data_dir(tmp_path)  # tmpfs: the fsyncs of 10 outboxes would stall the one loop
    try:
        check_an_hour_on_the_shared_channel(files)
    finally:
        if files != tmp_path:
            shutil.rmtree(files, ignore_errors=True)


def check_an_hour_on_the_shared_channel(tmp_path: Path) -> None:
    stations_file = tmp_path / "gw" / "stations.json"
    ids = [f"LR{i:02d}" for i in range(STATIONS)]
    for sid in ids:
        provision(stations_file, sid)
    keys = load_stations(stations_file)
    db = tmp_path / "bridge.db"
    up: list[tuple[str, bytes]] = []

    def station_settings(sid: str) -> NodeConfig:
        st = keys[sid]
        return NodeConfig(
            sid, version="2.0.1", data_dir=tmp_path / sid, link="lora",
            lora_port=sim.paths[ids.index(sid)], lora_modem="rak3172", lora_sf=SF,
            lora_address=st.address, lora_key=st.key.hex(),
            variables={"SampledDataCtrlr.TxUpdatedInterval": "60"},
        )  # fmt: skip

    async def hour(sim: Simulator) -> tuple[dict[str, Node], LoraGateway]:
        broker = MemoryBroker()
        handlers = build_reference(str(db), versions=["2.0.1"])
        async with running(broker, str(db), handlers):
            watcher = broker.client(MqttSettings("mqtt://memory", client_id="watcher"),
                                    lambda m: up.append((m.topic, m.payload)))  # fmt: skip
            watcher.subscribe("ocpp/+/up", 1)
            assert await watcher.start(5)
            settings = ModemSettings("rak3172", sim.paths[STATIONS], tx_hz=GATEWAY_FREQUENCY,
                                     rx_hz=STATION_FREQUENCY, sf=SF, power_dbm=14)  # fmt: skip
            config = GatewayConfig(MqttSettings("mqtt://memory", username="lora-gw"),
                                   stations_file, tmp_path / "gw" / "state.json",
                                   radio=settings.radio(), fresh_counters=True)  # fmt: skip
            gw = LoraGateway(config, make_modem(settings), client_factory=broker.client,
                             clock=sim.clock, rate=sim.rate)  # fmt: skip
            stop = asyncio.Event()
            gw_task = asyncio.ensure_future(gw.run(stop))
            await until(lambda: gw.client.connected and gw.adapter.is_open, "the gateway")
            t0 = sim.clock()

            def link(cfg: NodeConfig) -> Any:
                return make_lora_link(cfg, clock=sim.clock, rate=sim.rate)

            nodes = {
                sid: Node(station_settings(sid), link_factory=link, clock=sim.clock, rate=sim.rate,
                          evse=SimulatedEvse(1, seed=sid, scenario=scenario()))
                for sid in ids
            }  # fmt: skip
            tasks = []
            for node in nodes.values():
                tasks.append(asyncio.ensure_future(node.run()))
                await asyncio.sleep(STAGGER / RATE)

            def done() -> bool:
                for t in tasks:
                    if t.done():
                        t.result()  # a node that stopped by itself: its error
                        raise AssertionError("a node stopped")
                return sim.clock() - t0 >= HOUR and all(
                    n.runtime is not None and n.runtime.machine.settled and ended(sid)
                    for sid, n in nodes.items()
                )

            try:
                try:
                    await until(done, "the hour and every transaction to end",
                                timeout=1.5 * HOUR / RATE + 30)  # fmt: skip
                except AssertionError as e:  # which station, and where it stands
                    states = {sid: n.runtime.machine.status(sim.clock()) if n.runtime else None
                              for sid, n in nodes.items()}  # fmt: skip
                    ends = {sid: ended(sid) for sid in ids}
                    at = sim.clock() - t0
                    raise AssertionError(f"{e}: radio time {at:.0f} s, ended {ends}, "
                                         f"stations {states}") from None  # fmt: skip
                assert sim.clock() - t0 < HOUR + 300  # nothing was late by minutes
                for sid, n in nodes.items():  # the LoRa default, not OCPP's 30 s
                    assert n.runtime is not None
                    timeout = n.runtime.machine.model.message_timeout
                    assert timeout == lora_message_timeout(station_settings(sid)) >= 300
            finally:
                for n in nodes.values():
                    n.stop()
                await asyncio.wait_for(asyncio.gather(*tasks), 20)
                stop.set()
                await asyncio.wait_for(gw_task, 20)
                await watcher.stop()
            return nodes, gw

    def ended(sid: str) -> bool:
        sql = "SELECT 1 FROM ref_transactions WHERE station=? AND stopped_reason IS NOT NULL"
        with sqlite3.connect(db) as conn:
            return bool(conn.execute(sql, (sid,)).fetchall())

    with Simulator("rak3172", STATIONS + 1, rate=RATE, loss=0.2, seed=SEED) as sim:
        nodes, gw = asyncio.run(hour(sim))
        counts = sim.counts()
        peaks = busiest_hours(sim)
        violations = sim.violations
        errors = list(sim.errors)
        radios = [r.name for r in sim.radios]
        airtime = {r.name: r.counts["tx_airtime_ms"] / 1000 for r in sim.radios}
        frames = {r.name: r.counts["tx"] for r in sim.radios}
        missed = missed_by_the_gateway(sim)

    assert errors == []
    # -- every TransactionEvent once, in order, at the back end; published in order ------------
    with sqlite3.connect(db) as conn:
        handled_rows = conn.execute(
            "SELECT station, seq_no, event_type FROM ref_events "
            "WHERE action='TransactionEvent' ORDER BY id"
        ).fetchall()
    repeats: dict[str, int] = {}
    for sid in ids:
        published: list[tuple[str, int, str]] = []  # (message id, seqNo, eventType)
        for topic, data in up:
            frame = _wire.decode(data)[1]
            if topic == f"ocpp/{sid}/up" and isinstance(frame, Call):
                if frame.action == "TransactionEvent":
                    p = frame.payload
                    published.append((frame.message_id, p["seqNo"], p["eventType"]))
        # a repeat is the very message again, right after itself: sent again after the radio
        # gave up on it (SendFailed: the gateway had it, its acknowledgements were all lost)
        once = [m for i, m in enumerate(published) if i == 0 or m != published[i - 1]]
        repeats[sid] = len(published) - len(once)
        seqs = [seq for _, seq, _ in once]
        types = [kind for _, _, kind in once]
        assert seqs == list(range(len(seqs))), (sid, published)  # each once, in order
        assert len(seqs) >= 40, (sid, len(seqs))  # Updated every 60 s for most of the hour
        assert types[0] == "Started" and types[-1] == "Ended", (sid, types)
        assert types.count("Started") == 1 and types.count("Ended") == 1, (sid, types)
        handled = [(seq, kind) for s, seq, kind in handled_rows if s == sid]
        assert handled == [(seq, kind) for _, seq, kind in once], sid  # the handler ran once
        assert repeats[sid] <= station_link(nodes[sid]).counts["failed"], sid
    # -- the duty cycle, on the simulator's own account ----------------------------------------
    assert violations == [], [str(v) for v in violations[:5]]
    report: list[Radio] = []
    for name, sid in zip(radios, [*ids, "gateway"], strict=True):
        if sid == "gateway":
            peers = [gw.endpoint.peer_stats(st.address) for st in keys.values()]
            band, budget = band_for(GATEWAY_FREQUENCY).name, 360.0
        else:
            link = station_link(nodes[sid])
            peers = [link.endpoint.peer_stats(link.address)]
            band, budget = band_for(STATION_FREQUENCY).name, 36.0
        assert peaks[name] <= budget
        stats = LinkStats()
        for field in ("retransmissions", "control_frames", "failed", "duplicates"):
            setattr(stats, field, sum(getattr(peer, field) for peer in peers))
        report.append(Radio(sid, band, airtime[name], peaks[name], budget, frames[name], stats))
    # -- the channel was hard, and the ARQ worked for it ---------------------------------------
    assert counts["lost"] > 0 and counts["collision"] > 0, counts
    assert all(r.stats.retransmissions > 0 for r in report[:-1])
    print_report(report, counts, missed, repeats)


def station_link(node: Node) -> LoraStationLink:
    assert node.runtime is not None and isinstance(node.runtime.link, LoraStationLink)
    return node.runtime.link


def missed_by_the_gateway(sim: Simulator) -> int:
    """Uplinks the gateway did not even listen to: it was on air or retuning (the RAK3172
    driver moves to its transmit frequency and back around each frame; serial round trips are
    wall time, so at ``RATE`` they take RATE times as long in radio time as on a real line)."""
    gw = sim.radios[-1]
    return sim.call(
        lambda: sum(tx.sender is not gw and gw.name not in tx.outcome for tx in sim.channel.log)
    )


def print_report(report: list[Radio], counts: Any, missed: int, repeats: dict[str, int]) -> None:
    print(f"\none radio hour at SF{SF}, {STATIONS} stations, 20 % loss, rate {RATE:g}")
    print(f"{'radio':<8} {'sub-band':<13} {'frames':>6} {'airtime':>8} {'busiest h':>9} "
          f"{'budget':>6} {'share':>6} {'retx':>5} {'bare':>5} {'dups':>5} {'failed':>6} "
          f"{'TE again':>8}")  # fmt: skip
    for r in report:
        print(f"{r.name:<8} {r.band:<13} {r.frames:>6} {r.airtime:>7.2f}s {r.busiest_hour:>8.2f}s "
              f"{r.budget:>5.0f}s {r.busiest_hour / r.budget:>6.1%} {r.stats.retransmissions:>5} "
              f"{r.stats.control_frames:>5} {r.stats.duplicates:>5} {r.stats.failed:>6} "
              f"{repeats.get(r.name, 0):>8}")  # fmt: skip
    print("channel:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
          f"(uplinks the gateway was not listening to: {missed})")  # fmt: skip
