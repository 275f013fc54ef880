"""Writing to the request's ASGI ``send`` without a task per write.

A server's ``send()`` usually finishes without waiting (the bytes go to the socket's
buffer), and running it in the caller costs far less than a task per write: with a
broadcast fanned out to thousands of streams, that task per stream and event is most
of the cost. When ``send()`` does have to wait (the client is not reading), a task
finishes it, as awaiting it would have.
"""

from __future__ import annotations

import asyncio

from django_sse._request_channels import Send
from django_sse._resume import start

__all__ = ["write_body"]


def write_body(send: Send, chunk: bytes) -> asyncio.Future[None] | None:
    """Send ``chunk`` as more of the response body; the rest of the write, if it waits.

    Returns None when the write finished at once. An error the server raises before it
    has to wait is raised here; one raised later ends the returned future.
    """
    return start(send({"type": "http.response.body", "body": chunk, "more_body": True}))
