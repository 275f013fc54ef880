"""Writing to the request's ASGI ``send`` without a task per write.

A server's ``send()`` usually finishes without waiting (the bytes go to the socket's
buffer), and running it in the caller costs far less than a task per write: with a
broadcast fanned out to thousands of streams, that task per stream and event is most
of the cost. When ``send()`` does have to wait (the client is not reading), a task
finishes it, as awaiting it would have.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any

from django_sse._request_channels import Send

__all__ = ["write_body"]


def write_body(send: Send, chunk: bytes) -> asyncio.Future[None] | None:
    """Send ``chunk`` as more of the response body; the rest of the write, if it waits.

    Returns None when the write finished at once. An error the server raises before it
    has to wait is raised here; one raised later ends the returned future.
    """
    sending = send({"type": "http.response.body", "body": chunk, "more_body": True})
    if type(sending) is not types.CoroutineType:
        return asyncio.ensure_future(sending)
    try:
        waiting_on = sending.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_finish(sending, waiting_on))


async def _finish(coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    await _resumed(coroutine, waiting_on)


@types.coroutine
def _resumed(coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, Any, None]:
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
