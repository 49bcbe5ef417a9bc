"""The interface every publish/subscribe link of ours offers (MQTT now; LoRa and WebSocket
links next): :class:`~.aio.AsyncMqttClient` and :class:`~.memory.MemoryClient` have it, so
code written against :class:`PubSubClient` runs on a real broker and in memory alike."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from .aio import Starting
from .settings import Message, MqttSettings, Will

__all__ = ["PubSubClient"]


@runtime_checkable
class PubSubClient(Protocol):
    """All methods are called from the event loop's thread."""

    settings: MqttSettings
    taken_over: bool
    connect_attempts: int
    last_connect_error: str | None

    def start(self, timeout: float | None = None) -> Starting: ...

    async def connect(self, timeout: float = 10.0) -> bool: ...

    async def wait_connected(self, timeout: float = 10.0) -> bool: ...

    @property
    def connected(self) -> bool: ...

    @property
    def generation(self) -> int: ...

    async def stop(self, final: Iterable[Will] = (), timeout: float = 5.0) -> None: ...

    def kill(self) -> None: ...

    def subscribe(self, topic: str, qos: int = 1) -> None: ...

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        *,
        content_type: str | None = None,
    ) -> None: ...

    async def publish_confirmed(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        *,
        content_type: str | None = None,
        timeout: float = 10.0,
    ) -> None: ...

    def ack(self, msg: Message) -> None: ...

    async def get(self) -> Message: ...
