"""Helpers for the modem-driver and simulator tests (the drivers through the simulator's ptys),
and the tests of the driver factory and of what every driver shares."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from ocpp_iot.transports.lora import RadioConfig
from ocpp_iot.transports.lora.modem import Modem, ModemError, Received
from ocpp_iot.transports.lora.modems import KINDS, Ebyte, Rak3172, Rylr, SerialModem, create

T = TypeVar("T")

#: radio seconds per wall second in the tests: time on air shrinks 1000-fold
FAST = 1000.0


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run a scenario on a fresh event loop, with a time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def opened(*modems: SerialModem) -> AsyncIterator[None]:
    await asyncio.gather(*(m.open() for m in modems))
    try:
        yield
    finally:
        await asyncio.gather(*(m.close() for m in modems))


async def until(pred: Callable[[], bool], timeout: float = 3.0, what: str = "condition") -> None:
    """Wait until ``pred()`` holds (polling), else fail."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def eventually(action: Callable[[], Awaitable[T]], timeout: float = 4.0) -> T:
    """Retry ``action`` (a transmit on a recovering modem) until it stops raising ModemError."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        try:
            return await action()
        except ModemError:
            if loop.time() > end:
                raise
            await asyncio.sleep(0.02)


def payload(rng: random.Random, size: int) -> bytes:
    """Random bytes, with the bytes a line-based parser trips on put in where they fit."""
    data = bytearray(rng.randbytes(size))
    for i, b in zip(range(0, size, 7), b"\r\n\x00,\n\r+:\r\n", strict=False):
        data[i] = b
    if size >= 4:
        data[-2:] = b"\r\n"
    return bytes(data)


async def receive(m: Modem, timeout: float = 2.0) -> Received:
    return await asyncio.wait_for(m.receive(), timeout)


async def nothing(m: Modem, wait: float = 0.1) -> None:
    """Assert that ``m`` receives nothing within ``wait`` seconds."""
    with pytest.raises(TimeoutError):
        got = await asyncio.wait_for(m.receive(), wait)
        raise AssertionError(f"unexpected packet {got}")


async def pending(m: Modem) -> list[Received]:
    """What ``m`` has received so far (without waiting)."""
    out = []
    while True:
        try:
            out.append(await asyncio.wait_for(m.receive(), 0.05))
        except TimeoutError:
            return out


@contextlib.asynccontextmanager
async def collecting(m: Modem) -> AsyncIterator[list[Received]]:
    """Receive everything ``m`` gets while the block runs (and 50 ms after) into a list."""
    got: list[Received] = []

    async def loop() -> None:
        while True:
            got.append(await m.receive())

    task = asyncio.ensure_future(loop())
    try:
        yield got
        got += await pending(m)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, EOFError):
            await task


# -- tests of what the drivers share ------------------------------------------------------------


def test_create_builds_each_driver_and_refuses_unknown_ones() -> None:
    radio = RadioConfig(sf=9, frequency_hz=868_000_000)
    assert isinstance(create("rak3172", "/dev/null", radio), Rak3172)
    rylr = create("rylr896", "/dev/null", RadioConfig(sf=9, preamble=4))
    assert isinstance(rylr, Rylr) and rylr.variant == "rylr896" and rylr.max_payload == 240
    e32 = create("e32", "/dev/null", radio)
    assert isinstance(e32, Ebyte) and e32.max_payload == 55 and e32.max_transmit == 255
    assert set(KINDS) == {"rak3172", "rylr998", "rylr896", "e32", "e22"}
    with pytest.raises(ValueError, match="unknown modem"):
        create("sx1276", "/dev/null", radio)


def test_settings_a_modem_cannot_take_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        Rak3172("/dev/null", RadioConfig(bandwidth_hz=62_500))
    with pytest.raises(ValueError, match="preamble"):
        Rak3172("/dev/null", RadioConfig(preamble=4))
    with pytest.raises(ValueError, match="SF10"):
        Rylr("/dev/null", RadioConfig(sf=10))  # the RYLR998 stops at SF9 at 125 kHz
    with pytest.raises(ValueError, match="preamble is 12"):
        Rylr("/dev/null", RadioConfig(sf=9, preamble=8), network_id=5)
    with pytest.raises(ValueError, match="channels"):
        Ebyte("/dev/null", RadioConfig(frequency_hz=868_100_000))  # E32: whole MHz only
    with pytest.raises(ValueError, match="RSSI byte"):
        Ebyte("/dev/null", RadioConfig(frequency_hz=868_000_000), rssi_byte=True)


def test_a_missing_port_fails_open_and_the_driver_can_be_opened_again() -> None:
    async def scenario() -> None:
        m = Rak3172("/nonexistent/ttyUSB9", RadioConfig(), open_timeout=0.3)
        with pytest.raises(ModemError, match="not ready"):
            await m.open()
        assert m.stats.open_failures >= 1 and not m.is_ready
        with pytest.raises(EOFError):
            await m.receive()
        with pytest.raises(ModemError):
            await m.transmit(b"x")
        with pytest.raises(ModemError, match="not ready"):
            await m.open()  # the adapter's way: open again later

    run(scenario())
