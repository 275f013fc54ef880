"""merge(): arrival order, backpressure, and that every source is closed however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import pytest
from django.http import HttpRequest
from django.test import AsyncRequestFactory

from django_sse import Outcome, SSEResponse, SSEView, merge

LIMIT = 10.0  # seconds any single await in these tests may take before the test fails

END = object()


def within(awaitable: Any) -> Any:
    return asyncio.wait_for(awaitable, LIMIT)


class Fed:
    """A source that yields what the test sends it, and records how it ended."""

    def __init__(self) -> None:
        self._items: asyncio.Queue[Any] = asyncio.Queue()
        # Set while the source waits inside its own body for the next item.
        self.waiting = asyncio.Event()
        self.ended_by: str | None = None
        self.cleaned_up = False

    def send(self, *items: Any) -> None:
        for item in items:
            self._items.put_nowait(item)

    async def run(self) -> AsyncIterator[Any]:
        try:
            while True:
                self.waiting.set()
                item = await self._items.get()
                self.waiting.clear()
                if item is END:
                    return
                yield item
        except BaseException as exc:
            self.ended_by = type(exc).__name__
            raise
        finally:
            self.cleaned_up = True


async def test_items_come_out_in_the_order_they_arrive() -> None:
    a, b = Fed(), Fed()
    merged = merge(a.run(), b.run())
    for source, item in [(a, "a1"), (b, "b1"), (b, "b2"), (a, "a2"), (b, "b3")]:
        source.send(item)
        assert await within(anext(merged)) == item
    a.send(END)
    b.send("b4", END)
    assert [item async for item in merged] == ["b4"]
    assert a.ended_by is b.ended_by is None


async def test_the_order_within_each_source_is_kept() -> None:
    async def numbered(name: str) -> AsyncIterator[tuple[str, int]]:
        for n in range(100):
            yield name, n

    received = [item async for item in merge(numbered("a"), numbered("b"), numbered("c"))]
    assert len(received) == 300
    for name in "abc":
        assert [n for source, n in received if source == name] == list(range(100))


async def test_a_fast_source_runs_at_most_one_item_ahead_of_the_consumer() -> None:
    produced = 0

    async def fast() -> AsyncIterator[int]:
        nonlocal produced
        for n in range(1000):
            produced += 1
            yield n

    merged = merge(fast())
    # A source that never waits would be drained at once into an unbounded buffer.
    for taken in range(1, 50):
        assert await within(anext(merged)) == taken - 1
        assert produced <= taken + 1
    await merged.aclose()


async def test_aclose_closes_every_source_before_it_returns() -> None:
    handing_over, idle = Fed(), Fed()
    handing_over.send("h1", "h2")
    merged = merge(handing_over.run(), idle.run())
    assert await within(anext(merged)) == "h1"
    await within(idle.waiting.wait())

    await within(merged.aclose())

    # One source sat at its yield, which only aclose() reaches; the other waited in its
    # body, where its task's cancellation reached it.
    assert (handing_over.ended_by, idle.ended_by) == ("GeneratorExit", "CancelledError")
    assert handing_over.cleaned_up
    assert idle.cleaned_up


async def test_aclosing_closes_the_merge_together_with_a_generator_relaying_it() -> None:
    """The pattern the docs give for stream(): closing the relay closes the sources now."""
    source = Fed()
    source.send("x")

    async def relay() -> AsyncGenerator[Any, None]:
        async with aclosing(merge(source.run())) as items:
            async for item in items:
                yield item

    relaying = relay()
    assert await within(anext(relaying)) == "x"
    await within(relaying.aclose())
    assert source.cleaned_up


async def test_cancelling_the_consumer_cancels_and_closes_the_sources() -> None:
    a, b = Fed(), Fed()
    a.send("a1")
    received = asyncio.Event()

    async def consume() -> None:
        async for _ in merge(a.run(), b.run()):
            received.set()

    task = asyncio.create_task(consume())
    await within(received.wait())
    await within(a.waiting.wait())
    await within(b.waiting.wait())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await within(task)
    assert (a.ended_by, b.ended_by) == ("CancelledError", "CancelledError")
    assert a.cleaned_up
    assert b.cleaned_up


async def test_an_exception_in_a_source_stops_the_others_and_is_raised_as_it_is() -> None:
    error = ValueError("the feed broke")
    fail = asyncio.Event()

    async def failing() -> AsyncIterator[str]:
        yield "before"
        await fail.wait()
        raise error

    other = Fed()
    merged = merge(failing(), other.run())
    assert await within(anext(merged)) == "before"
    await within(other.waiting.wait())
    fail.set()
    with pytest.raises(ValueError, match="the feed broke") as raised:
        await within(anext(merged))
    assert raised.value is error
    assert other.ended_by == "CancelledError"
    assert other.cleaned_up
    with pytest.raises(StopAsyncIteration):
        await anext(merged)


async def test_an_error_while_a_source_is_closed_is_logged(caplog: Any) -> None:
    async def breaks_on_close() -> AsyncIterator[str]:
        try:
            yield "x"
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("cleanup failed")

    merged = merge(breaks_on_close())
    assert await within(anext(merged)) == "x"
    await within(merged.aclose())
    assert "A merged source raised while the merge ended" in caplog.text
    assert "RuntimeError: cleanup failed" in caplog.text


async def test_no_sources_is_an_empty_stream() -> None:
    sources: list[AsyncIterator[str]] = []  # gives the items a type, for mypy
    assert [item async for item in merge(*sources)] == []


class Numbers:
    """An async iterable that is not a generator: each iteration gets a new iterator."""

    def __init__(self, *values: int) -> None:
        self.values = values

    def __aiter__(self) -> NumbersIterator:
        return NumbersIterator(iter(self.values))


class NumbersIterator:
    """An async iterator without aclose()."""

    def __init__(self, values: Iterator[int]) -> None:
        self.values = values

    def __aiter__(self) -> NumbersIterator:
        return self

    async def __anext__(self) -> int:
        try:
            return next(self.values)
        except StopIteration:
            raise StopAsyncIteration from None


async def test_any_async_iterable_can_be_merged() -> None:
    odd, even = Numbers(1, 3, 5), Numbers(2, 4)
    received = [n async for n in merge(odd, even, odd)]
    assert sorted(received) == [1, 1, 2, 3, 3, 4, 5, 5]
    assert [n for n in received if n % 2 == 0] == [2, 4]


class Flags:
    """What a view's two merged sources record, and a view that merges them."""

    def __init__(self) -> None:
        self.cleaned_up: set[str] = set()

    async def endless(self) -> AsyncIterator[str]:
        try:
            while True:
                yield "fast"
        finally:
            self.cleaned_up.add("endless")

    async def quiet(self) -> AsyncIterator[str]:
        try:
            yield "quiet"
            await asyncio.Event().wait()
        finally:
            self.cleaned_up.add("quiet")

    async def response(self) -> SSEResponse:
        flags = self

        class Feeds(SSEView):
            log_streams = False
            keep_alive = 0

            async def stream(
                self, request: HttpRequest, *args: Any, **kwargs: Any
            ) -> AsyncIterator[Any]:
                async with aclosing(merge(flags.endless(), flags.quiet())) as items:
                    async for item in items:
                        yield item

        response = await Feeds.as_view()(AsyncRequestFactory().get("/feeds/"))  # type: ignore[misc]
        assert isinstance(response, SSEResponse)
        return response


