""":class:`AsyncStore`: a :class:`Store` for the event loop, run on one database thread.

Every store method may wait: on the disk (a commit's ``fsync``), on another worker's write lock
(SQLite waits up to its ``busy_timeout``), or on a network (a PostgreSQL store). The bridge's
event loop must not: it calls the facade instead, which queues the call for a single dedicated
thread and hands back an :class:`asyncio.Future`.

- One thread, one queue: calls run one at a time, in the order the methods were *called* (not
  the order they are awaited), so answers are stored and looked up in the order frames came.
- Each method queues its call when it is called and returns a future; ``await`` it for the
  result. A call once queued runs even if its awaiting task is cancelled.
- Whatever the store raises is raised, the same exception object, to whoever awaits the call;
  the thread carries on with the next call.
- The thread wakes the loop once for all the calls that completed since the loop last looked
  (:meth:`asyncio.loop.call_soon_threadsafe` costs a write to the loop's self-pipe).
- Arguments travel to the thread as they are: do not change a list after passing it.
- :meth:`AsyncStore.station_version` answers from memory what it read less than
  ``version_ttl`` seconds ago, unless a :meth:`~AsyncStore.finish_calls` of this facade has
  touched the station since (another worker's change shows after at most ``version_ttl``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from ._types import ClaimResult, EffectsFailed, Finish, StateUpdate, Store

P = ParamSpec("P")
R = TypeVar("R")
_Job = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]
_Done = tuple["asyncio.Future[Any]", bool, Any]


class StoreClosed(RuntimeError):
    """The facade was closed: it takes no more calls."""


class AsyncStore:
    """Awaitable versions of the :class:`Store` methods, same names, same arguments.

    Use it from one event loop (the first that calls it); :meth:`close` it when done (or use
    ``async with``). :meth:`open` also builds the store on the database thread, so that opening
    the database does not wait in the loop either.
    """

    store: Store  #: the synchronous store (call it only through this facade while open)
    path: str  #: the database path, for :func:`~ocpp_iot.bridge.store.collect_effects`

    def __init__(
        self, store: Store, *, name: str = "ocpp-iot-store", version_ttl: float = 5.0
    ) -> None:
        self._start(name, version_ttl)
        self.store = store
        self.path = getattr(store, "path", "")

    @classmethod
    async def open(
        cls,
        factory: Callable[[], Store],
        *,
        name: str = "ocpp-iot-store",
        version_ttl: float = 5.0,
    ) -> AsyncStore:
        """Build the store by calling ``factory()`` on the database thread, and wrap it."""
        self = cls.__new__(cls)
        self._start(name, version_ttl)
        try:
            self.store = await self.call(factory)
        except BaseException:
            self._closed = True
            self._jobs.put(None)
            raise
        self.path = getattr(self.store, "path", "")
        return self

    def _start(self, name: str, version_ttl: float) -> None:
        self._version_ttl = version_ttl
        self._versions: dict[str, tuple[float, str | None]] = {}  # station: (read at, version)
        self._touches: dict[str, int] = {}  # station: finish_calls that changed it, so far
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._done: list[_Done] = []
        self._done_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._close_fut: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- the machinery -------------------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[R]:
        """Run ``fn(*args, **kwargs)`` on the database thread, in order with the store calls."""
        if self._closed:
            raise StoreClosed("the store facade is closed")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None:
                raise RuntimeError("an AsyncStore serves one event loop")
            self._loop = loop
        fut: asyncio.Future[R] = loop.create_future()
        self._jobs.put((fut, fn, args, kwargs))
        return fut

    def _run(self) -> None:  # the database thread
        get = self._jobs.get
        run_one = self._run_one
        while (job := get()) is not None:
            run_one(job)
            del job  # keep no reference to the last call's arguments

    def _run_one(self, job: _Job) -> None:  # the database thread
        fut, fn, args, kwargs = job
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, whatever it is
            self._deliver((fut, False, exc))
        else:
            self._deliver((fut, True, value))

    def _deliver(self, done: _Done) -> None:  # the database thread
        with self._done_lock:
            self._done.append(done)
            if len(self._done) > 1:
                return  # the loop has been woken already and has not looked yet
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._flush)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            with self._done_lock:
                self._done.clear()

    def _flush(self) -> None:  # the event loop
        with self._done_lock:
            done, self._done = self._done, []
        for fut, ok, value in done:
            if fut.cancelled():
                continue
            if ok:
                fut.set_result(value)
                continue
            try:
                fut.set_exception(value)
            except TypeError:  # StopIteration cannot travel in a future
                fut.set_exception(RuntimeError(repr(value)))

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- the store's methods -------------------------------------------------------------------

    def claim_call(
        self, station: str, message_id: str, owner: str, now: float, *, mark: bool = True
    ) -> asyncio.Future[ClaimResult]:
        return self.call(self.store.claim_call, station, message_id, owner, now, mark=mark)

    def claim_calls(
        self, keys: Sequence[tuple[str, str]], owner: str, now: float, *, mark: bool = True
    ) -> asyncio.Future[list[ClaimResult]]:
        if not mark:
            # One worker's lookup writes nothing: a store that can read without waiting
            # (SqliteStore.look_up_calls: WAL, its own connection) answers in the loop, which
            # saves the thread hop on the bridge's hot path (measured: the claim's round trip
            # to this thread cost 10-15 % of the bridge's throughput at 1,000 stations).
            look_up = getattr(self.store, "look_up_calls", None)
            results = look_up(keys) if look_up is not None and not self._closed else None
            if results is not None:
                fut: asyncio.Future[list[ClaimResult]] = asyncio.get_running_loop().create_future()
                fut.set_result(results)
                return fut
        return self.call(self.store.claim_calls, keys, owner, now, mark=mark)

    def finish_calls(
        self, items: Sequence[Finish]
    ) -> asyncio.Future[list[bytes | EffectsFailed | None]]:
        future = self.call(self.store.finish_calls, items)
        if self._version_ttl > 0:
            for it in items:
                if it.touch_station or it.state is not None:  # it may record a new version
                    self._versions.pop(it.station, None)
                    self._touches[it.station] = self._touches.get(it.station, 0) + 1
        return future

    def release_owner(self, owner: str) -> asyncio.Future[int]:
        return self.call(self.store.release_owner, owner)

    def station_version(self, station: str) -> asyncio.Future[str | None]:
        if self._version_ttl <= 0:
            return self.call(self.store.station_version, station)
        loop = asyncio.get_running_loop()
        now = loop.time()
        known = self._versions.get(station)
        if (
            known is not None
            and now - known[0] < self._version_ttl
            and loop is self._loop
            and not self._closed
        ):
            done: asyncio.Future[str | None] = loop.create_future()
            done.set_result(known[1])
            return done
        future = self.call(self.store.station_version, station)
        touches = self._touches.get(station, 0)

        def remember(f: asyncio.Future[str | None]) -> None:
            # only if no finish_calls for the station was made after this read was queued
            if not f.cancelled() and f.exception() is None:
                if self._touches.get(station, 0) == touches:
                    self._versions[station] = (now, f.result())

        future.add_done_callback(remember)
        return future

    def station_state(self, station: str) -> asyncio.Future[dict[str, Any]]:
        return self.call(self.store.station_state, station)

    def set_status(self, station: str, status: str, now: float) -> asyncio.Future[None]:
        return self.call(self.store.set_status, station, status, now)

    def stations(self) -> asyncio.Future[list[dict[str, Any]]]:
        return self.call(self.store.stations)

    def update_station_state(
        self, station: str, key: str, fn: StateUpdate[R], now: float
    ) -> asyncio.Future[R]:
        """See :meth:`Store.update_station_state`; ``fn`` runs on the database thread."""
        return self.call(self.store.update_station_state, station, key, fn, now)

    def scan_station_state(self, key: str) -> asyncio.Future[list[tuple[str, Any]]]:
        return self.call(self.store.scan_station_state, key)

    def prune(self, older_than: float) -> asyncio.Future[int]:
        return self.call(self.store.prune, older_than)

    def close(self) -> asyncio.Future[None]:
        """Run the calls queued so far, then close the store on its thread; the thread ends.

        Later calls raise :class:`StoreClosed`; closing again returns the same future.
        """
        if self._close_fut is None:
            self._close_fut = self.call(self.store.close)
            self._closed = True
            self._jobs.put(None)
        return self._close_fut
