"""The simulated channel, observed through the real drivers: loss at the configured rate,
collisions (and spreading-factor orthogonality, capture), half-duplex radios, the RSSI/SNR
model, and the simulator's own duty-cycle check."""

from __future__ import annotations

import asyncio
import random

import pytest
from test_lora_modems_support import (
    FAST,
    collecting,
    nothing,
    opened,
    pending,
    receive,
    run,
)

from ocpp_iot.transports.lora import RadioConfig
from ocpp_iot.transports.lora.airtime import time_on_air
from ocpp_iot.transports.lora.modems import Rak3172
from ocpp_iot.transports.lora.sim import DutyCycleExceeded, DutyCycleMonitor, Simulator

RADIO = RadioConfig(sf=7, frequency_hz=868_100_000)


def rak(sim: Simulator, *radios: RadioConfig) -> list[Rak3172]:
    cfg = list(radios) or [RADIO] * len(sim.paths)
    return [Rak3172(p, r) for p, r in zip(sim.paths, cfg, strict=True)]


def test_random_loss_happens_at_the_configured_rate() -> None:
    n, loss = 400, 0.3

    async def scenario(sim: Simulator) -> int:
        a, b = rak(sim)
        async with opened(a, b), collecting(b) as got:
            for i in range(n):
                await a.transmit(i.to_bytes(2, "big"))
            await asyncio.sleep(0.05)
        assert b.stats.rx_overflow == 0
        assert [int.from_bytes(r.payload, "big") for r in got] == sorted(
            int.from_bytes(r.payload, "big") for r in got
        )
        return len(got)

    with Simulator("rak3172", 2, rate=FAST, loss=loss, seed=11) as sim:
        received = run(scenario(sim))
        counts = sim.counts()
    sigma = (n * loss * (1 - loss)) ** 0.5
    assert abs((n - received) - n * loss) < 4 * sigma, received
    assert counts["delivered"] == received and counts["lost"] == n - received


def test_overlapping_transmissions_collide_unless_their_spreading_factors_differ() -> None:
    sf7, sf9 = RadioConfig(sf=7), RadioConfig(sf=9)

    async def scenario(sim: Simulator) -> None:
        a, b, c7, c9 = rak(sim, sf7, sf7, sf7, sf9)
        async with opened(a, b, c7, c9):
            await asyncio.gather(a.transmit(b"A" * 40), b.transmit(b"B" * 40))
            await nothing(c7)  # both lost at every receiver on SF7
            assert await pending(a) == [] and await pending(b) == []
            b.radio = sf9
            await b.close()
            await b.open()  # b now sends on SF9: orthogonal to a's SF7
            await asyncio.gather(a.transmit(b"A" * 40), b.transmit(b"B" * 40))
            assert (await receive(c7)).payload == b"A" * 40
            assert (await receive(c9)).payload == b"B" * 40

    with Simulator("rak3172", 4, rate=10) as sim:
        run(scenario(sim))
        first = sim.transmissions()[:2]
        assert first[0].overlaps(first[1])
        assert all(t.outcome["rak3172-2"] == "collision" for t in first)


def test_the_capture_effect_lets_a_much_stronger_packet_through() -> None:
    async def scenario(sim: Simulator) -> None:
        near, far, rx = rak(sim)
        async with opened(near, far, rx):
            await asyncio.gather(near.transmit(b"near" * 10), far.transmit(b"far!" * 10))
            assert (await receive(rx)).payload == b"near" * 10
            await nothing(rx)

    positions = [(0.0, 0.0), (3000.0, 0.0), (20.0, 0.0)]
    with Simulator("rak3172", 3, rate=10, capture_db=6, positions=positions) as sim:
        run(scenario(sim))
        outcomes = sorted(t.outcome["rak3172-2"] for t in sim.transmissions())
        assert outcomes == ["collision", "delivered"]


def test_collisions_follow_the_timeline_and_the_aloha_rate() -> None:
    """Two stations, each sending one packet at a random moment of a window four times its
    time on air: they overlap with probability 2x - x^2 (x = 1/4); every overlapping pair is
    lost at the receiver and every other pair delivered."""
    rate, trials = 20.0, 60
    airtime = time_on_air(20, 7)
    window = 4 * airtime / rate  # wall seconds

    async def scenario(sim: Simulator) -> list[bool]:
        a, b, c = rak(sim)
        rng = random.Random(4)
        async with opened(a, b, c), collecting(c) as got:
            for i in range(trials):

                async def send(m: Rak3172, tag: bytes, i: int) -> None:
                    await asyncio.sleep(rng.uniform(0, window))
                    await m.transmit(tag + bytes([i]) * 19)

                await asyncio.gather(send(a, b"a", i), send(b, b"b", i))
        heard = [rx.payload[1] for rx in got]
        return [heard.count(i) == 2 for i in range(trials)]

    with Simulator("rak3172", 3, rate=rate, seed=4) as sim:
        heard = run(scenario(sim))
        txs = sim.transmissions()
    pairs = [(txs[2 * i], txs[2 * i + 1]) for i in range(trials)]
    overlapped = [x.overlaps(y) for x, y in pairs]
    for (x, y), hit, both in zip(pairs, overlapped, heard, strict=True):
        want = "collision" if hit else "delivered"
        assert x.outcome["rak3172-2"] == y.outcome["rak3172-2"] == want
        assert both == (not hit)
    share = sum(overlapped) / trials
    assert 0.2 < share < 0.7, share  # 2x - x^2 = 0.44; the wall clock jitters the offsets


