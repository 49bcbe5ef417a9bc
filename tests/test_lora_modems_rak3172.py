"""The RAK3172 (RUI3, P2P) driver through the simulator's ptys: configuration from the factory
state, every packet size, a reception meeting a command reply, garbage, a hung modem, a port
that disappears, split transmit/receive frequencies."""

from __future__ import annotations

import random

import pytest
from test_lora_modems_support import (
    FAST,
    eventually,
    nothing,
    opened,
    payload,
    pending,
    receive,
    run,
    until,
)

from ocpp_iot.transports.lora import RadioConfig
from ocpp_iot.transports.lora.modem import ModemError
from ocpp_iot.transports.lora.modems import Rak3172
from ocpp_iot.transports.lora.sim import Simulator

RADIO = RadioConfig(sf=7, frequency_hz=868_100_000)


def modems(sim: Simulator, radio: RadioConfig = RADIO, **kw: object) -> list[Rak3172]:
    kw.setdefault("reopen_delays", (0.05, 0.2))
    return [Rak3172(p, radio, **kw) for p in sim.paths]  # type: ignore[arg-type]


def test_configures_p2p_from_the_lorawan_factory_state() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, RadioConfig(sf=9, coding_rate=2, preamble=10, frequency_hz=868_300_000))
        async with opened(a, b):
            for r in sim.radios:
                e = r.emulator
                emu = sim.call(lambda e=e: (e.nwm, e.rx_mode, dict(e.p2p)))
                assert emu[0] == 0 and emu[1] == 65533
                assert emu[2] == {"freq": 868_300_000, "sf": 9, "bw": 125, "cr": 1, "pre": 10,
                                  "pwr": 14}  # fmt: skip
            assert a.stats.restarts_seen == 1  # the switch to P2P restarted the module
            assert a.stats.configured == 1 and a.is_ready
            got = await eventually(lambda: a.transmit(b"hello"))
            assert got is None and (await receive(b)).payload == b"hello"

    with Simulator("rak3172", 2, rate=FAST, options={"work_mode": 1, "echo": True}) as sim:
        run(scenario(sim))
        assert not sim.errors


def test_every_size_up_to_255_bytes_arrives_intact_with_rssi_and_snr() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim)
        rng = random.Random(5)
        async with opened(a, b):
            for size in range(1, 256):
                data = payload(rng, size)
                await a.transmit(data)
                rx = await receive(b)
                assert rx.payload == data, size
                assert rx.rssi is not None and -140 < rx.rssi < 0
                assert rx.snr is not None and -25 < rx.snr <= 12
            with pytest.raises(ModemError, match="1..255"):
                await a.transmit(bytes(256))
            with pytest.raises(ModemError):
                await a.transmit(b"")
            assert a.stats.tx_packets == 255 and b.stats.rx_packets == 255
            assert a.stats.reply_timeouts == 0 and b.framing.garbage_bytes == 0

    with Simulator("rak3172", 2, rate=FAST) as sim:
        run(scenario(sim))
        assert sim.counts()["delivered"] == 255 and not sim.errors


def test_a_packet_arriving_while_a_command_waits_for_its_reply_is_not_lost() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim)
        async with opened(a, b):
            for i in range(20):
                # the modem writes "+EVT:RXP2P:..." right before its "OK" to AT+PSEND
                sim.interleave(0, b"arrived %d \r\n" % i, rssi=-80, snr=3)
                await a.transmit(b"sent %d" % i)
                assert (await receive(b)).payload == b"sent %d" % i
                rx = await receive(a)
                assert rx.payload == b"arrived %d \r\n" % i and (rx.rssi, rx.snr) == (-80, 3)
            assert a.stats.rx_packets == 20 and a.stats.tx_failed == 0

    with Simulator("rak3172", 2, rate=FAST) as sim:
        run(scenario(sim))


