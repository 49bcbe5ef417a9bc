"""The bridge on the in-memory broker: a worker, stations and operators as MemoryClients, and
waits on events with deadlines instead of fixed sleeps (used by ``test_bridge_memory.py``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from ocpp_iot.behaviours import Behaviour, Context, v201
from ocpp_iot.bridge import _wire
from ocpp_iot.bridge.service import Bridge, BridgeConfig
from ocpp_iot.bridge.store import SqliteStore, Store
from ocpp_iot.rpc import Call, CallResult, Frame
from ocpp_iot.transports.memory import MemoryBroker, MemoryClient
from ocpp_iot.transports.settings import Message, MqttSettings, Will

BRIDGE_ID = "ocpp-bridge"
T0 = "2026-01-01T00:00:00Z"


async def until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll ``cond`` every few milliseconds until it holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


async def next_message(client: MemoryClient, timeout: float = 5.0) -> Message:
    return await asyncio.wait_for(client.get(), timeout)


async def more_messages(client: MemoryClient, wait: float) -> list[Message]:
    """What else arrives within ``wait`` seconds (a check that nothing more comes)."""
    got: list[Message] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        # at least a few milliseconds: the memory broker delivers with loop.call_soon
        left = max(deadline - loop.time(), 0.005)
        try:
            got.append(await asyncio.wait_for(client.get(), left))
        except TimeoutError:
            return got


class Acks:
    """Records every acknowledgement the bridge's clients give: ``(client id, topic, payload)``
    (a stale ack, of a connection gone, is recorded too: ``MemoryClient.ack`` ignores it)."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.seen: list[tuple[str, str, bytes]] = []

    def factory(self, settings: MqttSettings, on_message: Any, **kw: Any) -> MemoryClient:
        client = self.broker.client(settings, on_message, **kw)
        plain_ack = client.ack
        cid = settings.client_id

        def ack(msg: Message) -> None:
            if msg.generation == client.generation:
                self.seen.append((cid, msg.topic, msg.payload))
            plain_ack(msg)

        client.ack = ack  # type: ignore[method-assign]
        return client

    def of(self, topic: str) -> list[bytes]:
        return [p for _, t, p in self.seen if t == topic]


@asynccontextmanager
async def running(
    broker: MemoryBroker,
    store: Store | str,
    handlers: Mapping[str, Behaviour],
    *,
    acks: Acks | None = None,
    client_id: str = BRIDGE_ID,
    **config: Any,
) -> AsyncIterator[Bridge]:
    """A bridge worker serving on ``broker`` until the block ends (then stopped cleanly)."""
    if isinstance(store, str):
        store = SqliteStore(store)
    cfg = BridgeConfig(mqtt=MqttSettings("mqtt://memory", client_id=client_id), **config)
    bridge = Bridge(
        cfg, handlers, store, client_factory=acks.factory if acks is not None else broker.client
    )
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))

    def up() -> bool:
        if task.done():
            task.result()  # raises what stopped the bridge
            raise AssertionError("the bridge stopped")
        return bridge.client is not None and bridge.client.connected

    await until(up, "the bridge to connect")
    try:
        yield bridge
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


class Station:
    """A station as a bare MQTT client: sends what the test says, hands back what comes down."""

    def __init__(self, broker: MemoryBroker, sid: str, *, will: bool = False) -> None:
        self.sid = sid
        self.up = f"ocpp/{sid}/up"
        settings = MqttSettings(
            "mqtt://memory",
            client_id=sid,
            clean_start=True,
            will=Will(f"ocpp/{sid}/status", b"offline", 1, True) if will else None,
        )
        self.client = broker.client(settings)
        self.client.subscribe(f"ocpp/{sid}/down", 1)

    async def start(self) -> Station:
        assert await self.client.start(5)
        return self

    def send(self, frame: Frame, version: str = "2.0.1") -> bytes:
        data = _wire.encode(frame, version)
        self.client.publish(self.up, data, 1)
        return data

    def call(self, mid: str, action: str, payload: dict[str, Any]) -> bytes:
        return self.send(Call(mid, action, payload))

    def answer(self, call: Call, payload: dict[str, Any]) -> None:
        self.send(CallResult(call.message_id, payload, call.action))

    def raw(self, data: bytes, content_type: str | None = None) -> None:
        self.client.publish(self.up, data, 1, content_type=content_type)

    async def message(self, timeout: float = 5.0) -> Message:
        return await next_message(self.client, timeout)

    async def frame(self, timeout: float = 5.0) -> Frame:
        """The next frame on ``down`` (compact CBOR)."""
        return _wire.decode((await self.message(timeout)).payload)[1]

    async def rpc(
        self, mid: str, action: str, payload: dict[str, Any], timeout: float = 5.0
    ) -> Frame:
        self.call(mid, action, payload)
        return await self.frame(timeout)


class Operator:
    """An operator (``bridge call``): OCPP-J CALLs on ``json/call``, answers on ``json/result``."""

    def __init__(self, broker: MemoryBroker, sid: str, client_id: str = "operator") -> None:
        self.sid = sid
        self.client = broker.client(MqttSettings("mqtt://memory", client_id=client_id))
        self.client.subscribe(f"ocpp/{sid}/json/result", 1)

    async def start(self) -> Operator:
        assert await self.client.start(5)
        return self

    def call(self, mid: str, action: str, payload: dict[str, Any]) -> None:
        self.raw(json.dumps([2, mid, action, payload]).encode())

    def raw(self, data: bytes) -> None:
        self.client.publish(f"ocpp/{self.sid}/json/call", data, 1)

    async def result(self, timeout: float = 5.0) -> list[Any]:
        value: list[Any] = json.loads((await next_message(self.client, timeout)).payload)
        return value


class Counting(v201.BasicChargeSystem):
    """Answers the basic 2.0.1 actions at once and records each handler run
    ``(station, action, message id)``; the Heartbeat answer's time counts the runs, so an
    answer computed twice differs from the first."""

    def __init__(self, runs: list[tuple[str, str, str]] | None = None) -> None:
        super().__init__()
        #: shared between the handlers of several workers when given
        self.runs: list[tuple[str, str, str]] = [] if runs is None else runs

    def _ran(self, action: str, ctx: Context) -> None:
        self.runs.append((ctx.station_id, action, ctx.message_id))

    def boot_notification(self, request: Any, ctx: Context) -> Any:
        self._ran("BootNotification", ctx)
        return {"currentTime": T0, "interval": 60, "status": "Accepted"}

    def heartbeat(self, request: Any, ctx: Context) -> Any:
        self._ran("Heartbeat", ctx)
        n = len(self.runs)
        return {"currentTime": f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"}

    def authorize(self, request: Any, ctx: Context) -> Any:
        self._ran("Authorize", ctx)
        return {"idTokenInfo": {"status": "Accepted"}}

    def status_notification(self, request: Any, ctx: Context) -> Any:
        self._ran("StatusNotification", ctx)
        return {}

    def transaction_event(self, request: Any, ctx: Context) -> Any:
        self._ran("TransactionEvent", ctx)
        return {}
