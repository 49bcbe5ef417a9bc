"""Compact CBOR codec: hostile input. ``decode`` either returns a frame or raises DecodeError.

Random bytes (behind a valid header half of the time) and mutated valid frames (truncated,
bit flips, inserted, deleted or appended bytes). A frame that does decode must be a JSON value
that re-encodes to itself. Every run: 1,000 cases of each kind, then a longer seeded run
(``test_model_schemas.LongRun``); ``OCPP_IOT_SLOW=1`` or ``-m slow``: 100k cases of each kind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cbor import CORPUS, load_corpus, same
from test_model_schemas import LongRun, long_run

from ocpp_iot.codecs import DecodeError, cbor, ocppj
from ocpp_iot.rpc import Call, CallError, CallResult, CallResultError, Send


def _samples() -> list[bytes]:
    frames: list[tuple[Any, str]] = [
        (Call("1", "Heartbeat", {}), "1.6"),
        (CallError("x", "GenericError", "d", {"a": [1, 2.5, None]}), "2.0.1"),
        (CallResultError("7", "InternalError"), "2.1"),
        (
            Send(
                "9",
                "NotifyPeriodicEventStream",
                {
                    "id": 1,
                    "pending": 2,
                    "basetime": "2026-01-01T00:00:00Z",
                    "data": [{"t": 1.5, "v": "x"}],
                },
            ),
            "2.1",
        ),  # noqa: E501
        (Call("1", "NoSuchAction", {"a": {"b": [1.5, "x", None, True]}}), "2.0.1"),
        (CallResult("2", {"currentTime": "2026-01-01T00:00:00+02:00"}, "Heartbeat"), "2.1"),
    ]
    if Path(CORPUS).exists():
        corpus = load_corpus(False)
        frames += [(f, "2.0.1") for _, f in corpus[:60]]
        frames += [(f, "2.0.1") for _, f in load_corpus(True)[60:120]]
    return [cbor.encode(f, v) for f, v in frames]


SAMPLES = _samples()
HEADERS = sorted({s[0] for s in SAMPLES} | {0x20 | k for k in range(32)})


def assert_only_decode_error(data: bytes) -> None:
    try:
        version, frame = cbor.decode(data)
    except DecodeError:
        return
    # what decodes is a JSON-mirrorable frame (strict OCPP-J, no NaN) that round-trips
    as_json = json.loads(ocppj.encode(frame))
    again = cbor.decode(cbor.encode(frame, version))[1]
    assert same(json.loads(ocppj.encode(again)), as_json)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["cut", "flip", "insert", "delete", "append", "byte"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "cut":
            del data[i:]
        elif op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        elif op == "append":
            data += draw(st.binary(min_size=1, max_size=16))
        elif data:
            data[i] = draw(st.integers(0, 255))
    return bytes(data)


@st.composite
def random_frames(draw: st.DrawFn) -> bytes:
    body = draw(st.binary(max_size=200))
    if draw(st.booleans()):
        return bytes([draw(st.sampled_from(HEADERS))]) + body
    return body


def assert_fuzz(
    strategy: st.SearchStrategy[bytes], examples: int, run: LongRun | None = None
) -> None:
    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(strategy)
    def run_one(data: bytes) -> None:
        assert_only_decode_error(data)

    (run_one if run is None else run.seeded(run_one))()


def test_fuzz_random_bytes() -> None:
    assert_fuzz(random_frames(), 1000)


def test_fuzz_mutated_frames() -> None:
    assert_fuzz(mutated(), 1000)


@pytest.mark.slow
def test_fuzz_random_bytes_long(request: pytest.FixtureRequest) -> None:
    run = long_run(request.config)
    assert_fuzz(random_frames(), run.examples(2_000, 100_000), run)


@pytest.mark.slow
def test_fuzz_mutated_frames_long(request: pytest.FixtureRequest) -> None:
    run = long_run(request.config)
    assert_fuzz(mutated(), run.examples(2_000, 100_000), run)


def test_every_truncation_and_single_bit_flip_of_samples() -> None:
    for data in SAMPLES[::4]:
        for i in range(len(data)):
            assert_only_decode_error(data[:i])
            for bit in range(8):
                b = bytearray(data)
                b[i] ^= 1 << bit
                assert_only_decode_error(bytes(b))


PATHOLOGICAL = [
    bytes([0x25]) + b"\x01\x00" + b"\x9f" * 3000,
    bytes([0x25]) + b"\x01\x00" + b"\xbf\x61a" * 3000,
    bytes([0x25]) + b"\x01\x00" + b"\xd8\x1c" * 3000 + b"\x80",
    bytes([0x25]) + b"\x01\x22" + b"\xd8\x1c\x81" * 100 + b"\xd8\x1d\x00",
    bytes([0x25]) + b"\x01\x22\xd8\x1c\x81\xd8\x1d\x00",  # a self-referencing array
    bytes([0x25]) + b"\x01\x00\x7b\x7f\xff\xff\xff\xff\xff\xff\xff",
    bytes([0x25]) + b"\x01\x00\x9b\x7f\xff\xff\xff\xff\xff\xff\xff",
    bytes([0x25]) + b"\x01\x04\x19\xff\xff" + b"\x00" * 10,
    bytes([0x25]) + b"\x01\x05\x00\x01\x1b\xff\xff\xff\xff\xff\xff\xff\xff",
    bytes([0x25]) + b"\x01\x05\x00\x01" + b"\x18\x7f" * 200,
]


@pytest.mark.parametrize("data", PATHOLOGICAL, ids=[str(i) for i in range(len(PATHOLOGICAL))])
def test_pathological_inputs_end_quickly_with_decode_error_or_a_frame(data: bytes) -> None:
    assert_only_decode_error(data)
