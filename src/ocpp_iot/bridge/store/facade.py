""":class:`AsyncStore`: a :class:`Store` for the event loop, run on one database thread.

Every store method may wait: on the disk (a commit's or a checkpoint's ``fsync``), on another
worker's write lock (SQLite waits up to its ``busy_timeout``), or on a network (a PostgreSQL
store). The bridge's event loop must not: it calls the facade instead, which queues the call for
a single dedicated thread and hands back an :class:`asyncio.Future` (or, for the hot path's
calls, has the store answer in the loop when it can without waiting: see below).

- One thread, one queue: calls run one at a time, in the order the methods were *called* (not
  the order they are awaited), so answers are stored and looked up in the order frames came.
- Each method queues its call when it is called and returns a future; ``await`` it for the
  result. A call once queued runs even if its awaiting task is cancelled.
- Whatever the store raises is raised, the same exception object, to whoever awaits the call;
  the thread carries on with the next call.
- The thread wakes the loop once for all the calls that completed since the loop last looked
  (:meth:`asyncio.loop.call_soon_threadsafe` costs a write to the loop's self-pipe).
- Arguments travel to the thread as they are: do not change a list after passing it.
- In the loop when the thread is idle: a store that offers ``claim_calls_now``,
  ``finish_calls_now`` or ``look_up_calls`` (:class:`~.sqlite.SqliteStore`: a connection that
  never waits, see there) is asked there first, in the loop, while nothing is queued for the
  database thread (so the order of the calls is kept; lookups, which write nothing, also
  while something is). Its answer comes back in a future that is already done; when it
  cannot answer at once (another connection holds the write lock), the call goes to the
  thread as any other. That saves the thread hop on the bridge's hot path: under a busy loop
  the database thread waits for the interpreter lock after every SQLite statement it runs
  (measured at 1,000 stations: the claim's round trip cost 10-15 % of the throughput, the
  commit's made the open-loop p99 36-116 ms where the old bridge, committing in its loop, had
  14-23 ms). The WAL checkpoints (their fsync, 10-25 ms here) stay on the thread: the store's
  ``checkpoint()``, every ``_CHECKPOINT_EVERY`` writes in the loop (see :meth:`_checkpoint`).
- :meth:`AsyncStore.station_version` answers from memory what it read less than
  ``version_ttl`` seconds ago, unless a :meth:`~AsyncStore.finish_calls` of this facade has
  touched the station since (another worker's change shows after at most ``version_ttl``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from ._types import CallKey, ClaimResult, EffectsFailed, Finish, StateUpdate, Store

log = logging.getLogger("ocpp_iot.bridge")

#: writes in the loop between two WAL checkpoints on the database thread (a write is a few
#: pages: SQLite's own default is a checkpoint at 1,000 pages)
_CHECKPOINT_EVERY = 200

P = ParamSpec("P")
R = TypeVar("R")
#: (future, function, args, kwargs, ordered: whether calls in the loop wait for it)
_Job = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any], bool]
_Done = tuple["asyncio.Future[Any]", bool, Any]


class StoreClosed(RuntimeError):
    """The facade was closed: it takes no more calls."""


def store_future(call: Callable[[], asyncio.Future[R]]) -> asyncio.Future[R]:
    """``call()`` (a facade method), with a failure it raises at once (the facade is closed) as
    a failed future, so that the caller retries it as it retries a failure on the thread."""
    try:
        return call()
    except Exception as exc:
        failed: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        failed.set_exception(exc)
        return failed


def answered_now(future: asyncio.Future[Any]) -> bool:
    """Whether the store answered ``future`` in the loop already, without a failure: the
    caller may go on in the same callback instead of a task awaiting it."""
    return future.done() and future.exception() is None


class AsyncStore:
    """Awaitable versions of the :class:`Store` methods, same names, same arguments.

    Use it from one event loop (the first that calls it); :meth:`close` it when done (or use
    ``async with``). :meth:`open` also builds the store on the database thread, so that opening
    the database does not wait in the loop either. ``in_loop=False`` sends every call to the
    thread (the store's ``*_now`` methods unused).
    """

    store: Store  #: the synchronous store (call it only through this facade while open)
    path: str  #: the database path, for :func:`~ocpp_iot.bridge.store.collect_effects`

    def __init__(
        self,
        store: Store,
        *,
        name: str = "ocpp-iot-store",
        version_ttl: float = 5.0,
        in_loop: bool = True,
    ) -> None:
        self._start(name, version_ttl, in_loop)
        self.store = store
        self.path = getattr(store, "path", "")

    @classmethod
    async def open(
        cls,
        factory: Callable[[], Store],
        *,
        name: str = "ocpp-iot-store",
        version_ttl: float = 5.0,
        in_loop: bool = True,
    ) -> AsyncStore:
        """Build the store by calling ``factory()`` on the database thread, and wrap it."""
        self = cls.__new__(cls)
        self._start(name, version_ttl, in_loop)
        try:
            self.store = await self.call(factory)
        except BaseException:
            self._closed = True
            self._jobs.put(None)
            raise
        self.path = getattr(self.store, "path", "")
        return self

    def _start(self, name: str, version_ttl: float, in_loop: bool) -> None:
        self._in_loop = in_loop
        self._made = 0  # ordered calls queued for the thread (the loop counts)
        self._ran = 0  # ordered calls the thread has run (the thread counts)
        self._loop_writes = 0  # writes in the loop since the last checkpoint was queued
        self._checkpointing = False
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
        return self._queue(fn, args, kwargs, True)

    def _queue(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any], ordered: bool
    ) -> asyncio.Future[R]:
        if self._closed:
            raise StoreClosed("the store facade is closed")
        fut: asyncio.Future[R] = self._bind_loop().create_future()
        if ordered:
            self._made += 1
        self._jobs.put((fut, fn, args, kwargs, ordered))
        return fut

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None:
                raise RuntimeError("an AsyncStore serves one event loop")
            self._loop = loop
        return loop

    def _now(self, name: str, *args: Any) -> asyncio.Future[Any] | None:
        """``store.<name>(*args)`` run in the loop, if the thread has nothing queued and the
        store can answer at once: a future that is done; else None (ask the thread)."""
        if not self._in_loop or self._closed or self._made != self._ran:
            return None
        fn = getattr(self.store, name, None)
        if fn is None:
            return None
        loop = self._bind_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        try:
            value = fn(*args)
        except Exception as exc:  # noqa: BLE001 - handed to the caller, as from the thread
            fut.set_exception(exc)
            return fut
        if value is None:
            return None
        fut.set_result(value)
        self._loop_writes += 1
        if self._loop_writes >= _CHECKPOINT_EVERY and not self._checkpointing:
            self._checkpoint()
        return fut

    def _checkpoint(self) -> None:
        """Checkpoint the WAL on the thread, in two steps. First while the loop goes on
        writing (not ordered): that copies most of the WAL and syncs, the long part (10-25 ms
        for 800 pages on a virtual disk). Then again, ordered: the loop's writes wait for it
        on the thread (a couple of milliseconds: only what was written meanwhile is left to
        copy), so that once it is done the WAL is all copied and the next write starts it
        from the beginning again (SQLite's rule); otherwise it would only ever grow."""
        checkpoint = getattr(self.store, "checkpoint", None)
        if checkpoint is None or self._closed:
            return
        self._loop_writes = 0
        self._checkpointing = True

        def first_done(fut: asyncio.Future[None]) -> None:
            if self._checkpoint_failed(fut) or self._closed:
                self._checkpointing = False
                return
            self._queue(checkpoint, (), {}, True).add_done_callback(second_done)

        def second_done(fut: asyncio.Future[None]) -> None:
            self._checkpoint_failed(fut)
            self._checkpointing = False

        self._queue(checkpoint, (), {}, False).add_done_callback(first_done)

    @staticmethod
    def _checkpoint_failed(fut: asyncio.Future[None]) -> bool:
        if fut.cancelled():
            return True
        if fut.exception() is not None:
            log.warning("WAL checkpoint failed: %s", fut.exception())
            return True
        return False

    def _run(self) -> None:  # the database thread
        get = self._jobs.get
        run_one = self._run_one
        while (job := get()) is not None:
            run_one(job)
            del job  # keep no reference to the last call's arguments

    def _run_one(self, job: _Job) -> None:  # the database thread
        fut, fn, args, kwargs, ordered = job
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, whatever it is
            done: _Done = (fut, False, exc)
        else:
            done = (fut, True, value)
        if ordered:
            self._ran += 1  # only this thread writes it; the loop compares it with _made
        self._deliver(done)

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
        self, station: str, message_id: str, owner: str, now: float, *, mark: bool = True,
        fingerprint: int | None = None,
    ) -> asyncio.Future[ClaimResult]:  # fmt: skip
        return self.call(
            self.store.claim_call, station, message_id, owner, now, mark=mark,
            fingerprint=fingerprint,
        )  # fmt: skip

    def claim_calls(
        self, keys: Sequence[CallKey], owner: str, now: float, *, mark: bool = True
    ) -> asyncio.Future[list[ClaimResult]]:
        if mark:
            now_fut = self._now("claim_calls_now", keys, owner, now)
        elif self._in_loop and not self._closed:
            # One worker's lookup writes nothing: it may run in the loop even while the
            # thread has calls queued (answers not yet committed: the bridge's session knows
            # those)
            now_fut = self._look_up(keys)
        else:
            now_fut = None
        if now_fut is not None:
            return now_fut
        return self.call(self.store.claim_calls, keys, owner, now, mark=mark)

    def _look_up(self, keys: Sequence[CallKey]) -> asyncio.Future[Any] | None:
        look_up = getattr(self.store, "look_up_calls", None)
        results = look_up(keys) if look_up is not None else None
        if results is None:
            return None
        fut: asyncio.Future[list[ClaimResult]] = self._bind_loop().create_future()
        fut.set_result(results)
        return fut

    def finish_calls(
        self, items: Sequence[Finish]
    ) -> asyncio.Future[list[bytes | EffectsFailed | None]]:
        future = self._now("finish_calls_now", items) or self.call(self.store.finish_calls, items)
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
