"""Database work off the event loop: each call in a worker thread, never the request's
(which a stream has let go), that closes its connections when done, so nothing holds
one between calls."""

from __future__ import annotations

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

    return await sync_to_async(call, thread_sensitive=False)()
