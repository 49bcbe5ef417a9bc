"""LoRa time on air (Semtech's formula) and the EU868 duty-cycle ledger."""

from __future__ import annotations

import random

import pytest

from ocpp_iot.transports.lora import EU868_BANDS, DutyCycleLedger, band_for, time_on_air
from ocpp_iot.transports.lora.airtime import HOUR

# Published reference values, all for 125 kHz, an 8-symbol preamble, explicit header, CRC on:
#
# - the issue (17): SF9, 40 bytes, 4/5: ~288 ms;
# - Thomas Telkamp's LoRa airtime sheet ("Formulas taken from AN1200.13"),
#   https://docs.google.com/spreadsheets/d/1voGAtQAjC1qBmaVuP1ApNKs1ekgUjavHuVQIXyYSvNc :
#   SF9, 13 bytes, 4/5, no LDRO: Tsym 4.096 ms, 28 payload symbols, Tpacket 164.864 ms;
# - the same sheet extended for SF6..SF12 (LDRO "auto": on for SF11/SF12 at 125 kHz),
#   https://docs.google.com/spreadsheets/d/1eL1nHxMidIcIdDE_l-DoY3kmE2e8b0YpOBW64WnYxj8 :
#   24 + 13 = 37 bytes, 4/5: SF7 82.176, SF8 143.872, SF9 267.264, SF10 493.568,
#   SF11 1069.056, SF12 1974.272 ms (payload symbols 68, 58, 53, 48, 53, 48);
# - the Rust crate lora-modulation's documented example (docs.rs/lora-modulation):
#   SF9, 12 bytes, 4/5: 144.384 ms.
REFERENCE = [
    # (payload bytes, SF, coding rate, expected seconds)
    (40, 9, 1, 0.287744),
    (13, 9, 1, 0.164864),
    (37, 7, 1, 0.082176),
    (37, 8, 1, 0.143872),
    (37, 9, 1, 0.267264),
    (37, 10, 1, 0.493568),
    (37, 11, 1, 1.069056),
    (37, 12, 1, 1.974272),
    (12, 9, 1, 0.144384),
]


@pytest.mark.parametrize("size,sf,cr,expected", REFERENCE)
def test_time_on_air_matches_published_values(size: int, sf: int, cr: int, expected: float) -> None:
    assert time_on_air(size, sf, coding_rate=cr) == pytest.approx(expected, abs=1e-9)


def test_the_issue_figure_40_bytes_at_sf9_is_about_288_ms() -> None:
    assert round(time_on_air(40, 9) * 1000) == 288


def test_low_data_rate_optimisation_is_automatic_from_16_ms_symbols() -> None:
    # SF11/125 kHz: 16.384 ms symbols -> on; SF10: 8.192 ms -> off; SF12/250 kHz: 16.384 -> on
    assert time_on_air(37, 11) == time_on_air(37, 11, low_data_rate=True)
    assert time_on_air(37, 11) != time_on_air(37, 11, low_data_rate=False)
    assert time_on_air(37, 10) == time_on_air(37, 10, low_data_rate=False)
    assert time_on_air(37, 12, 250000) == time_on_air(37, 12, 250000, low_data_rate=True)
    assert time_on_air(37, 11, 250000) == time_on_air(37, 11, 250000, low_data_rate=False)


def test_every_parameter_moves_the_result_the_right_way() -> None:
    base = time_on_air(40, 9)
    assert time_on_air(41, 9) >= base and time_on_air(200, 9) > base
    assert time_on_air(40, 10) > base and time_on_air(40, 8) < base
    assert time_on_air(40, 9, 250000) == pytest.approx(base / 2)
    assert time_on_air(40, 9, coding_rate=4) > time_on_air(40, 9, coding_rate=2) > base
    # each preamble symbol adds one symbol time (4.096 ms at SF9/125 kHz)
    assert time_on_air(40, 9, preamble=9) - base == pytest.approx(0.004096)
    assert time_on_air(40, 9, crc=False) <= base
    assert time_on_air(40, 9, explicit_header=False) <= base


