"""Running a coroutine by hand: until it first waits, and a task for the rest; or all
the way, from the callbacks of what it waits on.

Most coroutines on the stream's paths finish without waiting (a server's ``send()``
that only fills a socket buffer, an ``on_close`` with nothing to do): running them at
once costs far less than a task each. The few that do wait go on in a task, exactly
as if they had been awaited from the start.

A wait that lasts as long as a stream does (the server's ``receive()``, which returns
when the client leaves) is followed without a task at all: a task costs about 0.4 KiB
more per idle stream (bench/README.md) and buys nothing for code that never asks which
task runs it.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

__all__ = ["Follower", "start"]


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


class Follower:
    """``awaitable`` run by hand, each step from the done callback of the future it
    waits on; ``then`` gets its result.

    A coroutine that waits on anything but a future (a bare ``yield``, as in
    ``asyncio.sleep(0)``) goes on in a task from there, as does an awaitable that is not
    a coroutine. One that raises ends quietly: its caller (a stream watching for the
    disconnect) learns of a broken connection from its next write.
    """

    __slots__ = ("_coroutine", "_then", "_waiting_on")

    def __init__(self, awaitable: Awaitable[Any], then: Callable[[Any], None]) -> None:
        self._then = then
        self._waiting_on: asyncio.Future[Any] | None = None
        self._coroutine: Coroutine[Any, Any, Any] | None = None
        if type(awaitable) is types.CoroutineType:
            self._coroutine = awaitable
        else:
            self._wait(asyncio.ensure_future(awaitable))

    def start(self) -> None:
        """Run the coroutine until it first waits; ``then`` is called here if it does not.

        Apart from ``__init__``, so that whoever keeps the follower has it before ``then``
        runs (and perhaps starts the next one).
        """
        if self._coroutine is not None and self._waiting_on is None:
            self._step()

    def cancel(self) -> None:
        """Stop following: a coroutine is closed (its ``finally`` runs now), a task or
        future cancelled; ``then`` is not called."""
        waiting_on, coroutine = self._waiting_on, self._coroutine
        self._waiting_on = self._coroutine = None
        if waiting_on is not None:
            waiting_on.remove_done_callback(self._resume)
        if coroutine is not None:
            coroutine.close()
        elif waiting_on is not None:
            waiting_on.cancel()

    def _wait(self, future: asyncio.Future[Any]) -> None:
        self._waiting_on = future
        future.add_done_callback(self._resume)

    def _resume(self, future: asyncio.Future[Any]) -> None:
        if future is not self._waiting_on:
            # Cancelled after the future was done, before its callbacks ran.
            return
        self._waiting_on = None
        if self._coroutine is not None:
            # The coroutine's own ``await`` reads the future's result or exception.
            self._step()
        elif not future.cancelled() and future.exception() is None:
            self._then(future.result())

    def _step(self) -> None:
        coroutine = self._coroutine
        assert coroutine is not None
        try:
            waiting_on = coroutine.send(None)
        except StopIteration as done:
            self._coroutine = None
            self._then(done.value)
            return
        except (Exception, asyncio.CancelledError):
            self._coroutine = None
            return
        if asyncio.isfuture(waiting_on):
            self._wait(waiting_on)
        else:
            self._coroutine = None
            self._wait(asyncio.get_running_loop().create_task(_finish(coroutine, waiting_on)))


async def _finish(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    return await _resumed(coroutine, waiting_on)


@types.coroutine
def _resumed(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
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
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting_on = coroutine.send(sent)
            except StopIteration as done:
                return done.value
