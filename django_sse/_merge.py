"""``merge()``: several async iterables as one, for a ``stream()`` that combines sources."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from typing import TypeAlias, TypeVar

__all__ = ["merge"]

logger = logging.getLogger("django_sse")

T = TypeVar("T")

# What the feeders tell the consumer: an item with the event that releases its source,
# or the feeder's task once it has ended (its result says how).
_Arrival: TypeAlias = "tuple[asyncio.Event, T] | asyncio.Task[None]"


async def merge(*sources: AsyncIterable[T]) -> AsyncGenerator[T, None]:
    """Yield the items of all ``sources`` in the order they arrive.

    Each source is iterated by a task of its own, and the order within a source is
    kept. A source runs at most one item ahead of the consumer: after handing an item
    over, it waits until the consumer has taken it, so at most one item per source is
    ever waiting.

    The merge ends when every source is exhausted. When a source raises, that
    exception is raised here as it is, after the other sources were stopped. Whenever
    the merge ends early (closed with ``aclose()``, cancelled, or a source raised), every
    source task is cancelled and every source is closed, so that each ``finally`` has
    run before the merge returns. Errors a source raises while being stopped go to the
    ``django_sse`` logger.

    Python does not close an async iterator that an ``async for`` leaves early, so in a
    generator, wrap the merge in ``contextlib.aclosing()`` to close it with yours.
    """
    iterators = [aiter(source) for source in sources]
    arrivals: asyncio.Queue[_Arrival[T]] = asyncio.Queue()
    feeders: set[asyncio.Task[None]] = set()
    for iterator in iterators:
        feeder = asyncio.create_task(_feed(iterator, arrivals.put_nowait))
        feeder.add_done_callback(arrivals.put_nowait)
        feeders.add(feeder)
    try:
        while feeders:
            arrival = await arrivals.get()
            if isinstance(arrival, tuple):
                taken, item = arrival
                taken.set()
                yield item
            else:
                feeders.discard(arrival)
                arrival.result()  # raises what the source raised, unwrapped
    finally:
        await _stop(feeders)


async def _feed(iterator: AsyncIterator[T], hand_over: Callable[[_Arrival[T]], None]) -> None:
    taken = asyncio.Event()
    try:
        async for item in iterator:
            taken.clear()
            hand_over((taken, item))
            await taken.wait()
    finally:
        # Cancelled while waiting for the consumer, the source sits at a yield that a
        # cancellation never reaches; only aclose() runs its finally now. Closing here,
        # in the task that iterated it, means it is never closed while running.
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


async def _stop(feeders: set[asyncio.Task[None]]) -> None:
    """Cancel the feeders still running and wait until their sources are closed."""
    if not feeders:
        return
    for feeder in feeders:
        feeder.cancel()
    await asyncio.wait(feeders)
    for feeder in feeders:
        error = None if feeder.cancelled() else feeder.exception()
        if error is not None:
            logger.error("A merged source raised while the merge ended", exc_info=error)
