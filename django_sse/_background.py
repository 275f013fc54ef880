"""Tasks that nobody awaits, kept until they finish.

The event loop holds only weak references to tasks: one that nothing else refers to can
be garbage collected while it waits, and its work (giving back a slot, finishing a log
row, closing a model's request) would stop where it was, without a word.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["in_background", "keep"]

_kept: set[asyncio.Future[Any]] = set()


def keep(task: asyncio.Future[Any]) -> None:
    """Hold on to ``task`` until it is done."""
    _kept.add(task)
    task.add_done_callback(_kept.discard)


def in_background(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Run ``work`` in a task of its own, kept until it finishes."""
    task = asyncio.get_running_loop().create_task(work)
    keep(task)
    return task
