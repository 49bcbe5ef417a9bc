"""The station-level links (``MqttStationLink`` on a real mosquitto, ``MemoryStationLink`` on the
in-memory broker): the same scenarios on both, watched by a bridge-side MQTT client.

Events are waited for with deadlines; the only fixed-length waits check that nothing *more*
comes (a wrong password never brings the link up).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from bridge_memory_helpers import Counting, running
from conftest import USERS, password, subscribed_async
from raw_station import charging_session_201

from ocpp_iot.codecs import cbor, ocppj
from ocpp_iot.rpc import Call, CallResult
from ocpp_iot.testing import Mosquitto, render_acl
from ocpp_iot.transports.aio import AsyncMqttClient
from ocpp_iot.transports.base import PubSubClient
from ocpp_iot.transports.link import FrameReceived, LinkDown, LinkEvent, LinkUp, StationLink
from ocpp_iot.transports.memory import MemoryBroker, mosquitto_acl
from ocpp_iot.transports.memory_link import MemoryStationLink
from ocpp_iot.transports.mqtt_link import MqttStationLink
from ocpp_iot.transports.pubsub_link import PubSubStationLink
from ocpp_iot.transports.settings import Message, MqttSettings

JSON = "application/json"
CBOR_FRAME = b"\x22\x01\x02\x03"  # bytes, not a real frame: the link does not look inside
JSON_FRAME = b'[2,"m1","Heartbeat",{}]'


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


# -- the two brokers behind one interface ---------------------------------------------------------


class OnMosquitto:
    name = "mosquitto"

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker

    def link(self, sid: str, pw: str | None = None) -> PubSubStationLink:
        # short back-off: the outage test waits for a reconnect
        return MqttStationLink(
            sid,
            self.broker.url,
            password=pw or password(sid),
            reconnect_min_delay=0.05,
            reconnect_max_delay=0.2,
        )

    def client(self, user: str = "bridge") -> PubSubClient:
        return AsyncMqttClient(
            MqttSettings(
                self.broker.url,
                client_id=f"watch-{user}-{os.getpid()}-{time.monotonic_ns()}",
                username=user,
                password=USERS[user],
                clean_start=True,
                reconnect_min_delay=0.05,
                reconnect_max_delay=0.2,
            )
        )

    async def outage(self, sid: str, while_away: Callable[[], Awaitable[None]]) -> None:
        """The broker goes down and comes back (keeping its sessions); the station is kept
        out (a changed password) while ``while_away`` runs, then let in again."""
        await asyncio.to_thread(self.broker.stop)  # SIGTERM: it saves the sessions
        self.broker.users[sid] = "locked-out"
        await asyncio.to_thread(self.broker.start)
        await while_away()
        await asyncio.to_thread(self.broker.add_user, sid, password(sid))


class InMemory:
    name = "memory"

    def __init__(self) -> None:
        self.broker = MemoryBroker(users=USERS, acl=mosquitto_acl(render_acl("ocpp")))

    def link(self, sid: str, pw: str | None = None) -> PubSubStationLink:
        return MemoryStationLink(self.broker, sid, password=pw or password(sid))

    def client(self, user: str = "bridge") -> PubSubClient:
        settings = MqttSettings(
            "mqtt://memory",
            client_id=f"watch-{user}-{time.monotonic_ns()}",
            username=user,
            password=USERS[user],
            clean_start=True,
        )
        return self.broker.client(settings)

    async def outage(self, sid: str, while_away: Callable[[], Awaitable[None]]) -> None:
        """A network failure of the station (its will goes out); it is kept out (a changed
        password) while ``while_away`` runs, then let in again."""
        assert self.broker.users is not None
        self.broker.users[sid] = "locked-out"
        assert self.broker.disconnect(sid)
        await while_away()
        self.broker.users[sid] = password(sid)


Backend = OnMosquitto | InMemory


@pytest.fixture(params=["mosquitto", "memory"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        yield InMemory()
    else:
        yield OnMosquitto(request.getfixturevalue("broker"))


# -- helpers ------------------------------------------------------------------------------------


async def event(link: StationLink, timeout: float = 10.0) -> LinkEvent:
    return await asyncio.wait_for(link.receive(), timeout)


async def watcher(backend: Backend, *topics: str) -> PubSubClient:
    """A bridge-side client subscribed to ``topics`` (retained messages included)."""
    client = backend.client()
    for t in topics:
        client.subscribe(t, 1)
    assert await client.start(10), "the watcher could not connect"
    await subscribed_async(client)  # the broker has the subscriptions
    return client


async def message(client: PubSubClient, topic: str, timeout: float = 10.0) -> Message:
    """The next message on ``topic`` (others are skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = await asyncio.wait_for(client.get(), max(deadline - loop.time(), 0.01))
        if msg.topic == topic:
            return msg


async def retained(backend: Backend, topic: str) -> Message:
    """What a new subscriber of ``topic`` is handed first (the retained message)."""
    client = await watcher(backend, topic)
    try:
        return await message(client, topic)
    finally:
        await client.stop()


# -- the tests ----------------------------------------------------------------------------------


def test_both_links_are_station_links() -> None:
    async def scenario() -> None:
        for link in (
            MemoryStationLink(MemoryBroker(), "CP1"),
            MqttStationLink("CP1", "mqtt://127.0.0.1:1"),
        ):
            assert isinstance(link, StationLink)
            assert link.station_id == "CP1" and link.max_frame is None and not link.up
            s = link.settings
            assert (s.client_id, s.username, s.clean_start) == ("CP1", "CP1", False)
            assert s.will is not None and (s.will.topic, s.will.payload) == (
                "ocpp/CP1/status",
                b"offline",
            )
            assert s.will.retain and [(b.payload, b.retain) for b in s.birth] == [(b"online", True)]
        with pytest.raises(ValueError):
            MemoryStationLink(MemoryBroker(), "CP/1")

    run(scenario())


def test_frames_both_ways_status_and_close(backend: Backend) -> None:
    async def scenario() -> None:
        w = await watcher(backend, "ocpp/CP1/up", "ocpp/CP1/status")
        link = backend.link("CP1")
        await link.open()
        assert await event(link) == LinkUp(resumed=False)  # a fresh session
        assert link.up
        assert (await message(w, "ocpp/CP1/status")).payload == b"online"  # the birth
        birth = await retained(backend, "ocpp/CP1/status")
        assert (birth.payload, birth.retain) == (b"online", True)

        # station -> bridge: QoS 1 on up, OCPP-J marked as such
        link.send(CBOR_FRAME)
        link.send(JSON_FRAME, json=True)
        m1, m2 = await message(w, "ocpp/CP1/up"), await message(w, "ocpp/CP1/up")
        assert (m1.payload, m1.qos, m1.content_type) == (CBOR_FRAME, 1, None)
        assert (m2.payload, m2.qos, m2.content_type) == (JSON_FRAME, 1, JSON)

        # bridge -> station: in order, the content type read
        await w.publish_confirmed("ocpp/CP1/down", CBOR_FRAME, 1)
        await w.publish_confirmed("ocpp/CP1/down", JSON_FRAME, 1, content_type=JSON)
        await w.publish_confirmed(
            "ocpp/CP1/down", JSON_FRAME, 1, content_type="Application/JSON; x"
        )
        assert await event(link) == FrameReceived(CBOR_FRAME, json=False)
        assert await event(link) == FrameReceived(JSON_FRAME, json=True)
        assert await event(link) == FrameReceived(JSON_FRAME, json=True)

        # close: a waiting receive ends, the last word is a retained offline (no will needed)
        waiting = asyncio.create_task(link.receive())
        await asyncio.sleep(0)
        await link.close()
        with pytest.raises(EOFError):
            await asyncio.wait_for(waiting, 5)
        with pytest.raises(EOFError):
            await link.receive()
        assert not link.up
        link.send(CBOR_FRAME)  # dropped, not queued for ever
        assert (await message(w, "ocpp/CP1/status")).payload == b"offline"
        gone = await retained(backend, "ocpp/CP1/status")
        assert (gone.payload, gone.retain) == (b"offline", True)
        with pytest.raises(RuntimeError):
            await link.open()
        await w.stop()

    run(scenario())


def test_kill_leaves_the_will(backend: Backend) -> None:
    async def scenario() -> None:
        w = await watcher(backend, "ocpp/CP2/status")
        link = backend.link("CP2")
        await link.open()
        assert isinstance(await event(link), LinkUp)
        assert (await message(w, "ocpp/CP2/status")).payload == b"online"
        link.kill()
        assert not link.up
        with pytest.raises(EOFError):
            await link.receive()
        assert (await message(w, "ocpp/CP2/status")).payload == b"offline"  # the broker's will
        will = await retained(backend, "ocpp/CP2/status")
        assert (will.payload, will.retain) == (b"offline", True)
        await w.stop()

    run(scenario())


def test_outage_down_then_up_resumed_with_what_came_meanwhile(backend: Backend) -> None:
    async def scenario() -> None:
        w = await watcher(backend, "ocpp/CP3/up")
        link = backend.link("CP3")
        await link.open()
        assert await event(link) == LinkUp(resumed=False)
        await w.publish_confirmed("ocpp/CP3/down", b"before", 1)
        assert await event(link) == FrameReceived(b"before")

        async def while_away() -> None:
            assert isinstance(await event(link), LinkDown)  # reported when lost, not later
            assert not link.up
            assert await w.wait_connected(10)
            await w.publish_confirmed("ocpp/CP3/down", b"meanwhile", 1)  # queued in the session

        await backend.outage("CP3", while_away)
        assert await event(link) == LinkUp(resumed=True)
        assert await event(link) == FrameReceived(b"meanwhile")  # after the LinkUp, once
        assert link.up
        link.send(b"after")
        assert (await message(w, "ocpp/CP3/up")).payload == b"after"
        await w.publish_confirmed("ocpp/CP3/down", b"later", 1)
        assert await event(link) == FrameReceived(b"later")  # no duplicate of "meanwhile"
        await link.close()
        await w.stop()

    run(scenario())


def test_per_station_credentials(backend: Backend) -> None:
    async def scenario() -> None:
        # CP5's own password works for CP5 only: as CP4 it is refused, and no LinkUp comes
        link = backend.link("CP4", password("CP5"))
        await link.open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while link.client.last_connect_error is None:  # the refusal
            assert loop.time() < deadline, "no connection attempt was refused"
            await asyncio.sleep(0.01)
        assert "CP4" in link.client.last_connect_error
        with pytest.raises(TimeoutError):
            await event(link, 0.3)  # nothing more comes: a check, not a wait for something
        assert not link.up
        await link.close()
        with pytest.raises(EOFError):
            await link.receive()

    run(scenario())


def test_a_loss_the_client_did_not_report_still_pairs_down_and_up() -> None:
    async def scenario() -> None:
        broker = MemoryBroker()
        hooks: dict[str, Any] = {}

        def factory(settings: MqttSettings, on_message: Any = None, **kw: Any) -> PubSubClient:
            hooks.update(kw)
            return broker.client(settings, on_message, **kw)

        link = PubSubStationLink("CP8", MqttSettings("mqtt://memory"), factory)
        await link.open()
        assert await event(link) == LinkUp(resumed=False)
        hooks["on_connect"](True)  # connected again, with no loss reported in between
        assert isinstance(await event(link), LinkDown)
        assert await event(link) == LinkUp(resumed=True)
        hooks["on_disconnect"]()
        hooks["on_disconnect"]()  # reported twice: one LinkDown
        assert isinstance(await event(link), LinkDown)
        with pytest.raises(TimeoutError):
            await event(link, 0.05)
        await link.close()

    run(scenario())


def test_memory_link_against_the_bridge(tmp_path: Path) -> None:
    """The charger node's side of the bridge's in-memory tests: a boot over the link, in CBOR and
    in OCPP-J (answered in kind)."""

    async def scenario() -> None:
        broker = MemoryBroker()
        async with running(broker, str(tmp_path / "bridge.sqlite3"), {"2.0.1": Counting()}):
            link = MemoryStationLink(broker, "CP7")
            await link.open()
            assert isinstance(await event(link), LinkUp)
            boot = charging_session_201("CP7")[0][1]
            link.send(cbor.encode(Call("b1", "BootNotification", boot), "2.0.1"))
            got = await event(link)
            assert isinstance(got, FrameReceived) and not got.json
            answer = cbor.decode(got.data)[1]
            assert isinstance(answer, CallResult) and answer.message_id == "b1"
            assert answer.payload["status"] == "Accepted"
            link.send(ocppj.encode(Call("h1", "Heartbeat", {})), json=True)
            got = await event(link)
            assert isinstance(got, FrameReceived) and got.json
            assert got.data.startswith(b'[3,"h1",')
            await link.close()

    run(scenario())
