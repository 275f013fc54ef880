"""Running a coroutine by hand until it first waits, and a task for the rest.

Most coroutines on the stream's paths finish without waiting (a server's ``send()``
that only fills a socket buffer, an ``on_close`` with nothing to do): running them at
once costs far less than a task each. The few that do wait go on in a task, exactly
as if they had been awaited from the start.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

__all__ = ["start"]


def start(awaitable: Awaitable[Any]) -> asyncio.Future[Any] | None:
    """Run ``awaitable`` until it first waits; None if it finished by then.

    What it raises before it waits is raised here. Once it waits, the rest runs in a
    task, returned, which ends as the coroutine does. Anything awaitable that is not a
    coroutine object goes straight into a future.
    """
    if type(awaitable) is not types.CoroutineType:
        return asyncio.ensure_future(awaitable)
    coroutine: Coroutine[Any, Any, Any] = awaitable
    try:
        waiting_on = coroutine.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_finish(coroutine, waiting_on))


async def _finish(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
    await _resumed(coroutine, waiting_on)


@types.coroutine
def _resumed(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, None]:
    """Go on with a coroutine that has been run by hand up to ``waiting_on``.

    Passes what it waits on up to the task and what the task sends or throws (the
    result, or a cancellation) back down, as ``await`` would have from the start.
    """
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:
            try:
                waiting_on = coroutine.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting_on = coroutine.send(sent)
            except StopIteration:
                return
