"""Database work off the event loop: each call in a worker thread, never the request's
(which a stream has let go), that closes its connections when done, so nothing holds
one between calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

__all__ = ["in_worker"]

_R = TypeVar("_R")


async def in_worker(function: Callable[..., _R], *args: Any) -> _R:
    def call() -> _R:
        try:
            return function(*args)
        finally:
            connections.close_all()

    # In a task of its own, whose context is a copy of ours: when the call returns,
    # asgiref sets every context variable of the thread back into the awaiting
    # context, each Local's storage as a new object, and a stream would keep those
    # for its whole life (0.5 KiB, bench/README.md). Nothing the call sets is ours.
    return await asyncio.ensure_future(sync_to_async(call, thread_sensitive=False)())