def test_a_radio_on_air_hears_nothing() -> None:
    long = RadioConfig(sf=12, frequency_hz=868_100_000)

    async def scenario(sim: Simulator) -> None:
        a, b = rak(sim, long, long)
        async with opened(a, b):
            sending = asyncio.ensure_future(a.transmit(bytes(200)))  # 7.4 s on air: 74 ms here
            await asyncio.sleep(0.02)
            await b.transmit(b"short")  # b transmits while a's packet is in the air
            await sending
            assert await pending(b) == [] and await pending(a) == []

    with Simulator("rak3172", 2, rate=100) as sim:
        run(scenario(sim))
        first, second = sim.transmissions()
        assert first.overlaps(second)
        assert first.outcome == {"rak3172-1": "half_duplex"}
        assert second.outcome == {}  # a was on air when it began: not even a listener


def test_rssi_and_snr_fall_with_distance_and_far_radios_do_not_hear() -> None:
    positions = [(0.0, 0.0), (50.0, 0.0), (2000.0, 0.0), (10_000_000.0, 0.0)]

    async def scenario(sim: Simulator) -> tuple[list[float], list[float]]:
        a, near, far, moon = rak(sim)
        async with opened(a, near, far, moon):
            for _ in range(20):
                await a.transmit(b"ping")
            n, f = await pending(near), await pending(far)
            assert len(n) == len(f) == 20
            await nothing(moon)
            return [r.rssi or 0 for r in n], [r.rssi or 0 for r in f]

    with Simulator("rak3172", 4, rate=FAST, positions=positions) as sim:
        near, far = run(scenario(sim))
        assert sim.counts()["weak"] == 20
    assert min(near) > max(far)
    assert -90 < sum(near) / 20 < -50 and -130 < sum(far) / 20 < -90


def test_fixed_links_set_rssi_snr_and_loss_per_pair() -> None:
    async def scenario(sim: Simulator) -> None:
        a, b, c = rak(sim)
        sim.set_link(0, 1, rssi=-101.0, snr=-3.0)
        sim.set_link(0, 2, loss=1.0)
        async with opened(a, b, c):
            await a.transmit(b"x")
            rx = await receive(b)
            assert -110 < (rx.rssi or 0) < -92 and -8 < (rx.snr or 0) < 2
            await nothing(c)

    with Simulator("rak3172", 3, rate=FAST, propagation={"sigma": 2.0}) as sim:
        run(scenario(sim))


def test_the_simulator_catches_a_radio_that_exceeds_its_duty_cycle() -> None:
    slow = RadioConfig(sf=12, frequency_hz=868_100_000)  # 1 %: 36 s an hour
    gateway = RadioConfig(sf=12, frequency_hz=869_525_000)  # 10 %: 360 s an hour

    async def scenario(sim: Simulator) -> None:
        a, g, c = rak(sim, slow, gateway, slow)
        async with opened(a, g, c):
            for _ in range(5):  # 9.02 s each
                await a.transmit(bytes(255))
                await g.transmit(bytes(255))

    with Simulator("rak3172", 3, rate=FAST) as sim:
        run(scenario(sim))
        violations = sim.violations
        with pytest.raises(DutyCycleExceeded, match="868.0-868.6"):
            sim.check_duty_cycle()
    # 4 x 9.02 s = 36.08 s already exceeds the 36 s budget: the 4th and the 5th packet
    assert [(v.radio, v.kind) for v in violations] == [("rak3172-0", "budget")] * 2
    assert [round(v.used, 2) for v in violations] == [36.08, 45.1]


def test_duty_cycle_monitor_counts_partial_hours_straddles_and_gaps() -> None:
    m = DutyCycleMonitor()
    assert m.record("r", 868_100_000, 125_000, 0.0, 10.0) == []
    assert m.record("r", 868_100_000, 125_000, 3605.0, 3606.0) == []
    assert m.used("r", "868.0-868.6", 3606.0) == pytest.approx(4.0 + 1.0)  # 6..10 still in
    # an E32 at 868.0 MHz straddles two 1 % sub-bands: it counts against both
    bands, covered = m.touched(868_000_000, 125_000)
    assert covered and [b.name for b in bands] == ["865.0-868.0", "868.0-868.6"]
    # 868.65 MHz: in the gap kept for alarms
    (v,) = m.record("e", 868_650_000, 125_000, 0.0, 0.5)
    assert v.kind == "out_of_band"
    assert m.record("r", 868_100_000, 125_000, 3606.0, 3641.0) == []  # 36 s: the budget
    found = m.record("r", 868_100_000, 125_000, 3641.0, 3641.5)  # 36.5 s in the hour
    assert [(f.kind, f.used) for f in found] == [("budget", pytest.approx(36.5))]
    with pytest.raises(DutyCycleExceeded):
        m.check()
