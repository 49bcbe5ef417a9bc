"""The drivers' framing, sans-IO: lines, REYAX's length-delimited +RCV records, Ebyte frames
over sub-packets with RSSI bytes, and what each of them drops."""

from __future__ import annotations

import random

import pytest

from ocpp_iot.transports.lora.modems import EbyteDeframer, LineBuffer, crc16, ebyte_frame
from ocpp_iot.transports.lora.modems.reyax import ReyaxLines, parse_rcv


def chunks(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 9)
        out.append(data[i : i + n])
        i += n
    return out


def test_crc16_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF
    frame = ebyte_frame(b"abc")
    assert frame[0] == 3 and frame[1:4] == b"abc"
    assert int.from_bytes(frame[4:], "big") == crc16(b"\x03abc")
    with pytest.raises(ValueError):
        ebyte_frame(b"")


def test_lines_split_anywhere_crlf_or_lf_empty_lines_skipped() -> None:
    buf = LineBuffer()
    data = b"OK\r\n\r\nAT+NWM=0\n\r\n+EVT:TXP2P DONE\r\nAT_BUSY_ERROR\r\n"
    got = [line for part in chunks(data, random.Random(1)) for line in buf.feed(part, 0.0)]
    assert got == [b"OK", b"AT+NWM=0", b"+EVT:TXP2P DONE", b"AT_BUSY_ERROR"]
    assert buf.pending == 0 and buf.stats.garbage_bytes == 0


def test_a_partial_line_is_dropped_after_a_silence_and_overlong_lines_too() -> None:
    buf = LineBuffer(max_line=50, stale_after=0.5)
    assert buf.feed(b"+EVT:RXP2P:-40:5:AB", 0.0) == []
    assert buf.feed(b"CD\r\n", 0.2) == [b"+EVT:RXP2P:-40:5:ABCD"]  # soon enough: one line
    assert buf.feed(b"+EVT:RXP2P:-4", 1.0) == []
    assert buf.feed(b"OK\r\n", 2.0) == [b"OK"]  # after the silence: the partial went
    assert buf.stats.stale_partials == 1 and buf.stats.garbage_bytes == 13
    assert buf.feed(b"x" * 60, 2.1) == [] and buf.stats.overlong == 1
    assert buf.feed(b"y\r\nOK\r\n", 2.2) == [b"y", b"OK"]


def test_reyax_records_are_cut_by_their_length_whatever_the_data_holds() -> None:
    data = b"a,b\r\n\x00\n,\r-1,2\r\n"
    record = b"+RCV=12,%d," % len(data) + data + b",-73,9\r\n"
    stream = b"+OK\r\n" + record + b"+ERR=5\r\n" + record
    buf = ReyaxLines()
    got = [line for part in chunks(stream, random.Random(2)) for line in buf.feed(part, 0.0)]
    assert got[0] == b"+OK" and got[2] == b"+ERR=5"
    assert parse_rcv(got[1]) == parse_rcv(got[3]) == (12, data, -73, 9)
    assert len(got) == 4 and buf.stats.garbage_bytes == 0


def test_reyax_junk_before_a_line_is_skipped_and_bad_records_refused() -> None:
    buf = ReyaxLines()
    assert buf.feed(b"\x00\xffnoise+RCV=1,2,hi,-5,3\r\n", 0.0) == [b"+RCV=1,2,hi,-5,3"]
    assert buf.stats.garbage_bytes == 7
    assert buf.feed(b"junk without a plus\r\n+READY\r\n", 0.0) == [b"+READY"]
    for bad in (b"+RCV=1,5,hi,-5,3", b"+RCV=x,2,hi,-5,3", b"+RCV=1,2,hi,-5", b"+RCV=1,2,hix,1,2"):
        with pytest.raises(ValueError):
            parse_rcv(bad)


def frames_stream(
    payloads: list[bytes], sub: int, rssi: bool, rng: random.Random
) -> tuple[bytes, list[int]]:
    """What a receiving module writes for these frames: packets of ``sub`` bytes, each
    followed by an RSSI byte if ``rssi``."""
    out, rssis = bytearray(), []
    for p in payloads:
        frame = ebyte_frame(p)
        for i in range(0, len(frame), sub):
            out += frame[i : i + sub]
            if rssi:
                r = rng.randrange(100, 200)
                out.append(r)
        if rssi:
            rssis.append(r)
    return bytes(out), rssis


@pytest.mark.parametrize(("sub", "rssi"), [(58, False), (32, True), (240, True)])
def test_ebyte_frames_over_sub_packets_in_any_chunking(sub: int, rssi: bool) -> None:
    rng = random.Random(sub)
    payloads = [rng.randbytes(rng.randint(1, 255)) for _ in range(60)]
    stream, rssis = frames_stream(payloads, sub, rssi, rng)
    d = EbyteDeframer(sub, rssi_byte=rssi)
    got = [item for part in chunks(stream, rng) for item in d.feed(part, 0.0)]
    assert [p for p, _ in got] == payloads
    assert [r for _, r in got] == (rssis if rssi else [None] * 60)
    assert d.stats.crc_errors == 0 and d.stats.garbage_bytes == 0 and d.pending == 0


def test_ebyte_resynchronises_after_garbage_and_lost_sub_packets() -> None:
    rng = random.Random(9)
    payloads = [rng.randbytes(rng.randint(1, 150)) for _ in range(80)]
    d = EbyteDeframer(58)
    intact, got, now = [], [], 0.0
    for p in payloads:
        frame = ebyte_frame(p)
        packets = [frame[i : i + 58] for i in range(0, len(frame), 58)]
        roll = rng.random()
        if roll < 0.2 and len(packets) > 1:
            del packets[rng.randrange(len(packets))]  # one packet lost on air
        else:
            intact.append(p)
            if roll < 0.4:
                packets.insert(0, rng.randbytes(rng.randint(1, 30)))  # noise before it
        for packet in packets:
            now += 0.05
            got += [q for q, _ in d.feed(packet, now)]
        now += 2.0  # the silence between frames ends any frame left incomplete
    got += [q for q, _ in d.feed(b"", now)]
    # every intact frame arrives, in order, and nothing else does
    assert got == [p for p in payloads if p in got]
    assert len(intact) < len(payloads)
    missing = [p for p in intact if p not in got]
    assert not missing, f"{len(missing)} intact frames not found"
    assert d.stats.garbage_bytes > 0 and d.stats.stale_partials > 0
