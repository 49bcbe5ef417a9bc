"""Fragmentation, XOR parity, reassembly, and which wins on a lossy channel: retry or parity."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_iot.transports.lora import (
    ArqConfig,
    Direction,
    DutyCycleLedger,
    Endpoint,
    MalformedFrame,
    Priority,
    RadioConfig,
)
from ocpp_iot.transports.lora.airtime import SubBand
from ocpp_iot.transports.lora.fragment import (
    Reassembler,
    fits_whole,
    fragment_size,
    parity_count,
    parity_row,
    split,
)
from ocpp_iot.transports.lora.virtual_channel import VirtualChannel

E32, RYLR, RAK = 58, 240, 255


def test_fragment_sizes_per_modem() -> None:
    # 13 bytes of header (with fragment and ACK fields) and MIC per fragment
    assert [fragment_size(m) for m in (E32, RYLR, RAK)] == [45, 227, 242]
    # a whole frame has 11 bytes of overhead (with room for an ACK field)
    assert fits_whole(47, E32) and not fits_whole(48, E32)
    with pytest.raises(ValueError):
        fragment_size(20)


def test_split_layout_and_reassembly_in_any_order() -> None:
    msg = bytes(range(200))
    pieces = split(msg, 45)
    assert len(pieces) == 5  # 2-byte length + 200 bytes = 202 -> 4 full + 22
    assert pieces[0][:2] == (200).to_bytes(2, "big") and pieces[0][2:] == msg[:43]
    assert [len(p) for p in pieces] == [45, 45, 45, 45, 22]
    for order in (range(5), reversed(range(5)), [3, 1, 4, 0, 2]):
        r = Reassembler(timeout=10)
        results = [r.add(1000, i, 5, 0, pieces[i], 0.0) for i in order]
        assert results[:-1] == [None] * 4 and results[-1] == msg
        assert r.was_completed(1000)
        assert r.add(1000, 0, 5, 0, pieces[0], 0.0) is None  # late duplicate: nothing twice


def test_parity_rows_are_fixed_so_the_other_side_can_rebuild_them() -> None:
    assert parity_row(5, 0) == 0b11111
    # rows 1..6: fragment i is in row j when bit j-1 of i is set
    assert [parity_row(8, j) for j in (1, 2, 3)] == [0b10101010, 0b11001100, 0b11110000]
    assert parity_row(2, 3) == 1 << (3 % 2)  # empty: one fragment instead
    # rows 7..14: the xorshift32 generator of docs/lora.md; these values pin it down
    assert [parity_row(16, j) for j in (7, 8)] == [0x52CA, 0x071A]
    assert all(0 < parity_row(64, j) < 1 << 64 for j in range(15))
    assert len({parity_row(40, j) for j in range(15)}) == 15


def test_single_parity_repairs_any_one_loss_and_four_repair_any_three() -> None:
    msg = bytes(random.Random(3).randbytes(350))
    n = len(split(msg, 45))
    assert n == 8
    pieces = split(msg, 45, parity=1)
    for lost in range(n):  # any one data fragment lost: the XOR of all repairs it
        r = Reassembler(timeout=10)
        out = [r.add(7, i, n, 1, p, 0) for i, p in enumerate(pieces) if i != lost]
        assert out[-1] == msg
    pieces = split(msg, 45, parity=4)  # rows 0..3: distinct columns for 8 fragments
    for k in (2, 3):
        for lost in itertools.combinations(range(n), k):
            r = Reassembler(timeout=10)
            out = [r.add(7, i, n, 4, p, 0) for i, p in enumerate(pieces) if i not in lost]
            assert msg in out, lost


@settings(max_examples=60, deadline=None)
@given(
    msg=st.binary(min_size=44, max_size=700),  # 44 + 2 > 45: fragmented
    parity=st.integers(0, 6),
    keep=st.lists(st.booleans(), min_size=64, max_size=64),
)
def test_whatever_arrives_rebuilds_the_message_or_nothing(
    msg: bytes, parity: int, keep: list[bool]
) -> None:
    pieces = split(msg, 45, parity)
    n = len(pieces) - parity
    r = Reassembler(timeout=10)
    results = [r.add(1, i, n, parity, p, 0) for i, p in enumerate(pieces) if keep[i]]
    done = [x for x in results if x is not None]
    assert done in ([], [msg])  # never a wrong message, at most once
    if all(keep[:n]):
        assert done == [msg]  # all data fragments: always complete


def test_contradictory_fragments_are_malformed_and_dropped() -> None:
    pieces = split(bytes(100), 45)
    r = Reassembler(timeout=10)
    r.add(5, 0, 3, 0, pieces[0], 0)
    with pytest.raises(MalformedFrame):
        r.add(5, 1, 4, 0, pieces[1], 0)  # other counts for the same message
    r.add(6, 0, 3, 0, pieces[0], 0)
    with pytest.raises(MalformedFrame):
        r.add(6, 1, 3, 0, pieces[1][:30], 0)  # a short middle fragment
    r.add(8, 0, 3, 0, pieces[0], 0)
    r.add(8, 1, 3, 0, pieces[1], 0)
    with pytest.raises(MalformedFrame):
        r.add(8, 2, 3, 0, pieces[2] + b"xx", 0)  # longer than the length says
    assert r.dropped == 3 and not r.pending


def test_reassembly_times_out_and_is_bounded() -> None:
    pieces = split(bytes(100), 45)
    r = Reassembler(timeout=30, limit=2)
    r.add(1, 0, 3, 0, pieces[0], 0.0)
    r.add(2, 0, 3, 0, pieces[0], 10.0)
    assert r.deadline() == 30.0
    r.add(3, 0, 3, 0, pieces[0], 11.0)  # a third displaces the oldest
    assert set(r.pending) == {2, 3}
    assert r.expire(39.9) == [] and r.expire(40.0) == [2]
    assert r.received(3) == 0b1 and r.dropped == 2


def test_limits() -> None:
    assert parity_count(1, 0.5) == 0  # no parity for a whole message
    assert parity_count(8, 0.25) == 2 and parity_count(60, 0.5) == 4 and parity_count(40, 1) == 15
    with pytest.raises(ValueError):
        split(bytes(64 * 45), 45)  # more than 64 positions
    with pytest.raises(ValueError):
        split(bytes(1 << 16), 242)


# -- the measurement: per-fragment retry (NACK) against parity, through the real endpoints -----

KEY = bytes(range(16))
NO_LIMIT = (SubBand("measurement", 863_000_000, 870_000_000, 1.0),)  # duty cycle out of it


def measure(
    fragments: int, loss: float, parity: float, seeds: int, messages: int, sf: int = 9
) -> tuple[float, float, int]:
    """(airtime per message, latency per message, failures) for E32-sized fragments."""
    size = fragments * fragment_size(E32) - 2
    airtime = latency = 0.0
    failed = done = 0
    for seed in range(seeds):
        arq = ArqConfig(parity_ratio=parity)
        st = Endpoint(
            Direction.UP,
            RadioConfig(sf=sf, max_packet=E32),
            arq,
            ledger=DutyCycleLedger(NO_LIMIT),
            rng=random.Random(seed),
        )
        gw = Endpoint(
            Direction.DOWN,
            RadioConfig(sf=sf, max_packet=E32, frequency_hz=869_525_000),
            arq,
            ledger=DutyCycleLedger(NO_LIMIT),
            rng=random.Random(seed + 100),
        )
        st.add_peer(1, KEY)
        gw.add_peer(1, KEY)
        ch = VirtualChannel({"st": st, "gw": gw}, loss=loss, seed=seed)
        for i in range(messages):  # one message at a time: latency is per message
            start = ch.now
            ch.send("st", 1, bytes([i]) * size, tag=i, priority=Priority.BULK)
            ch.run(1e9, stop=lambda ch=ch, i=i: len(ch.acked["st"]) + len(ch.failed["st"]) > i)
            latency += ch.now - start
        assert [d for _, d in ch.delivered["gw"]] == [bytes([i]) * size for i in range(messages)]
        airtime += ch.airtime()
        failed += len(ch.failed["st"])
        done += messages
    return airtime / done, latency / done, failed


@pytest.mark.parametrize("loss", [0.1, 0.2])
def test_measurement_retry_against_parity(loss: float, capsys: pytest.CaptureFixture[str]) -> None:
    rows = {p: measure(8, loss, p, seeds=3, messages=6) for p in (0.0, 0.25)}
    with capsys.disabled():
        for p, (air, lat, failed) in rows.items():
            print(
                f"\n8 fragments, {loss:.0%} loss, parity {p}: {air:.2f} s airtime, "
                f"{lat:.2f} s latency per message, {failed} failed",
                end="",
            )
    retry, parity = rows[0.0], rows[0.25]
    assert retry[2] == parity[2] == 0
    # with cheap NACKs, resending only the missing fragments spends less airtime than parity
    assert retry[0] < parity[0]
    # and either costs at least the 8 data fragments' airtime and no more than twice that
    from ocpp_iot.transports.lora import time_on_air

    floor = 8 * time_on_air(E32, 9)
    assert floor < retry[0] < 2 * floor


if __name__ == "__main__":  # the full table in docs/lora.md: python tests/test_lora_fragment.py
    for n in (4, 8, 16):
        for loss in (0.1, 0.2):
            for p in (0.0, 0.125, 0.25, 0.5):
                air, lat, failed = measure(n, loss, p, seeds=5, messages=10)
                print(f"| {n} | {loss:.0%} | {p} | {air:.3f} | {lat:.2f} | {failed} |")
