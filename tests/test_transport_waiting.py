"""transports._waiting: Flag and Inbox behave as asyncio.Event and an unbounded asyncio.Queue
do where the clients and links use them, and hold nothing while idle."""

from __future__ import annotations

import asyncio

import pytest

from ocpp_iot.transports._waiting import Flag, Inbox


def test_a_flag_wakes_every_waiter_and_stays_set_until_cleared() -> None:
    async def scenario() -> None:
        flag = Flag()
        waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiters) and not flag.is_set()
        flag.set()
        flag.clear()  # cleared before they run: they were woken, they return True
        assert await asyncio.gather(*waiters) == [True, True, True]
        assert flag._waiters is None
        flag.set()
        assert await asyncio.wait_for(flag.wait(), 0.1) is True
        flag.clear()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(flag.wait(), 0.01)
        assert flag._waiters == []  # the timed-out waiter is gone
        assert Flag(True).is_set()

    asyncio.run(scenario())


def test_an_inbox_hands_items_out_in_order_to_waiting_getters_in_order() -> None:
    async def scenario() -> None:
        box: Inbox[int] = Inbox()
        with pytest.raises(asyncio.QueueEmpty):
            box.get_nowait()
        getters = [asyncio.ensure_future(box.get()) for _ in range(2)]
        await asyncio.sleep(0)
        for n in range(4):
            box.put_nowait(n)
        assert box.qsize() == 4
        assert await asyncio.gather(*getters) == [0, 1]
        assert [await box.get(), box.get_nowait()] == [2, 3]
        assert box.empty() and box._items is None and box._getters is None

    asyncio.run(scenario())


def test_a_getter_cancelled_after_its_wake_up_passes_the_item_on() -> None:
    async def scenario() -> None:
        box: Inbox[str] = Inbox()
        first = asyncio.ensure_future(box.get())
        second = asyncio.ensure_future(box.get())
        await asyncio.sleep(0)
        box.put_nowait("x")  # wakes the first ...
        first.cancel()  # ... which is cancelled before it runs
        assert await asyncio.wait_for(second, 1) == "x"
        assert first.cancelled()

    asyncio.run(scenario())


def test_getters_cancelled_in_turn_after_a_wake_up_end_cancelled_and_lose_nothing() -> None:
    """Two getters wait; an item wakes the first; the second, then the first are cancelled:
    both end as cancelled (the list of getters may be gone by the second's turn) and the item
    stays for the next get."""

    async def scenario() -> None:
        box: Inbox[int] = Inbox()
        first = asyncio.ensure_future(box.get())
        second = asyncio.ensure_future(box.get())
        await asyncio.sleep(0)
        box.put_nowait(1)
        second.cancel()
        first.cancel()
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results), results
        assert await asyncio.wait_for(box.get(), 1) == 1
        assert box._getters is None and box._items is None

    asyncio.run(scenario())


@pytest.mark.parametrize("seed", range(200))
def test_random_puts_gets_and_cancels_lose_no_item_and_strand_no_getter(seed: int) -> None:
    """Against asyncio.Queue's contract: every item put is got exactly once, by a getter that
    was not cancelled, and no getter waits while items are left."""
    import random

    async def scenario() -> None:
        rnd = random.Random(seed)
        box: Inbox[int] = Inbox()
        getters: list[asyncio.Future[int]] = []
        put = 0
        for _ in range(30):
            op = rnd.random()
            if op < 0.35:
                getters.append(asyncio.ensure_future(box.get()))
            elif op < 0.7:
                box.put_nowait(put)
                put += 1
            else:
                live = [g for g in getters if not g.done()]
                if live:
                    rnd.choice(live).cancel()
            if rnd.random() < 0.5:
                await asyncio.sleep(0)
        for _ in range(3):
            await asyncio.sleep(0)
        got = [g.result() for g in getters if g.done() and not g.cancelled()]
        waiting = [g for g in getters if not g.done()]
        assert not (waiting and box.qsize()), "a getter waits while items are left"
        for g in waiting:
            g.cancel()
        await asyncio.gather(*getters, return_exceptions=True)
        for g in getters:  # nothing ended in an error other than its cancel
            assert g.cancelled() or g.exception() is None
        got += [box.get_nowait() for _ in range(box.qsize())]
        assert sorted(got) == list(range(put))

    asyncio.run(scenario())
