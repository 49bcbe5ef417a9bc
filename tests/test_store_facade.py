"""AsyncStore: the bridge's store on its own database thread, so the event loop never waits on
SQLite (a commit, or another worker's write lock up to ``busy_timeout``)."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ocpp_iot.bridge.store import (
    AsyncStore,
    Claim,
    EffectsFailed,
    Finish,
    SqliteStore,
    Store,
    StoreClosed,
    collect_effects,
    defer_sql,
)

R = TypeVar("R")


def run(main: Callable[[], Coroutine[Any, Any, R]], timeout: float = 60.0) -> R:
    async def bounded() -> R:
        return await asyncio.wait_for(main(), timeout)

    return asyncio.run(bounded())


def fin(station: str, mid: str, data: bytes, **kw: Any) -> Finish:
    return Finish(station, mid, data, "2.0.1", 100.0, **kw)


def push(item: Any) -> Callable[[Any], tuple[Any, int]]:
    """An update for update_station_state: append ``item``; result: the new length."""

    def fn(value: Any) -> tuple[Any, int]:
        value = [*(value or []), item]
        return value, len(value)

    return fn


#: one or more calls of every store method, in an order that exercises each branch
OPS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    (
        "claim_calls",
        ([("CP1", "1", None), ("CP1", "2", None), ("CP1", "2", None)], "w0", 100.0),
        {},
    ),
    ("claim_call", ("CP1", "3", "w0", 100.0), {"mark": False}),
    ("claim_call", ("CP1", "1", "w1", 100.5), {}),
    (
        "finish_calls",
        (
            [
                fin("CP1", "1", b"a", state={"n": 1}),
                fin("CP1", "2", b"b", effects=[("INSERT INTO nowhere VALUES (1)", ())]),
            ],
        ),
        {},
    ),
    ("finish_calls", ([fin("CP1", "1", b"again")],), {}),
    (
        "claim_calls",
        ([("CP1", "1", None), ("CP1", "2", None), ("CP2", "1", None)], "w1", 101.0),
        {"mark": False},
    ),
    ("release_owner", ("w0",), {}),
    ("station_version", ("CP1",), {}),
    ("station_version", ("CP9",), {}),
    ("station_state", ("CP1",), {}),
    ("set_status", ("CP1", "online", 102.0), {}),
    ("stations", (), {}),
    ("update_station_state", ("CP1", "q", push({"id": "a"}), 103.0), {}),
    ("update_station_state", ("CP1", "q", push({"id": "b"}), 103.5), {}),
    ("scan_station_state", ("q",), {}),
    ("prune", (150.0,), {}),
    ("close", (), {}),
]


def comparable(value: Any) -> Any:
    if isinstance(value, EffectsFailed):
        return ("EffectsFailed", str(value))
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def test_every_method_answers_as_the_store_does(tmp_path: Path) -> None:
    direct = SqliteStore(str(tmp_path / "direct.sqlite3"))
    expected = [comparable(getattr(direct, name)(*a, **kw)) for name, a, kw in OPS]

    async def main() -> list[Any]:
        facade = AsyncStore(SqliteStore(str(tmp_path / "facade.sqlite3")))
        return [comparable(await getattr(facade, name)(*a, **kw)) for name, a, kw in OPS]

    got = run(main)
    assert got == expected
    assert any(isinstance(r, tuple) and r[0] == "EffectsFailed" for r in expected[3])


def test_the_facade_has_every_store_method_with_the_same_arguments() -> None:
    def params(fn: Any) -> list[tuple[str, Any, Any]]:
        sig = inspect.signature(fn)
        return [(p.name, p.kind, p.default) for p in sig.parameters.values()]

    methods = {n for n, v in vars(Store).items() if inspect.isfunction(v) and n[0] != "_"}
    public = {n for n in dir(AsyncStore) if not n.startswith("_")}
    assert public - methods == {"call", "open"}
    assert methods == {name for name, _, _ in OPS}  # the test above covers each of them
    for name in methods:
        assert params(getattr(AsyncStore, name)) == params(getattr(Store, name)), name
        assert params(getattr(SqliteStore, name)) == params(getattr(Store, name)), name


def test_calls_run_in_the_order_they_were_made(tmp_path: Path) -> None:
    """Many tasks, each making calls and awaiting some of them late: the database thread runs
    them in the order the methods were called, and each gets its own result."""

    async def main() -> None:
        facade = AsyncStore(SqliteStore(str(tmp_path / "s.sqlite3")))
        made: list[list[int]] = []

        async def task(t: int) -> None:
            futures: list[tuple[int, Awaitable[int]]] = []
            for i in range(30):
                made.append([t, i])
                futures.append(
                    (len(made), facade.update_station_state("CP1", "log", push([t, i]), 1.0))
                )
                if i % 3 == 0:
                    await asyncio.sleep(0)
                if i % 7 == 0:
                    await futures[-1][1]
            for position, future in futures:
                assert await future == position  # the list had this many items after it ran

        await asyncio.gather(*(task(t) for t in range(20)))
        assert await facade.scan_station_state("log") == [("CP1", made)]
        # what the bridge relies on: an answer stored, then a repeat of the CALL looked up,
        # without waiting in between: the lookup sees the answer
        stored = facade.finish_calls([fin("CP1", "m", b"answer")])
        again = await facade.claim_call("CP1", "m", "w0", 101.0, mark=False)
        assert await stored == [None]
        assert (again.claim, again.response) == (Claim.DONE, b"answer")
        await facade.close()

    run(main)


HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
print(time.time(), flush=True)
db.execute("COMMIT")
"""