def test_garbage_and_partial_lines_on_the_serial_line_are_dropped_and_counted() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, partial_timeout=0.2)
        async with opened(a, b):
            sim.inject(1, b"\x00\xff\xfe garbage\r\n+EVT:RXP2P:zz:1:0102\r\n+EVT:RXP2P:-5:1:0G\r\n")
            sim.inject(1, b"+EVT:RXP2P:-40:5:AB")  # a partial line, then silence
            await nothing(b, 0.3)
            sim.inject(1, b"\x13\x37noise+EVT:RXP2P:-41:6:C0FFEE\r\nOK\r\n")  # stray OK too
            rx = await receive(b)
            assert rx.payload == b"\xc0\xff\xee" and rx.rssi == -41
            await a.transmit(b"after the noise")
            assert (await receive(b)).payload == b"after the noise"
            assert b.stats.bad_events == 2 and b.stats.garbage_lines >= 1
            assert b.stats.unexpected_replies == 1
            assert b.framing.stale_partials == 1 and b.framing.garbage_bytes > 0
            assert b.is_ready and b.stats.recoveries == 0

    with Simulator("rak3172", 2, rate=FAST) as sim:
        run(scenario(sim))


def test_a_hung_modem_is_noticed_and_configured_again_once_it_restarts() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, reply_timeout=0.2)
        async with opened(a, b):
            sim.hang(1, 0.5)  # it answers nothing; a watchdog restarts it 0.5 s later
            for _ in range(2):
                with pytest.raises(ModemError):
                    await b.transmit(b"into the void")
            await until(lambda: not b.is_ready, what="b notices")
            await until(lambda: b.is_ready, what="b configured again")
            assert b.stats.recoveries >= 1 and b.stats.reply_timeouts >= 2
            await eventually(lambda: b.transmit(b"back"))
            assert (await receive(a)).payload == b"back"
            await a.transmit(b"do you hear me")  # it listens again (AT+PRECV=65533)
            assert (await receive(b)).payload == b"do you hear me"

    with Simulator("rak3172", 2, rate=FAST, options={"work_mode": 0}) as sim:
        run(scenario(sim))


def test_a_modem_that_stops_answering_is_probed_until_it_answers_again() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, reply_timeout=0.1, keepalive=0.2)
        async with opened(a, b):
            sim.mute(1)
            await until(lambda: not b.is_ready, what="the keepalive notices")
            sim.mute(1, False)  # answers again, without restarting
            await until(lambda: b.is_ready, what="b configured again")
            await eventually(lambda: a.transmit(b"still there?"))
            assert (await receive(b)).payload == b"still there?"

    with Simulator("rak3172", 2, rate=FAST) as sim:
        run(scenario(sim))


def test_a_port_that_disappears_is_reopened_when_it_comes_back() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim)
        async with opened(a, b):
            sim.unplug(1, 0.2)  # USB re-enumeration: gone, back at the same path, restarted
            await until(lambda: not b.is_ready, what="b notices")
            with pytest.raises(ModemError, match="not ready"):
                await b.transmit(b"x")
            await until(lambda: b.is_ready, 3.0, what="b reopened")
            assert b.stats.port_lost == 1 and b.stats.opens >= 2 and b.stats.open_failures >= 1
            await eventually(lambda: a.transmit(b"welcome back"))
            assert (await receive(b)).payload == b"welcome back"
            await b.transmit(b"thanks")
            assert (await receive(a)).payload == b"thanks"
            assert await pending(b) == []

    with Simulator("rak3172", 2, rate=FAST) as sim:
        run(scenario(sim))


def test_split_frequencies_retune_around_each_transmission() -> None:
    up, down = 868_100_000, 869_525_000

    async def scenario(sim: Simulator) -> None:
        station = Rak3172(sim.paths[0], RadioConfig(sf=7, frequency_hz=up), rx_frequency_hz=down)
        gateway = Rak3172(sim.paths[1], RadioConfig(sf=7, frequency_hz=down), rx_frequency_hz=up)
        async with opened(station, gateway):
            for i in range(5):
                await station.transmit(b"up %d" % i)
                assert (await receive(gateway)).payload == b"up %d" % i
                await gateway.transmit(b"down %d" % i)
                assert (await receive(station)).payload == b"down %d" % i

    with Simulator("rak3172", 2, rate=FAST) as sim:
        run(scenario(sim))
        freqs = [(t.sender.index, t.frequency_hz) for t in sim.transmissions()]
        assert freqs == [(0, up), (1, down)] * 5
