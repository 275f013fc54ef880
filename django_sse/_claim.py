"""Claim: something a request's task takes for a stream that may never open, given up
soon after that task ends if the stream has not taken it by then.

A view takes things for its stream before the stream exists: a stream-limit slot
(_limits.py), the model's first token (llm/_head_start.py). The stream may never open:
a middleware replaced the response, the client left before it was sent, the view
failed after taking them. Neither Django's cleanup nor garbage collection gives them
back in time: Django calls ``close()`` on the response it sent, not on one a middleware
replaced, and not at all when the request is cancelled; garbage collection comes
whenever it comes. The task that took them is what knows: Django's ASGI handler
usually makes the response and sends it in one task, so that is when it is done with
the request. Not at once, though: behind a middleware that only runs sync, Django runs
the view in a task of its own, which ends just before the response is sent; hence the
grace period.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from django_sse._background import keep

__all__ = ["GRACE", "Claim"]

# Seconds a claim waits to be taken once its owner task has ended. Enough for Django to
# start sending a response its view made in another task; short enough that a slot
# comes back, or an answer nobody will read is cut off, after a second.
GRACE = 1.0


class Claim:
    """Until ``take()``: ``give_up()`` runs, in a task of its own, GRACE seconds after
    ``owner`` has ended."""

    __slots__ = ("_expiry", "_give_up", "_owner")

    def __init__(
        self, owner: asyncio.Task[Any], give_up: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        self._owner: asyncio.Task[Any] | None = owner
        self._give_up = give_up
        self._expiry: asyncio.TimerHandle | None = None
        owner.add_done_callback(self._orphaned)

    def take(self) -> bool:
        """Whether the claim was still there to take; from now on, it is the caller's."""
        if self._owner is None:
            return False
        self._owner.remove_done_callback(self._orphaned)
        self._owner = None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        return True

    def _orphaned(self, owner: asyncio.Task[Any]) -> None:
        # A task's done callbacks run soon after it ends, not as it ends: the claim may
        # have been taken in between.
        if self._owner is not None:
            self._expiry = owner.get_loop().call_later(GRACE, self._abandon, owner)

    def _abandon(self, owner: asyncio.Task[Any]) -> None:
        self._owner = None
        self._expiry = None
        keep(owner.get_loop().create_task(self._give_up()))