@pytest.mark.parametrize(
    "kwargs",
    [{"sf": 6}, {"sf": 13}, {"coding_rate": 0}, {"coding_rate": 5}, {"bandwidth_hz": 0}],
)
def test_impossible_settings_are_refused(kwargs: dict[str, int]) -> None:
    args = {"payload_bytes": 10, "sf": 9, **kwargs}
    with pytest.raises(ValueError):
        time_on_air(**args)
    with pytest.raises(ValueError):
        time_on_air(256, 9)


# -- sub-bands and the ledger ---------------------------------------------------------------


def test_sub_bands_and_their_limits() -> None:
    assert band_for(868_100_000).duty_cycle == 0.01  # 868.0-868.6: 1 % (36 s an hour)
    assert band_for(868_500_000).budget == pytest.approx(36.0)
    assert band_for(869_525_000).duty_cycle == 0.10  # 869.4-869.65: 10 %
    assert band_for(867_100_000).duty_cycle == 0.01  # 865-868
    assert band_for(864_000_000).duty_cycle == 0.001  # 863-865
    assert band_for(868_900_000).duty_cycle == 0.001  # 868.7-869.2
    assert band_for(869_850_000).duty_cycle == 0.01  # 869.7-870
    for f in (868_650_000, 869_300_000, 869_675_000, 870_500_000, 862_000_000):
        with pytest.raises(ValueError):
            band_for(f)  # alarm bands / outside 863-870 MHz
    with pytest.raises(ValueError):
        band_for(868_580_000)  # a 125 kHz channel there sticks out of 868.0-868.6
    assert len({b.name for b in EU868_BANDS}) == len(EU868_BANDS)


def test_ledger_spends_the_budget_then_waits_for_the_oldest_to_leave_the_hour() -> None:
    ledger = DutyCycleLedger()
    f, a = 868_100_000, 1.0
    t = 0.0
    for _ in range(36):  # 36 one-second frames fill the 1 % budget
        assert ledger.can_send(f, a, t)
        ledger.record(f, a, t)
        t += 10.0
    assert ledger.used(f, t) == pytest.approx(36.0)
    assert not ledger.can_send(f, a, t)
    # the first frame [0, 1) leaves the hour that ends at 3601: a 1 s frame may start at 3600
    assert ledger.wait_until(f, a, t) == pytest.approx(HOUR)
    assert ledger.can_send(f, a, HOUR)
    # the other sub-bands have their own budgets
    assert ledger.can_send(869_525_000, a, t) and ledger.can_send(867_500_000, a, t)
    with pytest.raises(ValueError):
        ledger.wait_until(f, 37.0, t)  # longer than the whole budget: never


def test_ledger_never_lets_any_hour_exceed_the_budget_and_survives_a_restart() -> None:
    rng = random.Random(5)
    ledger = DutyCycleLedger()
    f = 868_300_000
    sent: list[tuple[float, float]] = []
    now = 0.0
    while now < 4 * HOUR:
        airtime = rng.uniform(0.05, 2.5)
        now = ledger.wait_until(f, airtime, now)
        ledger.record(f, airtime, now)
        sent.append((now, airtime))
        now += airtime + rng.expovariate(1 / 5.0)
        if rng.random() < 0.01:  # a restart: the ledger is persisted and read back
            ledger = DutyCycleLedger.from_json(ledger.to_json())
    # an independent check over windows ending at every transmission's end
    for s, a in sent:
        end = s + a
        used = sum(max(0.0, min(e + b, end) - max(e, end - HOUR)) for e, b in sent)
        assert used <= 36.0 + 1e-6
    total = sum(a for _, a in sent)
    assert total > 3.5 * 36.0  # and it did use most of the budget, not sit idle


def test_a_reserve_keeps_part_of_the_budget_for_other_frames() -> None:
    ledger = DutyCycleLedger()
    f = 868_100_000
    for i in range(32):
        ledger.record(f, 1.0, i * 10.0)
    # 32 of 36 s spent: a 1 s frame fits, but not if 3.6 s (10 %) must stay unused
    assert ledger.can_send(f, 1.0, 400.0)
    assert not ledger.can_send(f, 1.0, 400.0, reserve=3.6)
    assert ledger.wait_until(f, 1.0, 400.0, reserve=3.6) == pytest.approx(HOUR)  # 1st leaves
    assert ledger.remaining(f, 400.0) == pytest.approx(4.0)
