"""The MQTT adapter and the mosquitto configuration, against a real mosquitto."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, USERS, Probe, make_client_cert

from ocpp_iot.testing import Mosquitto, hash_password, render_acl
from ocpp_iot.transports import _paho
from ocpp_iot.transports.mqtt import (
    AsyncMqttClient,
    LoopMqttClient,
    Message,
    MqttClient,
    MqttSettings,
    PublishRefused,
    Will,
    parse_url,
    topic_matches,
)


def _wait_until(done: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``done`` until it is true or ``timeout`` passes (the asserts after it decide)."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.02)


def settings(broker: Mosquitto, user: str, **kw: object) -> MqttSettings:
    kw.setdefault("client_id", user)
    return MqttSettings(broker.url, username=user, password=USERS[user], **kw)  # type: ignore[arg-type]


# -- pure helpers -------------------------------------------------------------------------------


def test_parse_url() -> None:
    a = parse_url("mqtt://broker.example:1884")
    assert (a.host, a.port, a.tls) == ("broker.example", 1884, False)
    a = parse_url("mqtts://u%40x:p%3Aw@broker.example")
    assert (a.host, a.port, a.tls, a.username, a.password) == (
        "broker.example",
        8883,
        True,
        "u@x",
        "p:w",
    )
    assert parse_url("localhost").port == 1883
    with pytest.raises(ValueError):
        parse_url("http://broker")
    with pytest.raises(ValueError):
        parse_url("mqtt://broker:notaport")


def test_topic_matches_with_shared_prefix() -> None:
    assert topic_matches("$share/bridge/ocpp/+/up", "ocpp/CP1/up")
    assert topic_matches("ocpp/#", "ocpp/CP1/json/up")
    assert not topic_matches("ocpp/+/up", "ocpp/CP1/down")


def test_persistent_session_needs_client_id() -> None:
    with pytest.raises(ValueError):
        MqttClient(MqttSettings("mqtt://localhost", clean_start=False))


def test_password_hash_format() -> None:
    h = hash_password("secret", salt=b"\x0f\x55\xd9\x18\xdf\x53\x3e\x5b\x7a\x3f\x31\xff")
    # the same salt and password as a line mosquitto_passwd wrote
    assert h == (
        "$7$101$D1XZGN9TPlt6PzH/$ipPg1G9R49T2WX2KinAZCUb62MhhuCYdzK5MHu+yDHKFj3fSIc3GP+EmRTSH"
        "8N9dYAf8mjWlTQxcefW1ymbwjw=="
    )


def test_deploy_files_match_the_test_configuration() -> None:
    assert (ROOT / "deploy" / "acl").read_text() == render_acl("ocpp")
    conf = (ROOT / "mosquitto.conf").read_text()
    settings = dict(
        ln.split(None, 1) for ln in conf.splitlines() if ln.strip() and not ln.startswith("#")
    )
    assert settings["allow_anonymous"] == "false"
    # outside the checkout, where `bridge add-station` writes them (mosquitto reads them as
    # its own user)
    assert settings["password_file"] == "/etc/mosquitto/ocpp/passwd"
    assert settings["acl_file"] == "/etc/mosquitto/ocpp/acl"
    assert settings["persistence"] == "true"
    assert int(settings["max_inflight_messages"]) >= 100
    users = [ln.split(":")[0] for ln in (ROOT / "deploy" / "passwd").read_text().splitlines()]
    assert {"bridge", "operator"} <= set(users)


# -- against mosquitto ---------------------------------------------------------------------------


def test_wrong_password_is_refused(broker: Mosquitto) -> None:
    c = MqttClient(MqttSettings(broker.url, client_id="CP1", username="CP1", password="nope"))
    c.start()
    assert not c.wait_connected(1.5)
    c.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_station_acl(broker: Mosquitto, protocol: str) -> None:
    bridge_sub = Probe(broker.url, "bridge", ["ocpp/#"], protocol=protocol)
    cp1 = MqttClient(settings(broker, "CP1", protocol=protocol))
    cp1.start()
    assert cp1.wait_connected(5)
    cp1.publish_confirmed("ocpp/CP1/up", b"mine")
    cp1.publish_confirmed("ocpp/CP1/status", b"online")
    if protocol == "5":
        with pytest.raises(PublishRefused) as exc:
            cp1.publish_confirmed("ocpp/CP2/up", b"forged")
        assert exc.value.reason == 135  # not authorized
        with pytest.raises(PublishRefused):
            cp1.publish_confirmed("ocpp/CP1/down", b"forged")
    else:  # 3.1.1: acknowledged, silently dropped
        cp1.publish_confirmed("ocpp/CP2/up", b"forged")
    got = {(m.topic, m.payload) for m in bridge_sub.drain(0.5)}
    assert ("ocpp/CP1/up", b"mine") in got
    assert not any(p == b"forged" for _, p in got)
    cp1.stop()
    bridge_sub.close()


def test_station_reads_only_its_own_down_topic(broker: Mosquitto) -> None:
    cp1 = Probe(broker.url, "CP1", ["ocpp/CP1/down", "ocpp/CP2/down", "ocpp/CP2/up"])
    b = MqttClient(settings(broker, "bridge"))
    b.start()
    assert b.wait_connected(5)
    for t in ("ocpp/CP1/down", "ocpp/CP2/down", "ocpp/CP2/up"):
        b.publish_confirmed(t, t.encode())
    got = [m.topic for m in cp1.drain(0.5)]
    assert got == ["ocpp/CP1/down"]
    b.stop()
    cp1.close()


def test_will_and_birth(broker: Mosquitto) -> None:
    watcher = Probe(broker.url, "operator", ["ocpp/CP1/status"])
    cp1 = MqttClient(
        settings(
            broker,
            "CP1",
            will=Will("ocpp/CP1/status", b"offline"),
            birth=(Will("ocpp/CP1/status", b"online"),),
        )
    )
    cp1.start()
    assert watcher.wait_for(lambda m: m.payload == b"online").retain is False
    cp1.kill()  # no DISCONNECT: the broker publishes the will
    assert watcher.wait_for(lambda m: m.payload == b"offline", 10)
    late = Probe(broker.url, "operator", ["ocpp/CP1/status"])
    m = late.get()
    assert (m.payload, m.retain) == (b"offline", True)
    watcher.close()
    late.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_persistent_session_gets_what_was_sent_while_away(broker: Mosquitto, protocol: str) -> None:
    got: list[bytes] = []
    s = settings(broker, "bridge", client_id="persist-test", protocol=protocol)
    sub = MqttClient(s, lambda m: got.append(m.payload))
    sub.subscribe("ocpp/+/up")
    sub.start()
    assert sub.wait_connected(5)
    time.sleep(0.2)
    sub.stop()
    pub = MqttClient(settings(broker, "CP1", protocol=protocol))
    pub.start()
    assert pub.wait_connected(5)
    for i in range(5):
        pub.publish_confirmed("ocpp/CP1/up", b"%d" % i)
    pub.stop()
    broker.restart()  # the session and its queue survive a broker restart too
    sub = MqttClient(s, lambda m: got.append(m.payload))
    sub.start()
    assert sub.wait_connected(5)
    _wait_until(lambda: len(got) >= 5)
    sub.stop()
    assert got == [b"0", b"1", b"2", b"3", b"4"]


def test_unacknowledged_messages_come_again(broker: Mosquitto) -> None:
    """With manual acks, what was received but not acknowledged is redelivered."""
    first: list[object] = []
    s = settings(broker, "bridge", client_id="manual-ack")
    sub = MqttClient(s, first.append, manual_ack=True)
    sub.subscribe("ocpp/+/up")
    sub.start()
    assert sub.wait_connected(5)
    pub = MqttClient(settings(broker, "CP1"))
    pub.start()
    assert pub.wait_connected(5)
    pub.publish_confirmed("ocpp/CP1/up", b"a")
    pub.publish_confirmed("ocpp/CP1/up", b"b")
    _wait_until(lambda: len(first) >= 2)
    sub.ack(first[0])  # type: ignore[arg-type]
    time.sleep(0.2)
    sub.kill()
    second: list[object] = []
    sub = MqttClient(s, second.append, manual_ack=True)
    sub.start()
    assert sub.wait_connected(5)
    _wait_until(lambda: bool(second))
    time.sleep(0.3)
    assert [m.payload for m in second] == [b"b"]  # type: ignore[attr-defined]
    assert second[0].dup  # type: ignore[attr-defined]
    sub.stop()
    pub.stop()


def test_reconnects_after_broker_restart(broker: Mosquitto) -> None:
    got: list[bytes] = []
    sub = MqttClient(
        settings(broker, "bridge", client_id="reconnect", reconnect_min_delay=0.2),
        lambda m: got.append(m.payload),
    )
    sub.subscribe("ocpp/+/up")
    sub.start()
    assert sub.wait_connected(5)
    broker.restart(down_for=0.5)
    time.sleep(0.2)
    assert sub.wait_connected(15)
    pub = MqttClient(settings(broker, "CP1"))
    pub.start()
    assert pub.wait_connected(5)
    pub.publish_confirmed("ocpp/CP1/up", b"after")
    _wait_until(lambda: bool(got))
    assert got == [b"after"]
    pub.stop()
    sub.stop()


def test_mosquitto_helper_add_user_and_log(broker: Mosquitto, tmp_path: Path) -> None:
    broker.add_user("CP42", "pw42")
    c = MqttClient(MqttSettings(broker.url, client_id="CP42", username="CP42", password="pw42"))
    c.start()
    assert c.wait_connected(5)
    c.stop()
    assert re.search(r"as CP42", broker.log())


def test_mqtts_with_ca(tls_broker: tuple[Mosquitto, str, str]) -> None:
    _, url, ca = tls_broker
    got: list[bytes] = []
    ok = MqttClient(
        MqttSettings(
            url, client_id="tls-bridge", username="bridge", password=USERS["bridge"], ca_certs=ca
        ),
        lambda m: got.append(m.payload),
    )
    ok.subscribe("ocpp/+/up")
    ok.start()
    assert ok.wait_connected(10), ok.last_connect_error
    time.sleep(0.2)
    ok.publish_confirmed("ocpp/CP1/up", b"over tls")
    _wait_until(lambda: bool(got))
    assert got == [b"over tls"]
    ok.stop()
    # without our CA the broker's certificate is not trusted
    bad = MqttClient(
        MqttSettings(url, client_id="tls-bad", username="bridge", password=USERS["bridge"])
    )
    bad.start()
    assert not bad.wait_connected(2)
    bad.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_async_client_reads_bursts_and_large_messages(broker: Mosquitto, protocol: str) -> None:
    """AsyncMqttClient reads the socket in 64 KiB chunks and serves paho from that buffer:
    a burst of many small messages (several per chunk) and messages larger than a chunk
    (split over several reads) all arrive whole, once each and in order, with no stall
    waiting for the selector while complete packets sit in the buffer; and the buffer is
    really used (paho.Client._sock_recv is what paho reads through: far fewer socket reads
    than paho asks for)."""
    sizes = [(i * 37) % 300 + 1 for i in range(3000)]
    sizes[100] = sizes[1500] = 150_000  # larger than one read
    sizes[2000] = 65_536 * 2 + 3  # the last 999 are small: they end up in one buffer
    payloads = [bytes([i % 251]) * n for i, n in enumerate(sizes)]

    async def scenario() -> tuple[list[bytes], int, int]:
        got: list[bytes] = []
        done = asyncio.Event()

        def on_message(m: Message) -> None:
            got.append(m.payload)
            if len(got) == len(payloads):
                done.set()

        sub = AsyncMqttClient(
            settings(broker, "bridge", client_id="loop-burst", protocol=protocol), on_message
        )
        sub.subscribe("ocpp/+/up", 1)
        assert await sub.start(5)
        await sub.publish_confirmed("ocpp/barrier/x", b"")  # our SUBSCRIBE is in effect
        pub = MqttClient(settings(broker, "CP1", protocol=protocol))
        pub.start()
        assert pub.wait_connected(5)
        paho = sub._client
        requests = [0]
        served = paho._sock_recv

        def counting(bufsize: int) -> bytes:
            requests[0] += 1
            return served(bufsize)

        paho._sock_recv = counting  # type: ignore[method-assign]
        calls0 = paho.recv_calls
        for p in payloads:  # back to back: the broker forwards them in big TCP segments
            pub.publish("ocpp/CP1/up", p, 1)
        await asyncio.wait_for(done.wait(), 30)
        await asyncio.sleep(0.2)  # nothing more may come
        pub.stop()
        calls = paho.recv_calls - calls0
        await sub.stop()
        return got, requests[0], calls

    got, requests, calls = asyncio.run(scenario())
    assert len(got) == len(payloads)
    assert got == payloads
    assert requests >= 3 * len(payloads)  # type byte, length byte(s), body
    assert calls < len(payloads) / 4  # served from the buffer


def test_mqtts_with_client_certificate(mtls_broker: tuple[str, Path]) -> None:
    """A listener that requires client certificates: with ``certfile``/``keyfile`` set the
    station connects and publishes; without them the TLS handshake is refused."""
    url, certs = mtls_broker
    ca = str(certs / "ca.pem")
    cert, key = make_client_cert(certs, "CP1")
    bridge_cert, bridge_key = make_client_cert(certs, "bridge")
    watcher_got: list[bytes] = []
    bridge = MqttClient(
        MqttSettings(
            url,
            client_id="mtls-bridge",
            username="bridge",
            password=USERS["bridge"],
            ca_certs=ca,
            certfile=bridge_cert,
            keyfile=bridge_key,
        ),
        lambda m: watcher_got.append(m.payload),
    )
    bridge.subscribe("ocpp/+/up")
    bridge.start()
    assert bridge.wait_connected(10), bridge.last_connect_error
    time.sleep(0.2)
    cp1 = MqttClient(
        MqttSettings(
            url,
            client_id="CP1",
            username="CP1",
            password=USERS["CP1"],
            ca_certs=ca,
            certfile=cert,
            keyfile=key,
        )
    )
    cp1.start()
    assert cp1.wait_connected(10), cp1.last_connect_error
    cp1.publish_confirmed("ocpp/CP1/up", b"mutual tls")
    _wait_until(lambda: bool(watcher_got))
    assert watcher_got == [b"mutual tls"]
    cp1.stop()
    # the right CA and password, but no client certificate: refused
    anonymous_tls = MqttClient(
        MqttSettings(url, client_id="CP2", username="CP2", password=USERS["CP2"], ca_certs=ca)
    )
    anonymous_tls.start()
    assert not anonymous_tls.wait_connected(2)
    anonymous_tls.stop()
    bridge.stop()


def test_publish_confirmed_beside_plain_publishes_does_not_deadlock(broker: Mosquitto) -> None:
    """paho calls on_publish with its own lock held; publish_confirmed must never hold a lock
    of ours while it calls into paho, or the two threads wait for each other forever."""
    import threading

    cp1 = MqttClient(settings(broker, "CP1"))
    cp1.start()
    assert cp1.wait_connected(5)
    refused: list[str] = []

    def confirmed() -> None:
        for i in range(300):
            cp1.publish_confirmed("ocpp/CP1/up", b"c%d" % i, timeout=10)
        try:
            cp1.publish_confirmed("ocpp/CP2/up", b"not mine", timeout=10)
        except PublishRefused as exc:
            refused.append(exc.reason_name)

    def plain() -> None:
        for i in range(3000):
            cp1.publish("ocpp/CP1/up", b"p%d" % i, 1)

    threads = [threading.Thread(target=plain, daemon=True)] + [
        threading.Thread(target=confirmed, daemon=True) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    stuck = [t for t in threads if t.is_alive()]
    assert not stuck, "publish_confirmed deadlocked with paho's network thread"
    cp1.kill()
    assert refused == ["Not authorized"] * 3  # reason codes still reach the right caller


# -- the async client ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_async_client_api(broker: Mosquitto, protocol: str) -> None:
    """start/wait_connected/subscribe after start/publish with a content type/get/
    publish_confirmed refused/manual ack/stop with final messages/kill and the will."""

    async def scenario() -> None:
        watcher = AsyncMqttClient(settings(broker, "operator", clean_start=True))
        watcher.subscribe("ocpp/CP1/status")
        assert await watcher.connect(5)
        bridge = AsyncMqttClient(
            settings(broker, "bridge", protocol=protocol, clean_start=True), manual_ack=True
        )
        bridge.start()
        assert not bridge.connected
        assert await bridge.wait_connected(5) and bridge.connected
        bridge.subscribe("ocpp/+/up")  # after start: at once
        await bridge.publish_confirmed("ocpp/barrier/x", b"")
        cp1 = AsyncMqttClient(
            settings(broker, "CP1", protocol=protocol, will=Will("ocpp/CP1/status", b"offline"))
        )
        assert await cp1.start(5)
        cp1.publish("ocpp/CP1/up", b"[2]", content_type="application/json")
        await cp1.publish_confirmed("ocpp/CP1/up", b"\x82", content_type="application/cbor")
        first = await asyncio.wait_for(bridge.get(), 5)
        second = await asyncio.wait_for(bridge.get(), 5)
        assert (first.payload, second.payload) == (b"[2]", b"\x82")
        if protocol == "5":
            assert (first.content_type, second.content_type) == (
                "application/json",
                "application/cbor",
            )
            with pytest.raises(PublishRefused) as exc:
                await cp1.publish_confirmed("ocpp/CP2/up", b"forged")
            assert exc.value.reason == 135
        else:  # no properties in MQTT 3.1.1
            assert first.content_type is None and second.content_type is None
        assert first.generation == bridge.generation == 1
        bridge.ack(first)
        bridge.ack(second)
        cp1.kill()  # no DISCONNECT: the broker publishes the will
        m = await asyncio.wait_for(watcher.get(), 10)
        assert m.payload == b"offline"
        await bridge.stop([Will("ocpp/CP1/status", b"bridge says bye")])
        m = await asyncio.wait_for(watcher.get(), 5)
        assert (m.payload, m.retain) == (b"bridge says bye", False)
        assert not bridge.connected
        await watcher.stop()

    asyncio.run(scenario())


def test_await_start_with_a_timeout(broker: Mosquitto) -> None:
    """``await start(timeout)`` says whether the client connected in time (the bridge reads
    retained state this way)."""

    async def scenario() -> None:
        c = AsyncMqttClient(settings(broker, "CP2"))
        c.subscribe("ocpp/CP2/down")
        assert await c.start(5) is True
        bad = AsyncMqttClient(MqttSettings(broker.url, client_id="CP3", username="CP3"))
        assert await bad.start(0.5) is False
        await bad.stop()
        await c.stop()

    asyncio.run(scenario())


def test_loop_mqtt_client_is_a_deprecated_alias(broker: Mosquitto) -> None:
    async def scenario() -> None:
        with pytest.warns(DeprecationWarning):
            c = LoopMqttClient(settings(broker, "bridge"), lambda m: None, manual_ack=True)
        assert isinstance(c, AsyncMqttClient)
        c.start()
        assert await c.wait_connected_async(5)
        await c.stop_async([])

    asyncio.run(scenario())


# -- paho internals we rely on (these fail when a paho release changes them) ----------------------


def test_clients_share_their_connect_properties_by_value() -> None:
    # one paho Properties is ~5.7 KiB: `simulate`'s stations share one per set of values
    a = _paho.build_client(MqttSettings("mqtt://localhost", client_id="CP1"), manual_ack=True)
    b = _paho.build_client(MqttSettings("mqtt://localhost", client_id="CP2"), manual_ack=True)
    assert a._connect_properties is b._connect_properties is not None
    kept = MqttSettings("mqtt://localhost", clean_start=False, session_expiry=600)
    props = _paho.connect_properties(kept)
    assert props is not None and props is not a._connect_properties
    assert (props.SessionExpiryInterval, props.ReceiveMaximum) == (600, kept.receive_maximum)
    clean = _paho.connect_properties(
        MqttSettings("mqtt://localhost", clean_start=True, receive_maximum=70000)
    )
    assert clean is not None and (clean.SessionExpiryInterval, clean.ReceiveMaximum) == (0, 65535)


def test_paho_still_has_the_internals_we_use() -> None:
    import inspect

    import paho.mqtt.client as paho

    assert _paho.internals() == {
        "sock_recv": True,
        "create_socket": True,
        "out_packet": True,
        "on_message": True,
    }
    # messages reach on_message through _handle_on_message, after the topic matcher
    handle = inspect.getsource(paho.Client._handle_on_message)
    assert "self._on_message_filtered.iter_match(" in handle and "self.on_message" in handle
    assert "self._handle_on_message(" in inspect.getsource(paho.Client._handle_publish)
    # the read path goes through _sock_recv, reconnect() through _create_socket()
    assert "self._sock_recv(" in inspect.getsource(paho.Client._packet_read)
    assert "self._create_socket()" in inspect.getsource(paho.Client.reconnect)
    # the layout of a queued packet that FastPaho.coalesce rewrites
    source = inspect.getsource(paho.Client._packet_queue)
    for key in ("command", "mid", "qos", "pos", "to_process", "packet", "info"):
        assert f'"{key}"' in source, key


def test_sockets_connected_off_the_loop_and_writes_coalesced(broker: Mosquitto) -> None:
    """The connection is made on a socket we connected in a worker thread (paho's reconnect()
    takes it through _create_socket), and publishes queued in one turn of the loop leave in
    one write (FastPaho.coalesce on paho's _out_packet)."""

    async def scenario() -> None:
        sub = AsyncMqttClient(settings(broker, "bridge", clean_start=True))
        sub.subscribe("ocpp/+/up")
        assert await sub.start(5)
        await sub.publish_confirmed("ocpp/barrier/x", b"")
        c = AsyncMqttClient(settings(broker, "CP1"))
        assert await c.start(5)
        paho = c._client
        assert paho.prepared_used == 1 and paho.external_connect
        for i in range(50):
            c.publish("ocpp/CP1/up", b"%d" % i)
        queued = list(paho._out_packet)
        assert len(queued) == 50
        for p in queued:
            assert set(p) == _paho._OUT_PACKET_KEYS
            assert (p["command"] & 0xF0) == 0x30 and p["pos"] == 0
        before = paho.coalesced
        await c.publish_confirmed("ocpp/CP1/up", b"last")
        assert paho.coalesced - before >= 50
        got = [(await asyncio.wait_for(sub.get(), 5)).payload for _ in range(51)]
        assert got == [b"%d" % i for i in range(50)] + [b"last"]
        await c.stop()
        await sub.stop()

    asyncio.run(scenario())


def test_messages_skip_the_topic_matcher_until_a_topic_callback_is_added(
    broker: Mosquitto,
) -> None:
    """Without topic callbacks (message_callback_add) messages go to on_message directly,
    not through paho's matcher (a reference cycle per message for the garbage collector);
    with one, paho's own dispatch: the matching topic to its callback, the rest to
    on_message."""

    async def scenario() -> None:
        sub = AsyncMqttClient(settings(broker, "bridge", clean_start=True))
        sub.subscribe("ocpp/#")
        assert await sub.start(5)
        pub = AsyncMqttClient(settings(broker, "CP1"))
        assert await pub.start(5)
        paho = sub._client
        for i in range(5):
            pub.publish("ocpp/CP1/up", b"%d" % i)
        got = [(await asyncio.wait_for(sub.get(), 5)).payload for _ in range(5)]
        assert got == [b"%d" % i for i in range(5)]
        assert paho.direct_messages == 5
        special: list[bytes] = []
        arrived = asyncio.Event()

        def on_up(client: object, userdata: object, m: Any) -> None:
            special.append(m.payload)
            arrived.set()

        paho.message_callback_add("ocpp/+/up", on_up)
        pub.publish("ocpp/CP1/up", b"s")
        await asyncio.wait_for(arrived.wait(), 5)
        assert special == [b"s"] and paho.direct_messages == 5 and sub._queue.empty()
        paho.message_callback_remove("ocpp/+/up")
        await pub.publish_confirmed("ocpp/CP1/up", b"again")
        assert (await asyncio.wait_for(sub.get(), 5)).payload == b"again"
        assert paho.direct_messages == 6
        await pub.stop()
        await sub.stop()

    asyncio.run(scenario())


def test_without_the_internals_it_still_works_and_warns_once(
    broker: Mosquitto, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What a paho that changed those internals gets: paho's own reads, connects and writes,
    and one WARNING for each speed-up lost."""
    monkeypatch.setattr(_paho, "_INTERNALS", None)
    monkeypatch.setattr(_paho, "_warned", set())
    monkeypatch.setattr(
        _paho,
        "internals",
        lambda: {
            "sock_recv": False,
            "create_socket": False,
            "out_packet": False,
            "on_message": False,
        },
    )

    async def scenario() -> None:
        sub = AsyncMqttClient(settings(broker, "bridge", clean_start=True))
        sub.subscribe("ocpp/+/up")
        assert await sub.start(5)
        await sub.publish_confirmed("ocpp/barrier/x", b"")
        c = AsyncMqttClient(settings(broker, "CP1"))
        assert await c.start(5)
        assert c._client.prepared_used == 0
        for i in range(20):
            c.publish("ocpp/CP1/up", b"%d" % i)
        await c.publish_confirmed("ocpp/CP1/up", b"last")
        assert c._client.coalesced == 0
        assert c._client.recv_calls == 0  # paho's own _sock_recv did the reading
        got = [(await asyncio.wait_for(sub.get(), 5)).payload for _ in range(21)]
        assert got[-1] == b"last"
        assert sub._client.direct_messages == 0  # paho's own _handle_on_message delivered
        await c.stop()
        await sub.stop()

    with caplog.at_level(logging.WARNING, "ocpp_iot.transports.mqtt"):
        asyncio.run(scenario())
    warned = [r.getMessage() for r in caplog.records if "paho-mqtt" in r.getMessage()]
    assert len(warned) == 4, warned


def test_our_client_keeps_its_own_attributes_out_of_pahos_instance_dict() -> None:
    """FastPaho's attributes live in slots: the instance dict holds paho's alone, so it does
    not double in size (1.6 -> 3.3 KiB a station at 86 entries, with 1,000 stations)."""
    import sys

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    ours = _paho.build_client(MqttSettings("mqtt://localhost", client_id="CP1"), manual_ack=True)
    plain = paho.Client(CallbackAPIVersion.VERSION2, client_id="CP1", protocol=paho.MQTTv5)
    assert set(vars(ours)) <= set(vars(plain)) | {"_sock_recv"}
    assert sys.getsizeof(vars(ours)) <= sys.getsizeof(vars(plain))
    ours.recv_calls += 1  # the slots work as attributes
    assert ours.recv_calls == 1 and "recv_calls" not in vars(ours)
