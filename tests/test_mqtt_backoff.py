"""Reconnect storms (issue 15): back-off with jitter, and log lines that say what to do.

Against a real mosquitto: a wrong password and a client-id clash, counting connection attempts
in 10 s (goal: at most 6), and a broker that is not there at all.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest
from conftest import USERS

from ocpp_iot.testing import Mosquitto, free_port
from ocpp_iot.transports._backoff import Backoff, FailureLog
from ocpp_iot.transports.aio import AsyncMqttClient
from ocpp_iot.transports.settings import MqttSettings, Will

LOGGER = "ocpp_iot.transports.mqtt"
SECRET = "s3cret-Wrong-pw"


def attempts_in(delays: list[float], window: float) -> int:
    """Attempts in the first ``window`` seconds: one at once, one after each delay."""
    t, n = 0.0, 1
    for d in delays:
        t += d
        if t > window:
            break
        n += 1
    return n


# -- the policy, without a broker ----------------------------------------------------------------


def test_backoff_doubles_with_a_floor_and_resets() -> None:
    low = Backoff(0.5, 30.0, rng=lambda a, b: a)
    delays = [low.next_delay() for _ in range(10)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0, 15.0]
    assert attempts_in(delays, 10.0) == 6  # the worst case of the defaults
    high = Backoff(0.5, 30.0, rng=lambda a, b: b)
    assert [high.next_delay() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    high.reset()
    assert high.next_delay() == 0.5
    real = Backoff(0.5, 30.0)
    for ceiling in (0.5, 1, 2, 4, 8, 16, 30, 30):
        assert ceiling / 2 <= real.next_delay() <= ceiling


def test_failure_log_writes_repeats_once_a_minute_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    flog = FailureLog(logging.getLogger("test.failures"), lambda: now[0], every=60.0)
    with caplog.at_level(logging.DEBUG, "test.failures"):
        for _ in range(100):  # a wrong password retried every 0.5 s for 50 s
            flog.failure("refused:135", "not authorized")
            now[0] += 0.5
        assert flog.warnings == 1
        now[0] = 61.0
        flog.failure("refused:135", "not authorized")
        assert flog.warnings == 2
        assert "(99 more like this in the last 61 s)" in caplog.records[-1].getMessage()
        flog.failure("unreachable", "cannot reach")  # something else: at once
        assert flog.warnings == 3
        assert flog.recovered() == 1
        flog.failure("unreachable", "cannot reach")
        assert flog.warnings == 4
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4


# -- against mosquitto ---------------------------------------------------------------------------


def _records(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def _assert_no_secret(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    for r in caplog.records:
        text = r.getMessage() + (r.exc_text or "")
        for s in secrets:
            assert s not in text, text


def test_wrong_password_backs_off_and_says_why(
    broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    host_port = broker.url.split("://", 1)[1]

    async def scenario() -> tuple[int, str | None]:
        c = AsyncMqttClient(
            MqttSettings(f"mqtt://CP1:{SECRET}@{host_port}", client_id="CP1"),
        )
        c.start()
        await asyncio.sleep(10)
        n, err = c.connect_attempts, c.last_connect_error
        await c.stop()
        return n, err

    with caplog.at_level(logging.DEBUG):
        attempts, error = asyncio.run(scenario())
    refused = broker.log().count("disconnected, not authorised")
    assert 2 <= attempts <= 6
    assert refused == attempts  # the broker saw exactly those
    warnings = _records(caplog)
    assert 1 <= len(warnings) <= 2, warnings  # repeats of the same failure are rate-limited
    assert "not authorized: check --username / --password" in warnings[0]
    assert "'CP1'" in warnings[0] and "next attempt in" in warnings[0]
    assert f"mqtt://CP1:***@{host_port}" in warnings[0]
    assert error is not None and "not authorized" in error and SECRET not in error
    _assert_no_secret(caplog, SECRET)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_two_clients_with_one_id_back_off_and_say_so(
    broker: Mosquitto, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    async def scenario() -> tuple[int, int]:
        def twin() -> AsyncMqttClient:
            s = MqttSettings(
                broker.url,
                client_id="ocpp-bridge",
                username="bridge",
                password=USERS["bridge"],
                protocol=protocol,
                birth=(Will("ocpp/bridge/status", b"online"),),
            )
            return AsyncMqttClient(s)

        first, second = twin(), twin()
        assert await first.start(5)
        second.start()
        await asyncio.sleep(10)
        counts = first.connect_attempts, second.connect_attempts
        await first.stop()
        await second.stop()
        return counts

    with caplog.at_level(logging.DEBUG):
        first, second = asyncio.run(scenario())
    assert first <= 6 and second <= 6, (first, second)
    connects = len(re.findall(r"New client connected from \S+ as ocpp-bridge ", broker.log()))
    assert connects == first + second
    assert connects >= 4  # they did clash
    takeover = [w for w in _records(caplog) if "took over the session" in w]
    assert takeover, _records(caplog)
    assert "'ocpp-bridge'" in takeover[0] and "is a second bridge" in takeover[0]
    assert len(_records(caplog)) <= 8  # rate-limited, not one line per clash
    _assert_no_secret(caplog, USERS["bridge"])


def test_unreachable_broker_warns_with_address_and_next_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there

    async def scenario() -> float:
        c = AsyncMqttClient(MqttSettings(f"mqtt://bridge:{SECRET}@127.0.0.1:{port}", "b"))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        c.start()
        while not _records(caplog) and loop.time() - t0 < 2.0:
            await asyncio.sleep(0.01)
        took = loop.time() - t0
        await c.stop()
        return took

    with caplog.at_level(logging.DEBUG, LOGGER):
        took = asyncio.run(scenario())
    warnings = _records(caplog)
    assert warnings, "no WARNING within 2 s"
    assert took < 2.0
    assert f"127.0.0.1:{port}" in warnings[0]
    assert re.search(r"next attempt in \d+\.\d s", warnings[0])
    assert f"mqtt://bridge:***@127.0.0.1:{port}" in warnings[0]
    _assert_no_secret(caplog, SECRET)


def test_a_stable_connection_resets_the_backoff_a_quick_takeover_does_not(
    broker: Mosquitto,
) -> None:
    async def scenario() -> dict[str, Any]:
        def twin() -> AsyncMqttClient:
            s = MqttSettings(
                broker.url,
                client_id="twin",
                username="bridge",
                password=USERS["bridge"],
                reconnect_min_delay=0.1,
                reconnect_stable_after=1.0,
            )
            return AsyncMqttClient(s)

        first, second = twin(), twin()
        assert await first.start(5)
        second.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not (first.taken_over or second.taken_over) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        out: dict[str, Any] = {"failures during the clash": first._backoff.failures}
        out["flagged"] = first.taken_over or second.taken_over
        await second.stop([Will("ocpp/bridge/status", b"offline")])  # the rival leaves
        deadline = loop.time() + 10
        while (first._backoff.failures or not first.connected) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        out["failures after a stable second"] = first._backoff.failures
        out["taken over after"] = first.taken_over
        await first.stop()
        return out

    out = asyncio.run(scenario())
    assert out["flagged"]
    assert out["failures during the clash"] >= 1
    assert out["failures after a stable second"] == 0
    assert out["taken over after"] is False


def test_no_final_messages_after_the_session_was_taken_over(broker: Mosquitto) -> None:
    """A bridge whose session another one took over must not leave ``offline`` retained
    while the other still runs (issue 15); a normal stop does publish it."""

    async def scenario() -> list[tuple[bytes, bool]]:
        s = MqttSettings(broker.url, client_id="b", username="bridge", password=USERS["bridge"])
        watcher = AsyncMqttClient(
            MqttSettings(
                broker.url,
                client_id="w",
                username="operator",
                password=USERS["operator"],
                clean_start=True,
            )
        )
        watcher.subscribe("ocpp/bridge/status")
        assert await watcher.start(5)
        kicked = AsyncMqttClient(s)
        assert await kicked.start(5)
        kicked.taken_over = True  # what _loss() sets on DISCONNECT 142 or repeated quick drops
        await kicked.stop([Will("ocpp/bridge/status", b"offline from the kicked one")])
        normal = AsyncMqttClient(s)
        assert await normal.start(5)
        await normal.stop([Will("ocpp/bridge/status", b"offline")])
        got = [await asyncio.wait_for(watcher.get(), 5)]
        await watcher.stop()
        return [(m.payload, m.retain) for m in got]

    assert asyncio.run(scenario()) == [(b"offline", False)]  # one, from the normal stop


# -- callbacks and sockets that must not break the client (review of 2026-12-03) -----------------


def test_an_on_connect_callback_that_raises_is_logged_once_not_run_again_and_again(
    broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """paho is inside its read of the CONNACK when on_connect runs: an exception out of it
    made paho handle the same CONNACK on every read event (a spin: thousands of connects a
    second, each with a SUBSCRIBE and the birth)."""
    calls: list[bool] = []

    def on_connect(session_present: bool) -> None:
        calls.append(session_present)
        raise RuntimeError("the application's bug")

    async def scenario() -> tuple[int, bool]:
        s = MqttSettings(
            broker.url, client_id="raiser", username="bridge", password=USERS["bridge"]
        )
        c = AsyncMqttClient(s, on_connect=on_connect)
        c.subscribe("ocpp/+/up")
        assert await c.start(5)
        await asyncio.sleep(1.0)
        got = (c._generation, c.connected)
        await c.stop()
        return got

    with caplog.at_level(logging.ERROR):
        generation, connected = asyncio.run(scenario())
    assert (generation, connected, len(calls)) == (1, True, 1)
    assert [r for r in caplog.records if "on_connect callback" in r.getMessage()]


def test_subscribe_refuses_a_bad_qos_at_once_even_offline() -> None:
    c = AsyncMqttClient(MqttSettings("mqtt://127.0.0.1:9", client_id="x"))
    with pytest.raises(ValueError, match="QoS 3"):
        c.subscribe("t/#", 3)
    with pytest.raises(ValueError):
        c.subscribe("", 1)


def test_publishing_after_a_connack_timeout_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A listener that accepts TCP and never answers CONNECT (a hung broker): the client
    drops the socket after connect_timeout. A publish in the pause that follows used to raise
    ValueError (paho asked to watch the closed socket for writing); it is queued instead."""

    async def scenario() -> int:
        silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        s = MqttSettings(
            f"mqtt://127.0.0.1:{port}", client_id="c1", connect_timeout=0.5,
            reconnect_min_delay=2.0, reconnect_max_delay=4.0,
        )  # fmt: skip
        c = AsyncMqttClient(s)
        c.start()
        await asyncio.sleep(1.0)  # past the CONNACK timeout, in the back-off pause
        c.publish("t/x", b"frame", 1)
        c.publish("t/x", b"frame2", 0)
        await asyncio.sleep(0.2)
        attempts = c.connect_attempts
        c.kill()
        silent.close()
        return attempts

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(scenario()) >= 1
    assert not [r for r in caplog.records if "Exception in callback" in r.getMessage()]
