"""A blocking MQTT client for command-line tools and tests (not for services: see :mod:`.aio`).

:class:`MqttClient` runs one :class:`~.aio.AsyncMqttClient` in an asyncio loop of its own, in
a background thread: same connection handling, back-off, logging and settings, nothing done
twice. Its methods may be called from any thread; ``on_message`` runs in the background
thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from .aio import AsyncMqttClient
from .settings import Message, MqttSettings, Will

__all__ = ["MqttClient"]

T = TypeVar("T")


class MqttClient:
    """``start()``, ``wait_connected()``, ``publish_confirmed()``... that block the caller."""

    def __init__(
        self,
        settings: MqttSettings,
        on_message: Callable[[Message], None] | None = None,
        *,
        manual_ack: bool = False,
        on_connect: Callable[[bool], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._connected = threading.Event()
        self._on_connect_cb = on_connect
        self._on_disconnect_cb = on_disconnect
        self.client = AsyncMqttClient(
            settings,
            on_message if on_message is not None else _ignore,
            manual_ack=manual_ack,
            on_connect=self._handle_connect,
            on_disconnect=self._handle_disconnect,
        )
        self.address = self.client.address
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _handle_connect(self, session_present: bool) -> None:
        self._connected.set()
        if self._on_connect_cb is not None:
            self._on_connect_cb(session_present)

    def _handle_disconnect(self) -> None:
        self._connected.clear()
        if self._on_disconnect_cb is not None:
            self._on_disconnect_cb()

    # -- running things in the client's loop -----------------------------------------------------

    def _in_loop(self) -> bool:
        return self._thread is None or threading.current_thread() is self._thread

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn`` in the loop (now, if we are in it or it is not running yet)."""
        if self._in_loop():
            fn(*args, **kwargs)
        else:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(lambda: fn(*args, **kwargs))

    def _wait(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        if self._loop is None or self._thread is None:
            coro.close()
            raise RuntimeError("MqttClient is not started")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("MqttClient: blocking call from its own message handler")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError("MQTT client did not answer in time") from None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (retrying with back-off until the broker answers)."""
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def begin() -> None:
            try:
                self.client.start()
            finally:
                started.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(begin)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

        self._loop = loop
        name = f"mqtt-{self.settings.client_id or 'client'}"
        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()
        started.wait()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def generation(self) -> int:
        return self.client.generation

    @property
    def last_connect_error(self) -> str | None:
        return self.client.last_connect_error

    @property
    def connect_attempts(self) -> int:
        return self.client.connect_attempts

    def stop(self, final: Iterable[Will] = (), timeout: float = 5.0) -> None:
        """Publish ``final``, disconnect cleanly, end the background thread."""
        if self._thread is None:
            return
        try:
            self._wait(self.client.stop(list(final), timeout), timeout + 5)
        finally:
            self._end()

    def kill(self) -> None:
        """Drop the connection without DISCONNECT (the broker publishes the will). For tests."""
        if self._thread is None:
            return
        done = threading.Event()

        def kill() -> None:
            self.client.kill()
            done.set()

        self._call(kill)
        done.wait(5)
        self._end()

    def _end(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("MqttClient: stop() from its own message handler")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None
        self._connected.clear()

    # -- operations -----------------------------------------------------------------------------

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now (if connected) and again after every reconnect."""
        self._call(self.client.subscribe, topic, qos)

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        *,
        content_type: str | None = None,
    ) -> None:
        """Queue a message; a QoS 1 one is sent (again after a reconnect) until the broker
        has it."""
        self._call(self.client.publish, topic, payload, qos, retain, content_type=content_type)

    def publish_confirmed(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        timeout: float = 10.0,
        *,
        content_type: str | None = None,
    ) -> None:
        """Publish and wait for the broker's PUBACK; raise :class:`PublishRefused` on an MQTT 5
        failure reason code, TimeoutError if no PUBACK comes."""
        coro = self.client.publish_confirmed(
            topic, payload, qos, retain, content_type=content_type, timeout=timeout
        )
        self._wait(coro, timeout + 5)

    def ack(self, msg: Message) -> None:
        """Acknowledge a QoS 1 message received with ``manual_ack=True``."""
        self._call(self.client.ack, msg)


def _ignore(msg: Message) -> None:
    pass
