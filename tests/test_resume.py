"""Coroutines run by hand: ``start()`` until they first wait, ``Follower`` all the way
from the callbacks of what they wait on, without a task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from django_sse._resume import Follower, start


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the event loop's exception handler (a callback that raised)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    yield errors
    loop.set_exception_handler(None)


async def test_start_runs_a_coroutine_that_does_not_wait_here() -> None:
    ran: list[str] = []

    async def quick() -> None:
        ran.append("ran")

    assert start(quick()) is None
    assert ran == ["ran"]


async def test_start_hands_a_coroutine_that_waits_to_a_task_with_its_result() -> None:
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "done"

    task = start(slow())
    assert task is not None
    assert not task.done()
    gate.set()
    assert await task == "done"


async def test_start_raises_what_the_coroutine_raises_before_it_waits() -> None:
    async def broken() -> None:
        raise ValueError("at once")

    with pytest.raises(ValueError, match="at once"):
        start(broken())


class Results(list[Any]):
    """What a follower called back with, and an event for its first call."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    def __call__(self, value: Any) -> None:
        self.append(value)
        self.arrived.set()

    async def first(self) -> Any:
        await asyncio.wait_for(self.arrived.wait(), 10)
        return self[0]


def follow(awaitable: Any) -> tuple[Follower, Results]:
    results = Results()
    follower = Follower(awaitable, results)
    follower.start()
    return follower, results


class Receiver:
    """A server's ``receive()``: waits for its gate, then returns the disconnect; it
    notes when it starts waiting and each time its cleanup runs. With ``bare_yield`` it
    first yields to the loop as ``asyncio.sleep(0)`` does, which no future stands for."""

    def __init__(self, *, bare_yield: bool = False) -> None:
        self.bare_yield = bare_yield
        self.gate, self.waiting = asyncio.Event(), asyncio.Event()
        self.cleanups = 0

    async def __call__(self) -> dict[str, str]:
        if self.bare_yield:
            await asyncio.sleep(0)
        try:
            self.waiting.set()
            await self.gate.wait()
            return DISCONNECT
        finally:
            self.cleanups += 1


DISCONNECT = {"type": "http.disconnect"}


def ended(follower: Follower) -> bool:
    """Whether the follower has nothing left to run or wait on."""
    return follower._coroutine is None and follower._waiting_on is None


async def test_a_follower_hands_over_the_result_without_a_task(
    loop_errors: list[dict[str, Any]],
) -> None:
    receive = Receiver()
    tasks = len(asyncio.all_tasks())
    _, results = follow(receive())
    assert receive.waiting.is_set()
    assert len(asyncio.all_tasks()) == tasks
    receive.gate.set()
    assert await results.first() == DISCONNECT
    assert results == [DISCONNECT]
    assert loop_errors == []


async def test_a_follower_of_a_coroutine_that_does_not_wait_calls_back_in_start() -> None:
    async def ready() -> str:
        return "message"

    _, results = follow(ready())
    assert results == ["message"]


async def test_cancel_closes_the_coroutine_and_never_calls_back() -> None:
    receive = Receiver()
    follower, results = follow(receive())
    follower.cancel()
    assert receive.cleanups == 1
    assert ended(follower)
    receive.gate.set()
    assert results == []


async def test_cancel_after_the_future_is_done_but_before_its_callback_runs(
    loop_errors: list[dict[str, Any]],
) -> None:
    """The race of a stream ending just as the client's disconnect arrives."""
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def receive() -> str:
        return await future

    follower, results = follow(receive())
    future.set_result("disconnect")
    follower.cancel()
    # The future's callbacks were scheduled as it was done; this one runs after them.
    after = asyncio.get_running_loop().create_future()
    future.add_done_callback(lambda _: after.set_result(None))
    await asyncio.wait_for(after, 10)
    assert results == []
    assert loop_errors == []


async def test_cancelling_a_queue_get_leaves_the_next_item_to_others() -> None:
    """daphne's receive() is an asyncio.Queue's get(): a follower cancelled while it
    waits must not swallow the message that comes next."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    follower, results = follow(queue.get())
    follower.cancel()
    queue.put_nowait("http.disconnect")
    assert queue.get_nowait() == "http.disconnect"
    assert results == []


async def test_a_coroutine_that_raises_ends_quietly(loop_errors: list[dict[str, Any]]) -> None:
    gate, raised = asyncio.Event(), asyncio.Event()

    async def receive() -> str:
        await gate.wait()
        raised.set()
        raise OSError("connection lost")

    follower, results = follow(receive())
    gate.set()
    await asyncio.wait_for(raised.wait(), 10)
    assert ended(follower)
    assert results == []
    assert loop_errors == []


async def test_a_bare_yield_goes_on_in_a_task(loop_errors: list[dict[str, Any]]) -> None:
    receive = Receiver(bare_yield=True)
    _, results = follow(receive())
    receive.gate.set()
    assert await results.first() == DISCONNECT
    assert receive.cleanups == 1

    receive = Receiver(bare_yield=True)
    follower, results = follow(receive())
    task = follower._waiting_on
    assert isinstance(task, asyncio.Task)
    await asyncio.wait_for(receive.waiting.wait(), 10)
    follower.cancel()
    await asyncio.wait([task])
    assert task.cancelled()
    assert receive.cleanups == 1
    assert results == []
    assert loop_errors == []


async def test_an_awaitable_that_is_not_a_coroutine_is_followed_too() -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    _, results = follow(future)
    future.set_result("message")
    assert await results.first() == "message"
