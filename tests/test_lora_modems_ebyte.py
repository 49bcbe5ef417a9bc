"""The Ebyte E32 / E22 driver through the simulator's ptys: its own frames (length, CRC) over
the modules' sub-packets, "sent" by time on air or the AUX pin, the RSSI byte, garbage, lost
sub-packets, a hung module, a port that disappears, transparent mode."""

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
from ocpp_iot.transports.lora.modems import Ebyte, ebyte_frame
from ocpp_iot.transports.lora.sim import Simulator

E32 = RadioConfig(sf=9, frequency_hz=868_000_000)  # channel 6
E22 = RadioConfig(sf=9, frequency_hz=868_125_000)  # channel 18
#: every size that fits one E32 packet (55 + 3 framing bytes), then each side of every packet
#: boundary up to 255 (frames of 2 to 5 packets)
SIZES = sorted({*range(1, 56), *(n for k in range(1, 5) for n in range(58 * k - 5, 58 * k + 1)),
                *range(250, 256)})  # fmt: skip


def modems(sim: Simulator, radio: RadioConfig, *, aux: bool = False, **kw: object) -> list[Ebyte]:
    kw.setdefault("reopen_delays", (0.05, 0.2))
    kw.setdefault("baudrate", 115200)  # "sent" waits the UART time too: 9600 baud is slow
    out = []
    for r in sim.radios:
        pin = r.emulator.aux if aux else None  # the AUX pin, as a GPIO read would give it
        out.append(
            Ebyte(r.path, radio, variant=r.kind, airtime_scale=1 / FAST, aux=pin, **kw)  # type: ignore[arg-type]
        )
    return out


def test_e32_every_size_in_one_sub_packet_and_every_boundary_up_to_255_bytes() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, E32)
        assert a.max_payload == 55 and a.channel == 6
        rng = random.Random(32)
        async with opened(a, b):
            for size in SIZES:
                data = payload(rng, size)
                await a.transmit(data)
                rx = await receive(b)
                assert rx.payload == data, size
                assert rx.rssi is None  # the E32 has no RSSI byte
            with pytest.raises(ModemError):
                await a.transmit(bytes(256))
            assert b.framing.crc_errors == 0 and b.framing.garbage_bytes == 0

    with Simulator("e32", 2, rate=FAST) as sim:
        run(scenario(sim), 30)
        sizes = [len(t.payload) for t in sim.transmissions()]
        assert max(sizes) == 58 and len(sizes) == sum(-(-(n + 3) // 58) for n in SIZES)
        assert not sim.errors


@pytest.mark.parametrize("sub_packet", [240, 32])
def test_e22_with_the_rssi_byte_and_aux_pin(sub_packet: int) -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, E22, aux=True, rssi_byte=True, sub_packet=sub_packet)
        assert a.max_payload == sub_packet - 3
        rng = random.Random(sub_packet)
        async with opened(a, b):
            for size in [1, 2, 28, 29, 30, 61, 100, 236, 237, 238, 255]:
                data = payload(rng, size)
                await a.transmit(data)
                # AUX high again: every sub-packet is off the air
                assert sim.call(lambda: sim.radios[0].emulator.aux())
                rx = await receive(b)
                assert rx.payload == data, size
                assert rx.rssi is not None and -140 < rx.rssi < 0

    opts = {"rssi_byte": True, "sub_packet": sub_packet}
    with Simulator("e22", 2, rate=FAST, options=opts) as sim:
        run(scenario(sim))


def test_garbage_and_lost_sub_packets_cost_only_the_frames_they_hit() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, E32)
        rng = random.Random(3)
        async with opened(a, b):
            sim.inject(1, b"\x00\x07noise\xff" + ebyte_frame(b"framed")[:-1] + b"\x42")
            sim.inject(1, rng.randbytes(40) + ebyte_frame(b"after noise"))
            assert (await receive(b)).payload == b"after noise"
            assert b.framing.crc_errors >= 1 and b.framing.garbage_bytes > 40
            # lose sub-packets at random: frames of 2..4 packets come whole or not at all
            sim.set_loss(0.25)
            sent = [payload(rng, rng.randrange(60, 200)) for _ in range(40)]
            for data in sent:
                await a.transmit(data)
            got = [rx.payload for rx in await pending(b)]
            assert got and all(g in sent for g in got)
            assert got == [s for s in sent if s in got]  # in order, none doubled
            assert len(got) < len(sent)
            sim.set_loss(0.0)
            await a.transmit(b"clean again")
            got = [rx.payload for rx in await pending(b)]
            assert got == [b"clean again"]

    with Simulator("e32", 2, rate=FAST) as sim:
        run(scenario(sim))


def test_a_hung_module_holding_aux_low_is_reported_and_survived() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, E22, aux=True, reply_timeout=0.1)
        async with opened(a, b):
            sim.mute(0)
            for _ in range(2):
                with pytest.raises(ModemError, match="AUX"):
                    await a.transmit(b"stuck")
            await until(lambda: not a.is_ready, what="a resets")
            sim.mute(0, False)
            await until(lambda: a.is_ready, what="a back")
            await eventually(lambda: a.transmit(b"unstuck"))
            assert (await receive(b)).payload == b"unstuck"
            assert a.stats.reply_timeouts >= 2 and a.stats.recoveries >= 1

    with Simulator("e22", 2, rate=FAST) as sim:
        run(scenario(sim))


def test_a_port_that_disappears_is_reopened_and_receptions_go_on() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, E32)
        async with opened(a, b):
            sim.unplug(1, 0.2)
            await until(lambda: not b.is_ready, what="b notices")
            await until(lambda: b.is_ready, 3.0, what="b reopened")
            await until(lambda: sim.call(lambda: sim.radios[1].emulator.aux()), what="booted")
            await a.transmit(b"are you back")
            assert (await receive(b)).payload == b"are you back"
            assert b.stats.port_lost == 1

    with Simulator("e32", 2, rate=FAST) as sim:
        run(scenario(sim))


def test_a_frame_received_while_sending_and_the_address_filter() -> None:
    async def scenario(sim: Simulator) -> None:
        a = Ebyte(sim.paths[0], E22, variant="e22", destination=2, airtime_scale=1 / FAST)
        b = Ebyte(sim.paths[1], E22, variant="e22", airtime_scale=1 / FAST)
        c = Ebyte(sim.paths[2], E22, variant="e22", airtime_scale=1 / FAST)
        async with opened(a, b, c):
            sim.interleave(0, ebyte_frame(b"meanwhile"))  # comes out while a's bytes go in
            await a.transmit(b"for address 2")
            assert (await receive(a)).payload == b"meanwhile"
            assert (await receive(b)).payload == b"for address 2"
            await nothing(c)

    with Simulator("e22", 3, rate=FAST, radio_options=[{}, {"address": 2}, {"address": 3}]) as sim:
        run(scenario(sim))
        assert sim.counts()["filtered"] == 1


def test_transparent_mode_sends_no_header() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b = modems(sim, E32, fixed=False)
        async with opened(a, b):
            await a.transmit(b"no header")
            assert (await receive(b)).payload == b"no header"

    opts = {"fixed": False, "address": 7}
    with Simulator("e32", 2, rate=FAST, options=opts) as sim:
        run(scenario(sim))
        (tx,) = sim.transmissions()
        assert tx.payload == ebyte_frame(b"no header") and tx.meta["dest"] == 7
