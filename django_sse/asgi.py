"""The ASGI entry point: Django's application, with streams that outlive its handler.

It also runs each HTTP request's sync work on a thread from a pool of idle ones rather
than on one started for it (see _request_threads.py; ``IDLE_REQUEST_THREADS`` 0 turns
that off).

Three things a stream can do only with the ASGI channels of its request, which Django
keeps to itself:

- Take the request over once its headers are out (_handover.py): Django's handler
  finishes, and what it would have kept alive for the whole stream is freed. The stream
  then watches ``receive`` for the disconnect itself.
- On Django 4.2, notice that its client left, also when a middleware keeps the stream
  from being taken over (it wrapped the streaming content). Django 5.0+ listens for
  ``http.disconnect`` while a response streams and cancels it, which the stream engine
  turns into outcome ``client_disconnected``; Django 4.2 stops reading ``receive``
  once the request body is in.
- Write a broadcast event to the client straight from the code that fans it out,
  instead of waking the stream's task to do it: with thousands of streams following
  a channel, that wake-up per stream is most of the cost of delivering an event.

A request without a body, which is what a stream's request almost always is, also gets
one shared empty body rather than a temporary file of its own, which Django's handler
would close when it finishes: for a stream taken over, before the stream has begun.

Without this wrapper everything still works, on 5.0+ with the same behaviour, only
idle streams take more memory and fan-out is slower.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Mapping
from typing import IO, Any, NoReturn

import django
from django.core.handlers.asgi import ASGIHandler

from django_sse._handover import Handover, request_handover
from django_sse._request_channels import Receive, Scope, Send
from django_sse._request_threads import RequestContext

__all__ = ["get_asgi_application"]

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def get_asgi_application() -> ASGIApp:
    # What django.core.asgi.get_asgi_application() does, with our handler.
    django.setup(set_prefix=False)
    application: ASGIApp = _Handler()

    async def with_channels(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await application(scope, receive, send)
            return
        handover = Handover(receive, send)
        handing = request_handover.set(handover)
        try:
            async with RequestContext():
                await application(scope, handover.receive, handover.send)
                rest = handover.resume()
                if rest is not None:
                    await rest
        finally:
            request_handover.reset(handing)

    with_channels.django_sse_watches_disconnects = True  # type: ignore[attr-defined]
    return with_channels


class _Handler(ASGIHandler):
    """Django's handler, but a request without a body gets the shared empty one."""

    async def read_body(self, receive: Receive) -> IO[bytes]:
        first = await receive()
        if first["type"] == "http.request" and not first.get("body") and not first.get("more_body"):
            return _NO_BODY
        pending = [first]

        async def replay() -> Mapping[str, Any]:
            return pending.pop() if pending else await receive()

        return await super().read_body(replay)


_UNWRITABLE = "a request without a body cannot be written to"


class _NoBody(io.BytesIO):
    """The body of every request that has none: empty, and staying so.

    One serves all requests, so closing it does nothing and writing to it is an error.
    """

    def close(self) -> None:
        pass

    def write(self, data: Any) -> NoReturn:
        raise io.UnsupportedOperation(_UNWRITABLE)

    def writelines(self, lines: Any) -> NoReturn:
        raise io.UnsupportedOperation(_UNWRITABLE)

    def truncate(self, size: int | None = None) -> NoReturn:
        raise io.UnsupportedOperation(_UNWRITABLE)


_NO_BODY = _NoBody()
