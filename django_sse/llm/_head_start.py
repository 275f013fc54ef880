"""HeadStart: an async generator whose first item is fetched before anyone asks for it.

Why: a chat view's answer starts with a request to the model, and building and sending
it takes the openai SDK a few milliseconds. Started as the view returns its response,
rather than once Django reads the response's body, the request is out by the time the
headers are, and the first token comes that much sooner.

The risk is a request that nobody reads (a middleware replaced the response, the
client left before the body was read, a test dropped the response): the model would
go on generating, and billing, until its answer ended. So a head start belongs to the
task that made it until its consumer takes it, and is given up, its request closed,
soon after that task ends untaken. Django's ASGI handler usually makes the response
and sends it in one task, so that is when it is done with the request. Not at once,
though: behind a middleware that only runs sync, Django runs the view in a task of
its own, which ends just before the response is sent. Django's own cleanup would not
do: it calls ``close()`` on the response it sent, not on one a middleware replaced, and
not at all when the request is cancelled; and garbage collection comes whenever it
comes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any, Generic, TypeVar

__all__ = ["HeadStart"]

logger = logging.getLogger("django_sse")

T = TypeVar("T")

# Seconds a head start waits to be taken once its owner task has ended. Enough for
# Django to start sending a response its view made in another task; short enough that
# an answer nobody will read is cut off after a second of generating.
GRACE = 1.0

# Head starts being closed because nobody took them: a task only weakly referenced
# could be garbage collected before it has closed its source.
_discarding: set[asyncio.Task[None]] = set()


class HeadStart(Generic[T]):
    """``source``'s first item, fetched in a task of its own from now on.

    ``take()`` hands this over as an async iterator of all of ``source``'s items, the
    first one included, to a consumer that must close it (``aclose()``). It can be taken
    while the task that created it runs and for ``GRACE`` seconds after; then it is
    closed and ``take()`` returns None. Cancelling the consumer while it waits for the
    first item cancels the fetch.
    """

    def __init__(self, source: AsyncGenerator[T, None]) -> None:
        owner = asyncio.current_task()
        if owner is None:
            raise RuntimeError("A HeadStart belongs to a task: create it in one")
        self._source = source
        self._first = owner.get_loop().create_task(_first_item(source))
        self._first_taken = False
        self._owner: asyncio.Task[Any] | None = owner
        self._expiry: asyncio.TimerHandle | None = None
        owner.add_done_callback(self._orphaned)

    def take(self) -> HeadStart[T] | None:
        """This head start, for its one consumer; None once it is taken or given up."""
        if self._owner is None:
            return None
        self._owner.remove_done_callback(self._orphaned)
        self._owner = None
        if self._expiry is not None:
            self._expiry.cancel()
        return self

    def __aiter__(self) -> HeadStart[T]:
        return self

    async def __anext__(self) -> T:
        if self._first_taken:
            return await anext(self._source)
        self._first_taken = True
        return await self._first

    async def aclose(self) -> None:
        """Stop fetching the first item if that still runs, then close the source."""
        if self._first.cancel():
            await asyncio.wait([self._first])
        if not self._first.cancelled():
            # Mark a failure nobody read as read, or asyncio logs it as lost.
            self._first.exception()
        await self._source.aclose()

    def _orphaned(self, owner: asyncio.Task[Any]) -> None:
        self._expiry = owner.get_loop().call_later(GRACE, self._discard, owner)

    def _discard(self, owner: asyncio.Task[Any]) -> None:
        """Nobody took this in time: close it, in a task of its own."""
        self._owner = None
        closing = owner.get_loop().create_task(self._close_quietly())
        _discarding.add(closing)
        closing.add_done_callback(_discarding.discard)

    async def _close_quietly(self) -> None:
        try:
            await self.aclose()
        except Exception:
            logger.exception("Closing a head start that was never taken raised")


async def _first_item(source: AsyncGenerator[T, None]) -> T:
    return await anext(source)
