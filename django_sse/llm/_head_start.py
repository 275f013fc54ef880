"""HeadStart: an async generator whose first item is fetched before anyone asks for it.

Why: a chat view's answer starts with a request to the model, and building and sending
it takes the openai SDK a few milliseconds. Started as the view returns its response,
rather than once Django reads the response's body, the request is out by the time the
headers are, and the first token comes that much sooner.

The risk is a request that nobody reads (a middleware replaced the response, the
client left before the body was read, a test dropped the response): the model would
go on generating, and billing, until its answer ended. So a head start is a claim of
the task that made it (django_sse._claim): given up, its request closed, soon after
that task ends if its consumer has not taken it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Generic, TypeVar

from django_sse._claim import Claim

__all__ = ["HeadStart"]

logger = logging.getLogger("django_sse")

T = TypeVar("T")


class HeadStart(Generic[T]):
    """``source``'s first item, fetched in a task of its own from now on.

    ``take()`` hands this over as an async iterator of all of ``source``'s items, the
    first one included, to a consumer that must close it (``aclose()``). It can be taken
    while the task that created it runs and for ``_claim.GRACE`` seconds after; then it is
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
        self._claim = Claim(owner, self._close_quietly)

    def take(self) -> HeadStart[T] | None:
        """This head start, for its one consumer; None once it is taken or given up."""
        return self if self._claim.take() else None

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

    async def _close_quietly(self) -> None:
        try:
            await self.aclose()
        except Exception:
            logger.exception("Closing a head start that was never taken raised")


async def _first_item(source: AsyncGenerator[T, None]) -> T:
    return await anext(source)