def test_the_loop_keeps_running_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.sqlite3")

    async def main() -> None:
        facade = await AsyncStore.open(lambda: SqliteStore(path))
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLD_LOCK, path, "1.0", stdout=asyncio.subprocess.PIPE
        )
        assert holder.stdout is not None
        assert await holder.stdout.readline() == b"locked\n"
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(ticker())
        start = time.monotonic()
        await facade.set_status("CP1", "online", 1.0)  # a write: waits for the lock
        done_at, waited = time.time(), time.monotonic() - start
        released_at = float(await holder.stdout.readline())
        ticking.cancel()
        assert await holder.wait() == 0
        assert done_at >= released_at and waited >= 0.9  # it did wait for the other process
        during = [t for t in ticks if t >= start]
        gaps = [b - a for a, b in zip(during, during[1:], strict=False)]
        assert len(during) >= 40, len(during)  # about 100 at 10 ms on an idle machine
        assert max(gaps) < 0.25, max(gaps)  # a blocked loop would show one gap of ~1 s
        assert [s["status"] for s in await facade.stations()] == ["online"]
        await facade.close()

    run(main)


def test_two_stores_on_one_file_update_one_value_without_losing_any(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")

    async def main() -> None:
        a, b = AsyncStore(SqliteStore(path)), AsyncStore(SqliteStore(path))

        def incr(value: Any) -> tuple[Any, None]:
            return (value or 0) + 1, None

        await asyncio.gather(
            *(s.update_station_state("CP1", "n", incr, 1.0) for _ in range(200) for s in (a, b))
        )
        assert await a.scan_station_state("n") == [("CP1", 400)]
        await asyncio.gather(a.close(), b.close())

    run(main)


def test_close_runs_what_was_queued_then_closes(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")

    async def main() -> None:
        store = SqliteStore(path)
        facade = AsyncStore(store)
        futures = [facade.update_station_state("CP1", "q", push(i), 1.0) for i in range(100)]
        closing = facade.close()
        assert facade.close() is closing
        await closing
        assert all(f.done() for f in futures)
        assert [f.result() for f in futures] == list(range(1, 101))
        with pytest.raises(StoreClosed):
            facade.station_version("CP1")
        with pytest.raises(sqlite3.ProgrammingError):  # closed, on its own thread
            store.station_version("CP1")
        facade._thread.join(5)
        assert not facade._thread.is_alive()
        async with AsyncStore(SqliteStore(path)) as again:
            assert await again.scan_station_state("q") == [("CP1", list(range(100)))]
        with pytest.raises(StoreClosed):
            again.stations()

    run(main)


# -- failures: raised to the caller, and the facade carries on -------------------------------


class FailingConnection:
    """A connection that raises on the ``nth`` statement matching ``prefix`` (then works)."""

    def __init__(self, db: sqlite3.Connection, prefix: str, nth: int) -> None:
        self.db, self.prefix, self.left = db, prefix, nth
        self.raised: sqlite3.Error | None = None

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        if sql.startswith(self.prefix):
            self.left -= 1
            if self.left == 0:
                self.raised = sqlite3.OperationalError("disk I/O error")
                raise self.raised
        return self.db.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_a_statement_failing_mid_transaction_reaches_the_caller(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    failing = FailingConnection(store._db, "INSERT INTO bridge_calls", 2)
    store._db = failing  # type: ignore[assignment]
    keys = [("CP1", "1", None), ("CP1", "2", None), ("CP1", "3", None)]

    async def main() -> None:
        facade = AsyncStore(store, in_loop=False)  # the database thread's connection fails
        with pytest.raises(sqlite3.OperationalError) as info:
            await facade.claim_calls(keys, "w0", 100.0)
        assert info.value is failing.raised
        # rolled back: no CALL is marked, so another worker takes all three
        assert [c.claim for c in await facade.claim_calls(keys, "w1", 100.0)] == [Claim.NEW] * 3
        assert not failing.db.in_transaction
        await facade.close()

    run(main)


def test_disk_full_reaches_the_caller_and_a_later_call_succeeds(tmp_path: Path) -> None:
    """SQLite rolls a transaction back by itself on SQLITE_FULL: the caller gets that error
    (not one from a second rollback), also when a handler's deferred write hits it (a full
    disk is the store failing, not the handler: no EffectsFailed answer)."""
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    store._db.execute("CREATE TABLE effects (v TEXT)")

    def limit(pages: int | None) -> int:
        """Cap the file at its current size (SQLite then fails with SQLITE_FULL), or lift it."""
        size = store._db.execute("PRAGMA page_count").fetchone()[0]
        return int(store._db.execute(f"PRAGMA max_page_count={pages or size}").fetchone()[0])

    big = fin("CP1", "1", b"x" * 100_000)
    big_write = fin("CP1", "2", b"ok", effects=[("INSERT INTO effects VALUES (?)", ("x" * 10**5,))])

    async def main() -> None:
        facade = AsyncStore(store, in_loop=False)  # max_page_count is the connection's
        await facade.call(limit, None)
        with pytest.raises(sqlite3.OperationalError, match="full"):
            await facade.finish_calls([big])
        with pytest.raises(sqlite3.OperationalError, match="full"):
            await facade.finish_calls([big_write])
        keys = [("CP1", "1", None), ("CP1", "2", None)]
        looked = await facade.claim_calls(keys, "w0", 101.0, mark=False)
        assert [c.claim for c in looked] == [Claim.NEW, Claim.NEW]
        await facade.call(limit, 1_000_000)
        assert await facade.finish_calls([big, big_write]) == [None, None]
        assert (await facade.claim_call("CP1", "1", "w0", 101.0, mark=False)).claim is Claim.DONE
        await facade.close()

    run(main)


def test_locked_past_busy_timeout_reaches_the_caller(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")
    store = SqliteStore(path, busy_timeout=0.1)
    other = sqlite3.connect(path, isolation_level=None)

    async def main() -> None:
        facade = AsyncStore(store)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await facade.set_status("CP1", "online", 1.0)
        assert await facade.station_version("CP1") is None  # reads still work in WAL mode
        other.execute("COMMIT")
        await facade.set_status("CP1", "online", 2.0)
        assert [s["status"] for s in await facade.stations()] == ["online"]
        await facade.close()

    run(main)


# -- in the loop, while the database thread is idle --------------------------------------------


def test_claims_and_answers_are_stored_in_the_loop_while_the_thread_is_idle(
    tmp_path: Path,
) -> None:
    """With nothing queued for the database thread, claims and answers are stored in the loop
    (the future is done at once: no thread hop); while the thread has calls queued, they wait
    their turn behind them (the order of the calls is kept)."""
    store = SqliteStore(str(tmp_path / "s.sqlite3"))

    async def main() -> None:
        facade = AsyncStore(store)
        claimed = facade.claim_calls([("CP1", "1", None), ("CP1", "1", None)], "w0", 100.0)
        assert claimed.done()
        assert [c.claim for c in claimed.result()] == [Claim.NEW, Claim.BUSY]
        stored = facade.finish_calls([fin("CP1", "1", b"a", state={"n": 1})])
        assert stored.done() and stored.result() == [None]
        gate = threading.Event()
        held = facade.call(gate.wait, 10)  # the database thread is busy from now on
        later = facade.finish_calls([fin("CP1", "2", b"b")])
        marked = facade.claim_calls([("CP1", "3", None)], "w0", 101.0)
        looked = facade.claim_calls([("CP1", "1", None)], "w0", 101.0, mark=False)
        assert not later.done() and not marked.done()
        assert looked.done()  # a lookup writes nothing: it reads in the loop even now
        assert looked.result()[0].response == b"a"
        # queued behind the finish: the thread's claim sees the answer stored before it
        behind = facade.claim_calls([("CP1", "2", None)], "w1", 101.0)
        gate.set()
        assert await held is True
        assert await later == [None]
        assert [c.claim for c in await marked] == [Claim.NEW]
        assert [(c.claim, c.response) for c in await behind] == [(Claim.DONE, b"b")]
        # the thread is idle again: back in the loop
        again = facade.finish_calls([fin("CP1", "3", b"c")])
        assert again.done() and again.result() == [None]
        assert await facade.station_state("CP1") == {"n": 1}
        await facade.close()

    run(main)


def test_a_write_lock_held_elsewhere_sends_the_call_to_the_thread(tmp_path: Path) -> None:
    """Another connection (another worker) holds the write lock: the loop's connection gives
    up at once and the call waits for the lock on the database thread; the loop keeps
    running meanwhile, and the answer is stored once the lock is released."""
    path = str(tmp_path / "s.sqlite3")
    store = SqliteStore(path)
    other = sqlite3.connect(path, isolation_level=None)

    async def main() -> None:
        facade = AsyncStore(store)
        other.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        stored = facade.finish_calls([fin("CP1", "1", b"a")])
        claimed = facade.claim_calls([("CP1", "2", None)], "w0", 100.0)
        assert time.monotonic() - t0 < 0.5  # the loop did not wait for the lock
        assert not stored.done() and not claimed.done()
        await asyncio.sleep(0.05)
        assert not stored.done()  # waiting for the lock on the thread
        other.execute("COMMIT")
        assert await stored == [None]
        assert [c.claim for c in await claimed] == [Claim.NEW]
        done = await facade.claim_calls([("CP1", "1", None)], "w1", 101.0)
        assert (done[0].claim, done[0].response) == (Claim.DONE, b"a")
        await facade.close()

    run(main)


def test_a_failure_in_the_loop_is_rolled_back_and_the_thread_does_it(tmp_path: Path) -> None:
    """A statement of the loop's connection fails mid-transaction: what it did is rolled
    back and the database thread does the whole call again (each CALL marked once)."""
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    assert store.look_up_calls([("CP0", "0", None)]) is not None  # opens the loop's connection
    assert store._now_db is not None
    failing = FailingConnection(store._now_db, "INSERT INTO bridge_calls", 2)
    store._now_db = failing  # type: ignore[assignment]
    keys = [("CP1", "1", None), ("CP1", "2", None), ("CP1", "3", None)]

    async def main() -> None:
        facade = AsyncStore(store)
        claimed = facade.claim_calls(keys, "w0", 100.0)
        assert failing.raised is not None and not failing.db.in_transaction
        assert [c.claim for c in await claimed] == [Claim.NEW] * 3
        # marked by w0 (once: the loop's marks were rolled back), so BUSY for another worker
        assert [c.claim for c in await facade.claim_calls(keys, "w1", 100.5)] == [Claim.BUSY] * 3
        await facade.close()

    run(main)


def test_the_loop_leaves_the_wal_checkpoints_to_the_database_thread(tmp_path: Path) -> None:
    """The loop's connection never checkpoints (the checkpoint syncs the disk): after enough
    writes in the loop the facade has the database thread checkpoint, and the WAL stays
    small (it starts over once all of it is copied)."""
    path = tmp_path / "s.sqlite3"
    store = SqliteStore(str(path))
    threads: list[int] = []
    checkpoint = store.checkpoint

    def recorded() -> None:
        threads.append(threading.get_ident())
        checkpoint()

    store.checkpoint = recorded  # type: ignore[method-assign]

    async def main() -> None:
        facade = AsyncStore(store)
        in_loop = 0
        for i in range(1000):
            stored = facade.finish_calls([fin(f"CP{i % 50}", str(i), b"x" * 200)])
            in_loop += stored.done()  # not while the checkpoint's second step runs
            assert await stored == [None]
            await asyncio.sleep(0)  # let a finished checkpoint report back
        assert in_loop > 900
        await facade.call(lambda: None)  # the last checkpoint queued has run
        assert len(threads) >= 3 and set(threads) == {facade._thread.ident}
        assert store._now_db is not None
        auto = store._now_db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert auto == 0
        # 1,000 writes of 3-4 pages: 12 MB without checkpoints; the WAL starts over after one
        assert Path(f"{path}-wal").stat().st_size < 8 * 1024 * 1024
        await facade.close()

    run(main)


def test_a_closed_database_reaches_the_caller_and_the_thread_carries_on(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.sqlite3"))

    async def main() -> None:
        facade = AsyncStore(store)
        await facade.call(store.close)  # the database goes away under the facade
        with pytest.raises(sqlite3.ProgrammingError):
            await facade.station_version("CP1")
        with pytest.raises(sqlite3.ProgrammingError):
            await facade.finish_calls([fin("CP1", "1", b"x")])
        assert await facade.call(lambda: 42) == 42
        await facade.close()  # closing a closed SQLite connection again is allowed

    run(main)


class Exploding(SqliteStore):
    boom = ValueError("the store's own error")

    def prune(self, older_than: float) -> int:
        raise self.boom


def test_errors_arrive_unchanged_and_updates_run_on_the_database_thread(tmp_path: Path) -> None:
    store = Exploding(str(tmp_path / "s.sqlite3"))

    async def main() -> None:
        facade = AsyncStore(store)
        with pytest.raises(ValueError) as info:
            await facade.prune(1.0)
        assert info.value is Exploding.boom
        threads: list[int] = []
        oops = KeyError("no")

        def failing(value: Any) -> tuple[Any, None]:
            threads.append(threading.get_ident())
            raise oops

        await facade.update_station_state("CP1", "k", lambda v: ("kept", None), 1.0)
        with pytest.raises(KeyError) as raised:
            await facade.update_station_state("CP1", "k", failing, 2.0)
        assert raised.value is oops
        assert threads == [facade._thread.ident] != [threading.get_ident()]
        assert await facade.scan_station_state("k") == [("CP1", "kept")]  # rolled back
        await facade.close()

    run(main)


def test_a_cancelled_caller_does_not_disturb_the_others(tmp_path: Path) -> None:
    async def main() -> None:
        facade = AsyncStore(SqliteStore(str(tmp_path / "s.sqlite3")))
        gate = threading.Event()
        held = facade.call(gate.wait, 10)  # the database thread waits until we open the gate
        waiter = asyncio.ensure_future(facade.station_version("CP1"))
        after = facade.set_status("CP1", "online", 1.0)
        await asyncio.sleep(0)
        waiter.cancel()
        gate.set()
        assert await held is True
        await after
        assert waiter.cancelled()
        assert [s["status"] for s in await facade.stations()] == ["online"]
        await facade.close()

    run(main)


def test_deferred_writes_are_collected_in_the_loop_and_committed_with_the_answer(
    tmp_path: Path,
) -> None:
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    store._db.execute("CREATE TABLE effects (v TEXT)")

    async def main() -> None:
        facade = AsyncStore(store)

        def handler(v: str) -> bool:
            return defer_sql(facade.path, [("INSERT INTO effects VALUES (?)", (v,))])

        with collect_effects(facade.path) as effects:
            assert handler("loop")
            # a handler thread given a copy of the loop's context adds to the same collection
            copy = contextvars.copy_context()
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, copy.run, handler, "thread")
            # the database thread has its own context: nothing is collected there
            assert await facade.call(handler, "db thread") is False
        assert await facade.finish_calls([fin("CP1", "1", b"ok", effects=effects)]) == [None]
        rows = await facade.call(lambda: store._db.execute("SELECT v FROM effects").fetchall())
        assert sorted(rows) == [("loop",), ("thread",)]
        await facade.close()

    run(main)


def test_open_builds_the_store_on_the_database_thread(tmp_path: Path) -> None:
    built_on: list[int] = []

    def factory() -> SqliteStore:
        built_on.append(threading.get_ident())
        return SqliteStore(str(tmp_path / "s.sqlite3"))

    async def main() -> None:
        facade = await AsyncStore.open(factory)
        assert built_on == [facade._thread.ident] != [threading.get_ident()]
        assert facade.path == str(tmp_path / "s.sqlite3")
        await facade.close()
        with pytest.raises(sqlite3.OperationalError):
            missing = str(tmp_path / "no" / "s.sqlite3")
            await AsyncStore.open(lambda: SqliteStore(missing), name="doomed-store")

    run(main)
    leftover = [t for t in threading.enumerate() if t.name == "doomed-store"]
    assert len(leftover) <= 1
    for t in leftover:
        t.join(5)
    assert not any(t.is_alive() for t in leftover)


def test_one_event_loop_per_facade(tmp_path: Path) -> None:
    facade = AsyncStore(SqliteStore(str(tmp_path / "s.sqlite3")))

    async def use() -> str | None:
        return await facade.station_version("CP1")

    assert run(use) is None
    with pytest.raises(RuntimeError, match="one event loop"):
        run(use)
    with pytest.raises(RuntimeError):  # outside a loop
        facade.station_version("CP1")


def test_station_versions_are_remembered_until_this_facade_changes_them(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")
    other = SqliteStore(path)  # another worker on the same database

    async def main() -> None:
        facade = AsyncStore(SqliteStore(path), version_ttl=0.2)
        await facade.finish_calls([fin("CP1", "1", b"x")])
        assert await facade.station_version("CP1") == "2.0.1"
        gate = threading.Event()
        held = facade.call(gate.wait, 10)  # the database thread is busy from now on
        assert await facade.station_version("CP1") == "2.0.1"  # answered from memory
        # a read queued before a finish_calls that changes the version: its answer is the old
        # version (calls run in order), and it is not remembered
        before = facade.station_version("CP1")
        facade.finish_calls([Finish("CP1", "2", b"y", "2.1", 101.0)])
        after = facade.station_version("CP1")
        gate.set()
        assert await held is True
        assert (await before, await after) == ("2.0.1", "2.1")
        assert await facade.station_version("CP1") == "2.1"
        # another worker's change shows once what was read has aged past version_ttl
        other.finish_calls([Finish("CP1", "3", b"z", "1.6", 102.0)])
        assert await facade.station_version("CP1") == "2.1"
        await asyncio.sleep(0.2)
        assert await facade.station_version("CP1") == "1.6"
        assert await facade.station_version("CP9") is None
        await facade.close()
        fresh = AsyncStore(SqliteStore(path), version_ttl=0)  # no memory at all
        assert await fresh.station_version("CP1") == "1.6"
        other.finish_calls([Finish("CP1", "4", b"z", "2.1", 103.0)])
        assert await fresh.station_version("CP1") == "2.1"
        await fresh.close()

    run(main)


def test_calls_completed_while_the_loop_was_busy_cost_one_wakeup(tmp_path: Path) -> None:
    async def main() -> None:
        facade = AsyncStore(SqliteStore(str(tmp_path / "s.sqlite3")))
        wakeups = 0
        flush = facade._flush

        def counted() -> None:
            nonlocal wakeups
            wakeups += 1
            flush()

        facade._flush = counted  # type: ignore[method-assign]
        last = threading.Event()
        futures: list[asyncio.Future[Any]] = [facade.station_version(f"CP{i}") for i in range(10)]
        futures.append(facade.call(last.set))
        assert last.wait(10)  # the loop is busy (blocked here) until the thread ran them all
        assert await asyncio.gather(*futures) == [None] * 11
        assert wakeups == 1
        await facade.close()

    run(main)


def test_an_in_memory_database_for_tests_without_files() -> None:
    async def main() -> None:
        async with await AsyncStore.open(lambda: SqliteStore(":memory:")) as facade:
            assert (await facade.claim_call("CP1", "1", "w0", 1.0)).claim is Claim.NEW
            assert await facade.finish_calls([fin("CP1", "1", b"a", state={"n": 1})]) == [None]
            assert await facade.station_state("CP1") == {"n": 1}
            with collect_effects(facade.path) as effects:
                assert defer_sql(":memory:", [("SELECT 1", ())])
            assert effects == [("SELECT 1", ())]

    run(main)
