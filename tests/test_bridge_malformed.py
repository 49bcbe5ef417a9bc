"""Malformed frames on a station's ``up`` topic: a CALLERROR where the id can be read, otherwise
a logged drop (``-1`` / RpcFrameworkError for 2.0.1+); the bridge keeps serving everyone."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from conftest import Probe, running_bridge, station
from raw_station import RawStation, charging_session_201

from ocpp_iot.bridge import _wire
from ocpp_iot.bridge._wire import DecodeError
from ocpp_iot.rpc import Call, CallError, CallResult, CallResultError, Send
from ocpp_iot.testing import Mosquitto

VIOLATIONS = {
    "FormatViolation",
    "PropertyConstraintViolation",
    "OccurrenceConstraintViolation",
    "TypeConstraintViolation",
}

_good = _wire.encode(Call("77", "Heartbeat", {}), "2.0.1")


def _no_frame_of_any_version(size: int) -> bytes:
    """Random bytes that read as no version's frame: about 1 draw in 40 starts with a 1.6
    header (a 1.6 frame with no readable id is dropped, not answered: a different case)."""
    while True:
        data = os.urandom(size)
        try:
            _wire.decode(data)
        except DecodeError as exc:
            if exc.version is None:
                return data


# (name, raw payload, expected: None = no answer, ("-1", code) or (id, {codes}))
CASES: list[tuple[str, bytes, Any]] = [
    ("empty", b"", ("-1", {"RpcFrameworkError"})),
    ("one byte", b"\x00", ("-1", {"RpcFrameworkError"})),
    ("random bytes", _no_frame_of_any_version(64), ("-1", {"RpcFrameworkError"})),
    # OCPP-J text is served too (answered in kind); broken OCPP-J gets the same rules
    ("truncated OCPP-J text", b'[2,"1","Heartbe', ("-1", {"RpcFrameworkError"})),
    ("OCPP-J with an unknown action", b'[2,"j-1","FooBar",{}]', ("j-1", {"NotImplemented"})),
    ("truncated", _good[:2], ("-1", {"RpcFrameworkError"})),
    ("trailing garbage", _good + b"\xff\xff", ("-1", {"RpcFrameworkError"})),
    ("unknown action code", _good[:2] + b"\x19\xff\xff\xa0", ("-1", {"RpcFrameworkError"})),
    ("oversized", bytes([_good[0]]) + os.urandom(70_000), ("-1", {"RpcFrameworkError"})),
    (
        "action not in 2.0.1",
        _wire.encode(Call("m-1", "FooBar", {}), "2.0.1"),
        ("m-1", {"NotImplemented"}),  # not a 2.0.1 action: OCPP-J 4.3
    ),
    (
        "action the charge system never receives",
        _wire.encode(Call("m-2", "Reset", {"type": "Immediate"}), "2.0.1"),
        ("m-2", {"NotSupported"}),
    ),
    (
        "unknown property",
        _wire.encode(Call("m-3", "Heartbeat", {"bogus": 1}), "2.0.1"),
        ("m-3", VIOLATIONS),
    ),
    (
        "required property missing",
        _wire.encode(Call("m-4", "BootNotification", {"reason": "PowerUp"}), "2.0.1"),
        ("m-4", VIOLATIONS),
    ),
    (
        "wrong type",
        _wire.encode(
            Call(
                "m-5",
                "StatusNotification",
                {
                    "timestamp": "2026-01-01T00:00:00Z",
                    "connectorStatus": "Available",
                    "evseId": "one",
                    "connectorId": 1,
                },
            ),
            "2.0.1",
        ),
        ("m-5", VIOLATIONS),
    ),
    (
        "bad enum value",
        _wire.encode(
            Call(
                "m-6",
                "BootNotification",
                {
                    "chargingStation": {"model": "M", "vendorName": "V"},
                    "reason": "Bored",
                },
            ),
            "2.0.1",
        ),
        ("m-6", VIOLATIONS),
    ),
    ("result for no call", _wire.encode(CallResult("nope", {}, "Reset"), "2.0.1"), None),
    ("unsolicited error", _wire.encode(CallError("nope", "GenericError", "x", {}), "2.0.1"), None),
    (
        "2.1 CALLRESULTERROR",
        _wire.encode(CallResultError("nope", "GenericError", "x", {}), "2.1"),
        None,
    ),
    ("2.1 SEND of an unknown action", _wire.encode(Send("s-1", "FooBar", {}), "2.1"), None),
]


def _decode(payload: bytes) -> Any:
    if payload[:1] == b"[":  # an answer in kind to OCPP-J text
        return _wire.json_decode(payload, "2.0.1")
    return _wire.decode(payload)[1]


async def _answers_before(probe: Probe, marker: RawStation) -> list[Any]:
    """What the bridge sent on the probe's topics before its answer to a Heartbeat that
    ``marker`` sends now. The bridge answers a station's frames in the order they came (a frame
    it cannot read included), so whatever the frame before earned is sent before that answer:
    a wait on an event, and also how we know that no answer came."""
    answer = await marker.call("Heartbeat", {})
    assert isinstance(answer, CallResult)

    def marked(m: Any) -> bool:
        frame = _decode(m.payload)
        return isinstance(frame, CallResult) and frame.message_id == answer.message_id

    got = await asyncio.to_thread(probe.until, marked)
    return [_decode(m.payload) for m in got[:-1]]


def test_malformed_frames(broker: Mosquitto, tmp_path: Path) -> None:
    downs = Probe(broker.url, "bridge", ["ocpp/CP1/down", "ocpp/CP3/down"])
    failures: list[str] = []

    async def scenario() -> None:
        async with running_bridge(broker, tmp_path) as bridge:
            async with station(broker, "CP1") as cp1, station(broker, "CP2") as cp2:
                assert await _answers_before(downs, cp1) == []
                raw = cp1.client
                for name, payload, expected in CASES:
                    await raw.publish_confirmed("ocpp/CP1/up", payload)
                    got = await _answers_before(downs, cp1)
                    if expected is None:
                        if got:
                            failures.append(f"{name}: expected no answer, got {got}")
                        continue
                    mid, codes = expected
                    if len(got) != 1 or not isinstance(got[0], CallError):
                        failures.append(f"{name}: expected one CALLERROR, got {got}")
                        continue
                    if got[0].message_id != mid or got[0].error_code not in codes:
                        failures.append(f"{name}: got {got[0]}")
                    # the other station is served all along
                    assert isinstance(await cp2.call("Heartbeat", {}), CallResult), name
                # and both go on with a whole session
                ids = []
                for action, payload in charging_session_201("CP1", updates=1):
                    answer = await cp1.call(action, payload)
                    assert isinstance(answer, CallResult), action
                    ids.append(answer.message_id)
                # and nothing else came down to CP1 meanwhile
                assert [f.message_id for f in await _answers_before(downs, cp1)] == ids
                for action, payload in charging_session_201("CP2", updates=1):
                    assert isinstance(await cp2.call(action, payload), CallResult), action
            # 1.6 has no "-1" answer: an unreadable frame from a 1.6 station is dropped
            async with station(broker, "CP3", version="1.6") as cp3:
                boot = {"chargePointModel": "M", "chargePointVendor": "V"}
                booted = await cp3.call("BootNotification", boot)
                assert isinstance(booted, CallResult)
                assert await _answers_before(downs, cp3) == [booted]
                await cp3.client.publish_confirmed("ocpp/CP3/up", b"\x00garbage")
                got = await _answers_before(downs, cp3)
                if got:
                    failures.append(f"1.6 garbage: expected a drop, got {got}")
            assert bridge.stats["dropped"] >= 8

    asyncio.run(scenario())
    downs.close()
    assert not failures, "\n".join(failures)
