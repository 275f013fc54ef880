"""Cleanup that cancellation cannot cut short, and that cannot hang a stream's end.

Django 5.0+ cancels a response's task when its client disconnects, daphne cancels it
again when it takes long to finish, and a server stopping cancels everything. A
cancellation lands in whatever the task awaits at that moment: in a stream's close
path, that is the source's ``finally``, the stream log's write or ``on_close``, each of
which would stop at its next ``await``. So the close path runs in a task of its own,
which the response's task waits for whatever cancels it (``run_to_end``), and each of
its steps runs for at most a bounded time (``settle``), so that no cleanup can keep a
connection, or a server that is stopping, waiting for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from django_sse._background import keep
from django_sse._resume import start

__all__ = ["run_to_end", "settle"]

logger = logging.getLogger("django_sse")


async def run_to_end(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run ``cleanup`` in a task of its own and wait until it has finished.

    A cancellation of the caller while it waits does not reach ``cleanup``; it is
    raised once ``cleanup`` has finished, so the caller still ends as cancelled.
    """
    task = asyncio.get_running_loop().create_task(cleanup)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


async def settle(step: Callable[[], Awaitable[Any]], timeout: float, what: str) -> None:
    """Give ``step()`` up to ``timeout`` seconds to finish, then cancel it.

    Never raises: what ``step`` raised (also at once, or by returning something that
    cannot be awaited) is logged, naming ``what``, and so is an overrun. A cancellation
    of the caller is ignored (the bound still holds), so that the steps after this one
    still run. A step that finishes without waiting runs here, without a task.
    """
    try:
        task = start(step())
    except Exception as exc:
        logger.error("%s raised", what, exc_info=exc)
        return
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            task.cancel()
            keep(task)
            logger.error("%s did not finish within %s s and was cancelled", what, timeout)
            return
        try:
            await asyncio.wait((task,), timeout=remaining)
        except asyncio.CancelledError:
            continue
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s raised", what, exc_info=task.exception())
