"""The in-memory broker: what it honours, and that it behaves as mosquitto does for the same
scenario (run against both)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from conftest import USERS

from ocpp_iot.testing import Mosquitto, render_acl
from ocpp_iot.transports.aio import AsyncMqttClient
from ocpp_iot.transports.base import PubSubClient
from ocpp_iot.transports.memory import MemoryBroker, MemoryClient, mosquitto_acl
from ocpp_iot.transports.settings import Message, MqttSettings, PublishRefused, Will

Make = Callable[..., Any]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def settings(user: str, client_id: str, **kw: Any) -> MqttSettings:
    kw.setdefault("clean_start", True)
    return MqttSettings(
        "mqtt://memory", client_id=client_id, username=user, password=USERS.get(user), **kw
    )


def memory() -> MemoryBroker:
    return MemoryBroker(users=USERS, acl=mosquitto_acl(render_acl("ocpp")))


async def next_messages(c: Any, n: int, timeout: float = 5.0) -> list[Message]:
    return [await asyncio.wait_for(c.get(), timeout) for _ in range(n)]


async def nothing_more(c: Any, wait: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(c.get(), wait)
    except TimeoutError:
        return True
    return False


# -- the API ------------------------------------------------------------------------------------


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(getattr(cls, name))
        for name in dir(cls)
        if not name.startswith("_") and callable(getattr(cls, name))
    }


def test_memory_client_has_the_api_of_the_mqtt_client() -> None:
    ours, theirs = _public(MemoryClient), _public(AsyncMqttClient)
    assert set(ours) == set(theirs)
    for name, sig in theirs.items():
        assert list(ours[name].parameters) == list(sig.parameters), name
        for p in sig.parameters.values():
            assert ours[name].parameters[p.name].default == p.default, (name, p.name)

    async def check() -> None:
        broker = MemoryBroker()
        c = broker.client(settings("bridge", "x"))
        assert isinstance(c, PubSubClient)
        assert isinstance(AsyncMqttClient(settings("bridge", "y")), PubSubClient)

    run(check())


# -- what the broker honours ---------------------------------------------------------------------


def test_topic_filters_and_order_per_publisher() -> None:
    async def scenario() -> None:
        broker = MemoryBroker()
        plus = broker.client(settings("a", "plus"))
        hashed = broker.client(settings("b", "hash"))
        plus.subscribe("ocpp/+/up")
        hashed.subscribe("ocpp/#")
        pub = broker.client(settings("c", "pub"))
        for c in (plus, hashed, pub):
            assert await c.start(1)
        for i in range(50):
            pub.publish("ocpp/CP1/up", b"%d" % i)
        pub.publish("ocpp/CP1/json/up", b"j")
        pub.publish("other/CP1/up", b"x")
        got = await next_messages(plus, 50)
        assert [m.payload for m in got] == [b"%d" % i for i in range(50)]
        assert await nothing_more(plus, 0.05)
        got = await next_messages(hashed, 51)
        assert got[-1].topic == "ocpp/CP1/json/up"
        assert await nothing_more(hashed, 0.05)

    run(scenario())


def test_deliveries_are_never_inside_publish() -> None:
    async def scenario() -> None:
        broker = MemoryBroker()
        events: list[str] = []
        sub = broker.client(settings("a", "sub"), lambda m: events.append(m.payload.decode()))
        sub.subscribe("t/#")
        assert await sub.start(1)
        pub = broker.client(settings("b", "pub"))
        assert await pub.start(1)
        pub.publish("t/1", b"one")
        events.append("returned")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert events == ["returned", "one"]

    run(scenario())


def test_shared_subscription_round_robin_beside_a_plain_one() -> None:
    async def scenario() -> None:
        broker = MemoryBroker()
        members = [broker.client(settings("b", f"w{i}")) for i in range(2)]
        for m in members:
            m.subscribe("$share/bridge/ocpp/+/up")
        everything = broker.client(settings("b", "all"))
        everything.subscribe("ocpp/+/up")
        pub = broker.client(settings("c", "pub"))
        for c in [*members, everything, pub]:
            assert await c.start(1)
        for i in range(6):
            pub.publish("ocpp/CP1/up", b"%d" % i)
        firsts = [[m.payload for m in await next_messages(c, 3)] for c in members]
        assert sorted(firsts) == [[b"0", b"2", b"4"], [b"1", b"3", b"5"]]
        assert len(await next_messages(everything, 6)) == 6
        # a member that leaves: the others get all
        await members[0].stop()
        pub.publish("ocpp/CP1/up", b"6")
        pub.publish("ocpp/CP1/up", b"7")
        assert [m.payload for m in await next_messages(members[1], 2)] == [b"6", b"7"]

    run(scenario())


def test_retained_messages() -> None:
    async def scenario() -> None:
        broker = MemoryBroker()
        pub = broker.client(settings("a", "pub"))
        assert await pub.start(1)
        pub.publish("s/CP1", b"online", retain=True)
        pub.publish("s/CP2", b"online", retain=True)
        pub.publish("s/CP2", b"", retain=True)  # an empty retained message deletes it
        late = broker.client(settings("b", "late"))
        late.subscribe("s/+")
        assert await late.start(1)
        (m,) = await next_messages(late, 1)
        assert (m.topic, m.payload, m.retain) == ("s/CP1", b"online", True)
        pub.publish("s/CP1", b"offline", retain=True)
        (m,) = await next_messages(late, 1)
        assert (m.payload, m.retain) == (b"offline", False)  # live: not flagged retained

    run(scenario())


def test_wills_on_kill_and_broker_disconnect_not_on_stop() -> None:
    async def scenario() -> None:
        broker = MemoryBroker()
        watcher = broker.client(settings("w", "watcher"))
        watcher.subscribe("st/#")
        assert await watcher.start(1)

        def station(cid: str) -> MemoryClient:
            return broker.client(
                settings(
                    "s",
                    cid,
                    will=Will(f"st/{cid}", b"offline"),
                    birth=(Will(f"st/{cid}", b"online"),),
                )
            )

        a = station("A")
        assert await a.start(1)
        assert [m.payload for m in await next_messages(watcher, 1)] == [b"online"]
        a.kill()
        assert [m.payload for m in await next_messages(watcher, 1)] == [b"offline"]
        b = station("B")
        assert await b.start(1)
        await next_messages(watcher, 1)
        assert broker.disconnect("B")  # a network failure: will, then it reconnects by itself
        assert [m.payload for m in await next_messages(watcher, 2)] == [b"offline", b"online"]
        assert b.connected and b.generation == 2
        await b.stop()
        assert await nothing_more(watcher, 0.05)

    run(scenario())


def test_persistent_session_redelivers_unacknowledged_then_queued() -> None:
    async def scenario() -> None:
        broker = MemoryBroker()
        s = settings("b", "bridge", clean_start=False)
        got: list[Message] = []
        sub = broker.client(s, got.append, manual_ack=True)
        sub.subscribe("up/#")
        assert await sub.start(1)
        pub = broker.client(settings("c", "pub"))
        assert await pub.start(1)
        for p in (b"a", b"b", b"c"):
            pub.publish("up/1", p)
        await asyncio.sleep(0)
        assert [m.payload for m in got] == [b"a", b"b", b"c"]
        sub.ack(got[0])
        sub.kill()
        pub.publish("up/1", b"d")  # while away
        pub.publish("up/1", b"e", qos=0)  # QoS 0 is not kept for an offline session
        assert broker.session_queue("bridge") == 3
        again: list[Message] = []
        sub2 = broker.client(s, again.append, manual_ack=True)
        sub2.subscribe("up/#")
        assert await sub2.start(1)
        await asyncio.sleep(0)
        assert [(m.payload, m.dup) for m in again] == [(b"b", True), (b"c", True), (b"d", False)]
        sub.ack(got[1])  # an ack from the old connection is ignored
        for m in again:
            sub2.ack(m)
        assert broker.session_queue("bridge") == 0
        # clean_start drops the session
        await sub2.stop()
        pub.publish("up/1", b"f")
        fresh = broker.client(settings("b", "bridge"), manual_ack=True)
        assert await fresh.start(1)
        assert await nothing_more(fresh, 0.05)

    run(scenario())


def test_receive_maximum_holds_the_rest_until_acks() -> None:
    async def scenario() -> None:
        broker = MemoryBroker()
        got: list[Message] = []
        sub = broker.client(settings("b", "sub", receive_maximum=2), got.append, manual_ack=True)
        sub.subscribe("t")
        assert await sub.start(1)
        pub = broker.client(settings("c", "pub"))
        assert await pub.start(1)
        for i in range(5):
            pub.publish("t", b"%d" % i)
        await asyncio.sleep(0.01)
        assert len(got) == 2
        sub.ack(got[0])
        await asyncio.sleep(0.01)
        assert len(got) == 3

    run(scenario())


def test_acl_passwords_content_type_and_takeover() -> None:
    async def scenario() -> None:
        broker = memory()
        bad = broker.client(MqttSettings(client_id="CP1", username="CP1", password="nope"))
        assert not await bad.start(0.2)
        assert "not authorized" in (bad.last_connect_error or "")
        assert "nope" not in (bad.last_connect_error or "")
        await bad.stop()
        cp1 = broker.client(settings("CP1", "CP1"))
        assert await cp1.start(1)
        with pytest.raises(PublishRefused) as exc:
            await cp1.publish_confirmed("ocpp/CP2/up", b"forged")
        assert exc.value.reason == 135
        bridge = broker.client(settings("bridge", "bridge"))
        bridge.subscribe("ocpp/+/up")
        assert await bridge.start(1)
        await cp1.publish_confirmed("ocpp/CP1/up", b"{}", content_type="application/json")
        (m,) = await next_messages(bridge, 1)
        assert m.content_type == "application/json"
        # a second client with the same id takes the session over
        twin = broker.client(settings("bridge", "bridge"))
        assert await twin.start(1)
        assert bridge.taken_over and not bridge.connected and twin.connected
        await bridge.stop([Will("ocpp/bridge/status", b"offline")])
        assert "ocpp/bridge/status" not in broker.retained  # the final message was skipped

    run(scenario())


# -- the same scenario against mosquitto and in memory -------------------------------------------


async def shared_scenario(make: Make) -> dict[str, Any]:
    """Observable results of a scenario using only the common client API."""
    obs: dict[str, Any] = {}

    async def barrier(c: Any) -> None:
        # everything this client sent before is processed by the broker once this is acked
        await c.publish_confirmed("ocpp/barrier/x", b"", qos=1)

    cp1 = make(
        "CP1",
        "CP1",
        will=Will("ocpp/CP1/status", b"offline"),
        birth=(Will("ocpp/CP1/status", b"online"),),
    )
    b1 = make("bridge", "scenario-bridge", clean_start=False, manual_ack=True)
    b1.subscribe("ocpp/+/up")
    members = [make("bridge", f"scenario-w{i}") for i in range(2)]
    for m in members:
        m.subscribe("$share/g/ocpp/+/up")
    for c in [cp1, b1, *members]:
        assert await c.start(10)
    for c in [b1, *members]:
        await barrier(c)
    for i in range(1, 5):
        await cp1.publish_confirmed("ocpp/CP1/up", b"%d" % i)
    got = await next_messages(b1, 4)
    obs["persistent"] = [(m.payload, m.dup, m.retain) for m in got]
    shares = [[m.payload for m in await next_messages(w, 2)] for w in members]
    obs["shared"] = sorted(shares)
    b1.ack(got[0])
    b1.ack(got[1])
    await barrier(b1)
    b1.kill()
    await cp1.publish_confirmed("ocpp/CP1/up", b"5")
    b2 = make("bridge", "scenario-bridge", clean_start=False, manual_ack=True)
    b2.subscribe("ocpp/+/up")
    assert await b2.start(10)
    got = await next_messages(b2, 3)
    obs["after reconnect"] = [(m.payload, m.dup) for m in got]
    for m in got:
        b2.ack(m)
    obs["nothing more"] = await nothing_more(b2)
    await cp1.publish_confirmed("ocpp/CP1/up", b"{}", content_type="application/json")
    (m,) = await next_messages(b2, 1)
    obs["content type"] = m.content_type
    b2.ack(m)
    with pytest.raises(PublishRefused) as exc:
        await cp1.publish_confirmed("ocpp/CP2/up", b"forged")
    obs["refused"] = exc.value.reason
    watcher = make("operator", "scenario-watcher")
    watcher.subscribe("ocpp/CP1/status")
    assert await watcher.start(10)
    (m,) = await next_messages(watcher, 1)
    obs["retained"] = (m.payload, m.retain)
    cp1.kill()
    (m,) = await next_messages(watcher, 1)
    obs["will"] = (m.payload, m.retain)
    for c in [b2, *members, watcher]:
        await c.stop()
    return obs


EXPECTED = {
    "persistent": [(b"1", False, False), (b"2", False, False), (b"3", False, False),
                   (b"4", False, False)],
    "shared": [[b"1", b"3"], [b"2", b"4"]],
    "after reconnect": [(b"3", True), (b"4", True), (b"5", False)],
    "nothing more": True,
    "content type": "application/json",
    "refused": 135,
    "retained": (b"online", True),
    "will": (b"offline", False),
}  # fmt: skip


def test_same_scenario_on_mosquitto_and_in_memory(broker: Mosquitto) -> None:
    def on_mosquitto(user: str, cid: str, *, manual_ack: bool = False, **kw: Any) -> Any:
        kw.setdefault("clean_start", True)
        s = MqttSettings(broker.url, client_id=cid, username=user, password=USERS[user], **kw)
        return AsyncMqttClient(s, manual_ack=manual_ack)

    mem = memory()

    def in_memory(user: str, cid: str, *, manual_ack: bool = False, **kw: Any) -> Any:
        return mem.client(settings(user, cid, **kw), manual_ack=manual_ack)

    real = run(shared_scenario(on_mosquitto))
    fake = run(shared_scenario(in_memory))
    assert real == EXPECTED
    assert fake == real
