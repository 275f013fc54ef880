"""HeadStart: a source's first item fetched ahead, and never left running unread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from django_sse import _claim
from django_sse.llm._head_start import HeadStart

WAIT = 5.0


class Source:
    """An async generator that says when it started and when its cleanup ran."""

    def __init__(self, items: list[int], *, then_wait: bool = False) -> None:
        self.items = items
        self.then_wait = then_wait
        self.started = asyncio.Event()
        self.closed = asyncio.Event()
        self.cancelled = False

    async def run(self) -> AsyncGenerator[int, None]:
        self.started.set()
        try:
            for item in self.items:
                yield item
            if self.then_wait:
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.closed.set()


async def test_the_first_item_is_fetched_before_it_is_asked_for() -> None:
    source = Source([1, 2, 3])
    head = HeadStart(source.run())
    await asyncio.wait_for(source.started.wait(), WAIT)
    taken = head.take()
    assert taken is not None
    assert [item async for item in taken] == [1, 2, 3]
    assert head.take() is None  # it has one consumer


async def test_a_failure_before_the_first_item_reaches_the_consumer() -> None:
    async def failing() -> AsyncGenerator[int, None]:
        raise LookupError("no answer")
        yield 0  # pragma: no cover  (makes this an async generator)

    taken = HeadStart(failing()).take()
    assert taken is not None
    with pytest.raises(LookupError, match="no answer"):
        await anext(taken)
    await taken.aclose()


async def test_closing_while_the_first_item_is_fetched_cancels_the_fetch() -> None:
    source = Source([], then_wait=True)
    taken = HeadStart(source.run()).take()
    assert taken is not None
    await asyncio.wait_for(source.started.wait(), WAIT)
    await taken.aclose()
    assert source.closed.is_set()
    assert source.cancelled


async def test_a_consumer_cancelled_while_it_waits_cancels_the_fetch() -> None:
    source = Source([], then_wait=True)
    taken = HeadStart(source.run()).take()
    assert taken is not None

    async def consume() -> int:
        return await anext(taken)

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(source.started.wait(), WAIT)
    consumer.cancel()
    await asyncio.wait([consumer])
    assert source.cancelled
    assert source.closed.is_set()


@pytest.mark.parametrize(
    ("items", "then_wait"),
    [pytest.param([], True, id="still fetching"), pytest.param([1, 2], False, id="fetched")],
)
async def test_a_head_start_its_owner_did_not_hand_over_is_closed(
    items: list[int], then_wait: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_claim, "GRACE", 0.0)
    source = Source(items, then_wait=then_wait)

    async def owner() -> HeadStart[int]:
        head = HeadStart(source.run())
        await source.started.wait()
        return head

    head = await asyncio.create_task(owner())
    await asyncio.wait_for(source.closed.wait(), WAIT)
    assert source.cancelled == then_wait  # a fetch still running is cancelled
    assert head.take() is None


async def test_a_head_start_can_be_taken_a_moment_after_its_owner_ended() -> None:
    source = Source([1, 2])

    async def owner() -> HeadStart[int]:
        return HeadStart(source.run())

    head = await asyncio.create_task(owner())
    taken = head.take()
    assert taken is not None
    assert [item async for item in taken] == [1, 2]
    assert head.take() is None


async def test_a_head_start_handed_over_outlives_its_owner() -> None:
    source = Source([1, 2])

    async def owner() -> HeadStart[int] | None:
        return HeadStart(source.run()).take()

    taken = await asyncio.create_task(owner())
    assert taken is not None
    assert [item async for item in taken] == [1, 2]


async def test_a_head_start_taken_as_its_owner_ends_is_not_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Taken between its owner's end and the callback that tells it so: the consumer
    has it, and the owner's end must not close it a moment later."""
    monkeypatch.setattr(_claim, "GRACE", 0.0)
    kept, dropped = Source([1, 2], then_wait=True), Source([], then_wait=True)
    heads: list[HeadStart[int]] = []
    taken: list[HeadStart[int] | None] = []

    async def owner() -> None:
        # Registered before the head starts are made, so it runs before theirs.
        current = asyncio.current_task()
        assert current is not None
        current.add_done_callback(lambda _: taken.append(heads[0].take()))
        heads.extend([HeadStart(kept.run()), HeadStart(dropped.run())])

    await asyncio.create_task(owner())
    # The head start nobody took is closed; the taken one, given up first if at all,
    # would have been closed by then.
    await asyncio.wait_for(dropped.closed.wait(), WAIT)
    assert not kept.closed.is_set()
    assert taken[0] is not None
    assert [await anext(taken[0]), await anext(taken[0])] == [1, 2]
    await taken[0].aclose()
    assert kept.closed.is_set()