def both_arrived(raw: bytes) -> bool:
    return b"data: fast\n" in raw and b"data: quiet\n" in raw


async def test_a_view_closes_both_merged_sources_when_django_cancels_it() -> None:
    """Django 5+ cancels the response task when the client disconnects."""
    flags = Flags()
    response = await flags.response()
    arrived = asyncio.Event()

    async def consume() -> None:
        raw = b""
        async with aclosing(aiter(response)) as content:  # type: ignore[type-var]
            async for chunk in content:
                raw += chunk
                if both_arrived(raw):
                    arrived.set()

    task = asyncio.create_task(consume())
    await within(arrived.wait())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await within(task)
    assert flags.cleaned_up == {"endless", "quiet"}
    assert response.stats.outcome == Outcome.CLIENT_DISCONNECTED


async def test_a_view_closes_both_merged_sources_when_django_closes_it() -> None:
    """Django closes the response when its send() fails while the stream is at a yield."""
    flags = Flags()
    response = await flags.response()
    content = aiter(response)
    raw = b""
    while not both_arrived(raw):
        raw += await within(anext(content))
    await within(content.aclose())  # type: ignore[attr-defined]
    assert flags.cleaned_up == {"endless", "quiet"}
    assert response.stats.outcome == Outcome.CLIENT_DISCONNECTED
