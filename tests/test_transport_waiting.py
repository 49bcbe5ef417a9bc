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
