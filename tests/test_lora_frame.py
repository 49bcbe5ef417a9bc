"""The LoRa radio frame (AES-CCM, 4-byte MIC), its counters and the replay window."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_iot.transports.lora import (
    BadMic,
    CounterJump,
    CounterState,
    Direction,
    Frame,
    FrameError,
    FrameType,
    MalformedFrame,
    ReceiveWindow,
    Replayed,
    SendCounter,
    TooOld,
    TruncatedFrame,
    UnsupportedVersion,
    decode,
    peek,
    seal,
)
from ocpp_iot.transports.lora.frame import (
    MAX_PACKET,
    Control,
    Fragment,
    open_frame,
    overhead,
    reconstruct_counter,
)

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
OTHER = bytes.fromhex("f0e1d2c3b4a5968778695a4b3c2d1e0f")
CBOR = bytes.fromhex("8402613163426f6f74a1667265617330")  # any bytes: the link does not parse


def data(counter: int = 7, payload: bytes = CBOR, **kw: object) -> Frame:
    return Frame(FrameType.DATA, Direction.UP, 0x0102, counter, payload, **kw)  # type: ignore[arg-type]


# -- layout and round trip ----------------------------------------------------------------


def test_layout_of_a_whole_data_frame_byte_by_byte() -> None:
    raw = seal(data(0x12345, answer=True), KEY)
    # FHDR: version 1, DATA, UP, no FRAG, no ACKF, ANS -> 0b01_00_0_0_0_1
    assert raw[0] == 0b0100_0001
    assert raw[1:3] == b"\x01\x02"  # the station's address
    assert raw[3:5] == b"\x23\x45"  # the low 16 bits of the counter
    assert len(raw) == 5 + len(CBOR) + 4  # header, ciphertext (CCM: same length), MIC
    assert CBOR not in raw  # encrypted


def test_layout_with_fragment_and_ack_fields() -> None:
    f = Frame(FrameType.DATA, Direction.DOWN, 9, 70000, b"abc", Fragment(5, 12, 3), ack=0xBEEF)
    raw = seal(f, KEY)
    assert raw[0] == 0b0100_1110  # DATA, DOWN, FRAG, ACKF
    assert raw[3:5] == (70000 & 0xFFFF).to_bytes(2, "big")
    assert int.from_bytes(raw[5:7], "big") == 5 << 10 | 11 << 4 | 3
    assert raw[7:9] == b"\xbe\xef"
    assert len(raw) == overhead(True, True) + 3
    h = peek(raw)
    assert (h.fragment, h.ack, h.size) == (Fragment(5, 12, 3), 0xBEEF, 9)
    assert decode(raw, KEY, highest=69999) == f


@pytest.mark.parametrize(
    "frame",
    [
        data(),
        data(0, b"x", ack=3),
        Frame(FrameType.ACK, Direction.DOWN, 1, 5, ack=4),
        Frame(FrameType.CTRL, Direction.UP, 1, 6, bytes((Control.NACK, 0, 4, 0x0B))),
        Frame(FrameType.REPLY, Direction.DOWN, 1, 6, b"answer", ack=0x1234),
        Frame(
            FrameType.CTRL, Direction.DOWN, 65535, 9, bytes((Control.RESYNC_REQUEST,)) + b"\0\0\1\0"
        ),
    ],
)
def test_round_trip(frame: Frame) -> None:
    assert decode(seal(frame, KEY), KEY, highest=frame.counter - 1) == frame


def test_a_bare_ack_is_11_bytes() -> None:
    assert len(seal(Frame(FrameType.ACK, Direction.DOWN, 1, 5, ack=4), KEY)) == 11


def test_a_reply_acknowledges_and_carries_a_whole_answer() -> None:
    raw = seal(Frame(FrameType.REPLY, Direction.DOWN, 3, 9, b"ok", ack=8), KEY)
    assert raw[0] == 0b0110_1010 and raw[5:7] == b"\x00\x08"  # REPLY, DOWN, ACKF
    for bad in (
        Frame(FrameType.REPLY, Direction.DOWN, 3, 9, b"ok"),  # acknowledges nothing
        Frame(FrameType.REPLY, Direction.DOWN, 3, 9, b"", ack=8),  # answers nothing
        Frame(FrameType.REPLY, Direction.DOWN, 3, 9, b"x", Fragment(0, 2), ack=8),  # whole only
        Frame(FrameType.CTRL, Direction.DOWN, 3, 9, bytes((Control.NACK, 0, 1))),  # no bitmap
        Frame(FrameType.CTRL, Direction.DOWN, 3, 9, bytes((Control.NACK,)), ack=1),
    ):
        with pytest.raises(ValueError):
            seal(bad, KEY)


# -- what is rejected, and how ---------------------------------------------------------------


def test_tampering_with_any_byte_is_rejected() -> None:
    raw = seal(data(1000, ack=7, fragment=Fragment(1, 3)), KEY)
    for i in range(len(raw)):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(raw)
            bad[i] ^= flip
            with pytest.raises(FrameError):
                decode(bytes(bad), KEY, highest=999)


def test_wrong_key_and_forged_mic_are_bad_mic() -> None:
    raw = seal(data(), KEY)
    with pytest.raises(BadMic):
        decode(raw, OTHER, highest=6)
    with pytest.raises(BadMic):
        decode(raw[:-4] + b"\0\0\0\0", KEY, highest=6)
    assert isinstance(BadMic("x"), ValueError)


def test_truncated_and_malformed_frames() -> None:
    raw = seal(data(ack=1, fragment=Fragment(0, 2)), KEY)
    for n in range(0, 13):
        with pytest.raises(TruncatedFrame):
            peek(raw[:n])
    with pytest.raises(BadMic):
        decode(raw[:-1], KEY, highest=6)  # header intact, ciphertext cut
    with pytest.raises(UnsupportedVersion):
        peek(bytes((0b1000_0000,)) + raw[1:])
    with pytest.raises(MalformedFrame):
        peek(bytes((0b0101_0100,)) + raw[1:])  # an ACK frame with fragment fields
    with pytest.raises(MalformedFrame):
        peek(b"\x40" + b"\0" * 255)  # longer than a LoRa packet
    # fragment index beyond its counts
    with pytest.raises(MalformedFrame):
        peek(raw[:5] + (40 << 10 | 1 << 4).to_bytes(2, "big") + raw[7:])


def test_authentic_frames_with_impossible_plaintext_are_malformed_not_crashes() -> None:
    # an ACK frame whose plaintext is not empty, sealed by a buggy peer with the right key
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

    header = bytes((0b0101_0010,)) + b"\x00\x01\x00\x05" + b"\x00\x04"
    nonce = b"\x00\x01\x00" + (5).to_bytes(4, "big")
    raw = header + AESCCM(KEY, tag_length=4).encrypt(nonce, b"junk", header)
    with pytest.raises(MalformedFrame):
        decode(raw, KEY, highest=4)


def test_seal_refuses_frames_that_cannot_exist() -> None:
    with pytest.raises(ValueError):
        seal(data(payload=b""), KEY)
    with pytest.raises(ValueError):
        seal(data(payload=b"x" * (MAX_PACKET - 8)), KEY)
    with pytest.raises(ValueError):
        seal(data(counter=1 << 32), KEY)
    with pytest.raises(ValueError):
        seal(Frame(FrameType.ACK, Direction.UP, 1, 1), KEY)  # an ACK must acknowledge
    with pytest.raises(ValueError):
        seal(data(), b"short")


@settings(max_examples=100, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=MAX_PACKET - overhead(False, True)),
    counter=st.integers(0, (1 << 32) - 1),
    address=st.integers(0, 0xFFFF),
    ack=st.none() | st.integers(0, 0xFFFF),
    answer=st.booleans(),
)
def test_random_payloads_round_trip(
    payload: bytes, counter: int, address: int, ack: int | None, answer: bool
) -> None:
    f = Frame(FrameType.DATA, Direction.UP, address, counter, payload, ack=ack, answer=answer)
    raw = seal(f, KEY)
    assert len(raw) == len(payload) + overhead(False, ack is not None)
    assert decode(raw, KEY, highest=counter - 1) == f


@settings(max_examples=250, deadline=None)
@given(garbage=st.binary(max_size=300), highest=st.integers(-1, (1 << 32) - 2))
def test_garbage_raises_frame_errors_only(garbage: bytes, highest: int) -> None:
    # random bytes never pass the MIC (a chance of 2**-32 a try); any other exception fails too
    with pytest.raises(FrameError):
        decode(garbage, KEY, highest=highest)


# -- counter reconstruction (16 bits on air) ----------------------------------------------------


def test_counter_wraps_over_16_bits() -> None:
    assert reconstruct_counter(0x0000, 0xFFFF) == 0x10000
    assert reconstruct_counter(0x0005, 0x1FFFA) == 0x20005
    assert reconstruct_counter(0xFFFA, 0x20003) == 0x1FFFA  # a little behind: old, not ahead
    assert reconstruct_counter(0x1234, -1) == 0x1234  # first frame
    assert reconstruct_counter(0xFFF0, -1) == 0xFFF0  # never negative
    assert reconstruct_counter(0x0001, (1 << 32) - 3) == (1 << 32) - 0xFFFF  # never >= 2**32
    # a frame sent at 0x10000 decodes with the receiver at 0xFFFF
    raw = seal(data(0x10000), KEY)
    assert decode(raw, KEY, highest=0xFFFF).counter == 0x10000
    # but with the receiver more than 2**15 away, the reconstruction is wrong and the MIC says so
    with pytest.raises(BadMic):
        decode(raw, KEY, highest=0x10000 + 40000)


def test_window_walks_across_the_16_bit_wrap() -> None:
    w = ReceiveWindow(highest=0xFFEF)
    sender = SendCounter(next=0xFFF0)
    for _ in range(40):
        c, _ = sender.take()
        raw = seal(data(c), KEY)
        h = peek(raw)
        full = w.reconstruct(h.counter16)
        frame = open_frame(raw, h, KEY, full)
        w.check(full)
        w.accept(full)
        assert frame.counter == c
    assert w.highest == 0xFFF0 + 39


# -- the replay window --------------------------------------------------------------------------


def test_replayed_too_old_and_reordered_frames() -> None:
    w = ReceiveWindow(size=128, max_gap=1024)
    for c in (0, 1, 2, 5):
        w.check(c)
        w.accept(c)
    with pytest.raises(Replayed):
        w.check(2)
    w.check(3)  # skipped earlier, within the window: accepted once
    w.accept(3)
    with pytest.raises(Replayed):
        w.check(3)
    w.accept(300)
    with pytest.raises(TooOld):
        w.check(4)  # 300 - 128 and below
    assert w.counts == {"fresh": 6, "duplicate": 2, "too old": 1}
    assert isinstance(Replayed("x"), FrameError)


def test_a_jump_beyond_max_gap_is_not_accepted_alone() -> None:
    w = ReceiveWindow(max_gap=1024)
    w.accept(10)
    w.check(10 + 1024)  # at the limit: fine
    with pytest.raises(CounterJump):
        w.check(10 + 1025)
    w.resync(5000)  # what a confirmed RESYNC does
    w.check(4990)  # earlier counters within the window become acceptable (the held frame)
    assert w.highest == 5000


def test_sender_reservation_and_restart_never_reuse_a_counter() -> None:
    s = SendCounter(block=64)
    c, persist = s.take()
    assert (c, persist) == (0, True)  # the first frame reserves 0..63: persist before sending
    persisted = s.to_json()
    for _ in range(40):
        _, persist = s.take()
        assert not persist
    # a crash here: the sender restarts from what was persisted (reserved 64)
    s2 = SendCounter.from_json(json.loads(json.dumps(persisted)))
    assert s2.take()[0] == 64 > 40  # forward, past everything used
    # a clean stop persisted after the last frame: resume at the reservation too
    assert SendCounter.from_json(s2.to_json()).take()[0] == 128


def test_a_restarted_sender_is_not_taken_for_a_replay() -> None:
    station, gateway = CounterState(), CounterState()
    saved = station.to_json()
    seen = []
    for i in range(100):
        c, persist = station.send.take()
        if persist:
            saved = station.to_json()  # the adapter persists before transmitting
        frame = decode(seal(data(c), KEY), KEY, highest=gateway.receive.highest)
        gateway.receive.check(frame.counter)
        gateway.receive.accept(frame.counter)
        seen.append(frame.counter)
        if i in (30, 31, 70):  # power cuts: the station comes back from its saved state
            station = CounterState.from_json(json.loads(json.dumps(saved)))
        if i == 50:  # the gateway restarts too, from its state persisted after each frame
            gateway = CounterState.from_json(json.loads(json.dumps(gateway.to_json())))
    assert seen == sorted(set(seen))  # strictly increasing: never reused, never refused
    assert max(b - a for a, b in zip(seen, seen[1:], strict=False)) <= 64  # jumps <= block


def test_exhausted_counter_refuses_to_wrap() -> None:
    from ocpp_iot.transports.lora.replay import CounterExhausted

    s = SendCounter(next=(1 << 32) - 1, reserved=1 << 32)
    assert s.take()[0] == (1 << 32) - 1
    with pytest.raises(CounterExhausted):
        s.take()


def test_ctrl_codes_are_checked() -> None:
    bad = Frame(FrameType.CTRL, Direction.UP, 1, 1, b"\x09\0\0\0\1")
    with pytest.raises(ValueError):
        seal(bad, KEY)
