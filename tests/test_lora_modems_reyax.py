"""The REYAX RYLR998 / RYLR896 driver through the simulator's ptys: configuration, every size
binary (data with CR, LF, NUL, commas) and hex, addresses, a reception meeting a reply,
garbage, a restart, a port that disappears."""

from __future__ import annotations

import random

import pytest
from test_lora_modems_support import (
    FAST,
    eventually,
    nothing,
    opened,
    payload,
    receive,
    run,
    until,
)

from ocpp_iot.transports.lora import RadioConfig
from ocpp_iot.transports.lora.modem import ModemError
from ocpp_iot.transports.lora.modems import Rylr
from ocpp_iot.transports.lora.sim import Simulator

RADIO = RadioConfig(sf=7, frequency_hz=868_100_000)


def modems(sim: Simulator, radio: RadioConfig = RADIO, **kw: object) -> list[Rylr]:
    kw.setdefault("reopen_delays", (0.05, 0.2))
    return [
        Rylr(p, radio, address=i + 1, **kw)  # type: ignore[arg-type]
        for i, p in enumerate(sim.paths)
    ]


def test_configures_address_network_band_and_parameters() -> None:
    radio = RadioConfig(sf=9, bandwidth_hz=250_000, coding_rate=3, preamble=12)

    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, radio, network_id=5, tx_power_dbm=14)
        async with opened(a, b):
            for i, r in enumerate(sim.radios):
                e = r.emulator
                got = sim.call(lambda e=e: (e.address, e.network, e.band, e.parameter, e.power))
                assert got == (i + 1, 5, 868_100_000, (9, 8, 3, 12), 14)
            await a.transmit(b"configured")
            assert (await receive(b)).payload == b"configured"
        # opened again: the settings are read and found right (nothing to write)
        await a.open()
        assert a.stats.refused == 0 and a.stats.configured == 2
        await a.close()

    with Simulator("rylr998", 2, rate=FAST) as sim:
        run(scenario(sim))
        assert not sim.errors


@pytest.mark.parametrize(("encoding", "top"), [("binary", 240), ("hex", 120)])
def test_every_size_arrives_intact_binary_or_hex(encoding: str, top: int) -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, encoding=encoding)
        assert a.max_payload == top
        rng = random.Random(top)
        sizes = range(1, top + 1) if encoding == "binary" else [*range(1, 20), 64, 119, 120]
        async with opened(a, b):
            for size in sizes:
                data = payload(rng, size)
                await a.transmit(data)
                rx = await receive(b)
                assert rx.payload == data, size
                assert rx.rssi is not None and rx.snr is not None
            with pytest.raises(ModemError):
                await a.transmit(bytes(top + 1))
            assert b.stats.bad_events == 0 and b.framing.garbage_bytes == 0

    with Simulator("rylr998", 2, rate=FAST) as sim:
        run(scenario(sim))
        airtimes = {t.air_bytes - len(t.payload) for t in sim.transmissions()}
        assert airtimes == {8}  # the module's own 8 bytes on air


def test_packets_reach_their_address_or_everyone() -> None:
    async def scenario(sim: Simulator) -> None:
        a = Rylr(sim.paths[0], RADIO, address=1, destination=2)
        b = Rylr(sim.paths[1], RADIO, address=2)
        c = Rylr(sim.paths[2], RADIO, address=3, destination=0)
        async with opened(a, b, c):
            await a.transmit(b"for 2 only")
            assert (await receive(b)).payload == b"for 2 only"
            await nothing(c)
            await c.transmit(b"for all")
            assert (await receive(a)).payload == b"for all"
            assert (await receive(b)).payload == b"for all"

    with Simulator("rylr998", 3, rate=FAST) as sim:
        run(scenario(sim))
        assert sim.counts()["filtered"] == 1


def test_a_packet_arriving_while_a_send_waits_for_its_ok_is_not_lost() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim)
        async with opened(a, b):
            for i in range(20):
                sim.interleave(0, b"+OK\r\n,%d,\r\n" % i, rssi=-70, snr=4)  # looks like a reply
                await a.transmit(b"sent %d" % i)
                assert (await receive(b)).payload == b"sent %d" % i
                rx = await receive(a)
                assert rx.payload == b"+OK\r\n,%d,\r\n" % i and (rx.rssi, rx.snr) == (-70, 4)
            assert a.stats.tx_failed == 0 and a.stats.unexpected_replies == 0

    with Simulator("rylr998", 2, rate=FAST) as sim:
        run(scenario(sim))


def test_garbage_partial_records_and_restarts_are_survived() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, partial_timeout=0.2)
        async with opened(a, b):
            sim.inject(1, b"\x00\xff junk \r\n+RCV=1,x,zz\r\n+RCV=1,3,ab,-5,1\r\n+WHAT\r\n")
            sim.inject(1, b"+RCV=1,10,abc")  # cut short, then silence
            await nothing(b, 0.3)
            sim.inject(1, b"\xfe+RCV=7,4,\r\n,\x00,-42,9\r\n")
            rx = await receive(b)
            assert rx.payload == b"\r\n,\x00" and (rx.rssi, rx.snr) == (-42, 9)
            assert b.stats.bad_events >= 2 and b.framing.stale_partials == 1
            assert b.framing.garbage_bytes > 0 and b.is_ready
            sim.reboot(1)  # +READY: the driver configures it again
            await until(lambda: b.stats.restarts_seen == 1, what="the restart")
            await eventually(lambda: b.transmit(b"rebooted"))
            assert (await receive(a)).payload == b"rebooted"
            assert b.stats.configured == 2

    with Simulator("rylr998", 2, rate=FAST) as sim:
        run(scenario(sim))


def test_a_port_that_disappears_is_reopened_when_it_comes_back() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, reply_timeout=0.2)
        async with opened(a, b):
            sim.unplug(0, 0.2)
            await until(lambda: not a.is_ready, what="a notices")
            await until(lambda: a.is_ready, 3.0, what="a reopened")
            await eventually(lambda: a.transmit(b"back again"))
            assert (await receive(b)).payload == b"back again"
            assert a.stats.port_lost == 1 and a.stats.recoveries >= 1

    with Simulator("rylr998", 2, rate=FAST) as sim:
        run(scenario(sim))


def test_the_rylr896_variant_works_the_same_way() -> None:
    radio = RadioConfig(sf=10, bandwidth_hz=125_000, preamble=4, frequency_hz=868_500_000)

    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, radio, variant="rylr896")
        async with opened(a, b):
            data = bytes(range(240))
            await a.transmit(data)
            assert (await receive(b)).payload == data

    with Simulator("rylr896", 2, rate=FAST) as sim:
        run(scenario(sim))
        (tx,) = sim.transmissions()
        assert (tx.sf, tx.preamble, tx.frequency_hz) == (10, 4, 868_500_000)
