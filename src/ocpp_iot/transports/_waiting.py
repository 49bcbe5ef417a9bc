"""Two asyncio waiting primitives for objects a process holds by the thousand (a simulated
station's link and client): :class:`Flag`, asyncio.Event's behaviour, and :class:`Inbox`, an
unbounded asyncio.Queue's ``put_nowait`` / ``get``.

Why not asyncio's own: an ``asyncio.Event`` allocates a deque for its waiters when it is made
(760 B on CPython 3.11: a deque's first block) and an ``asyncio.Queue`` four of them (its items,
getters, putters and the Event of ``join``), about 3 KiB, whether anyone ever waits or not.
These allocate nothing until something waits or arrives, and give it back when it is over:
ten of asyncio's per station cost 7.5 KiB of the ~50 KiB a simulated station took
(``bench/node_footprint.py``, 1,000 stations in one process).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Flag", "Inbox"]

T = TypeVar("T")


def _wake_first(waiters: list[asyncio.Future[None]]) -> None:
    """Resolve the oldest waiter still waiting (FIFO, as asyncio.Queue hands items out)."""
    while waiters:
        waiter = waiters.pop(0)
        if not waiter.done():
            waiter.set_result(None)
            return


class Flag:
    """Set or not; :meth:`wait` returns once it is set (at once if it is)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._set = value
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        """Set it and wake every waiter (a waiter woken returns True even if it is cleared
        again before it runs, as with asyncio.Event)."""
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class Inbox(Generic[T]):
    """Unbounded first-in first-out items for one or more consumers."""

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: deque[T] | None = None
        self._getters: list[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        if self._getters:
            _wake_first(self._getters)

    def get_nowait(self) -> T:
        """The oldest item; ``asyncio.QueueEmpty`` if there is none."""
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None  # an idle inbox holds no deque
        return item

    async def get(self) -> T:
        """The oldest item, waiting for one if need be."""
        while not self._items:
            getter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                # another getter's ``finally`` may have dropped the list already
                getters = self._getters
                if getters is not None and getter in getters:
                    getters.remove(getter)
                if getter.done() and not getter.cancelled() and self._items and getters:
                    _wake_first(getters)  # woken but cancelled: pass the item on
                raise
            finally:
                if not self._getters:
                    self._getters = None
        return self.get_nowait()
