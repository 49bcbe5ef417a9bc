"""What every client of ours says about its connection and hands out as messages, the same way
for :class:`~.aio.AsyncMqttClient` and :class:`~.memory.MemoryClient` (one copy of it).

A class using :class:`ClientState` sets ``_connected`` (a :class:`~._waiting.Flag`, set while
connected), ``_generation`` (successful connections so far) and ``_queue`` (an
:class:`~._waiting.Inbox` of messages for :meth:`~ClientState.get`), and has
``start(timeout)`` returning a :class:`Starting`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

from ._waiting import Flag, Inbox
from .settings import Message

__all__ = ["ClientState", "Starting"]


class Starting:
    """What :meth:`AsyncMqttClient.start` returns: awaiting it waits for the connection
    (``True``) or the timeout (``False``); not awaiting it is fine too."""

    __slots__ = ("_client", "_timeout")

    def __init__(self, client: Any, timeout: float | None) -> None:
        self._client = client
        self._timeout = timeout

    def __await__(self) -> Generator[Any, None, bool]:
        timeout = self._timeout if self._timeout is not None else 10.0
        waiting: Coroutine[Any, Any, bool] = self._client.wait_connected(timeout)
        return waiting.__await__()


class ClientState:
    __slots__ = ()
    _connected: Flag
    _generation: int
    _queue: Inbox[Message]

    def start(self, timeout: float | None = None) -> Starting:
        raise NotImplementedError

    async def connect(self, timeout: float = 10.0) -> bool:
        """:meth:`start`, then wait up to ``timeout`` for the connection."""
        return await self.start(timeout)

    async def wait_connected(self, timeout: float = 10.0) -> bool:
        if self._connected.is_set():
            return True
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def generation(self) -> int:
        """Number of successful connections so far (messages carry the one they came on)."""
        return self._generation

    async def get(self) -> Message:
        """The next message (only when constructed without ``on_message``)."""
        return await self._queue.get()
