"""The ASGI entry point: Django's application, telling streams their request's channels.

It also runs each HTTP request's sync work on a thread from a pool of idle ones rather
than on one started for it (see _request_threads.py; ``IDLE_REQUEST_THREADS`` 0 turns
that off).

Two things a stream can do only with the ASGI channels of its request, which Django
keeps to itself:

- On Django 4.2, notice that its client left. Django 5.0+ listens for
  ``http.disconnect`` while a response streams and cancels it, which the stream engine
  turns into outcome ``client_disconnected``. Django 4.2 stops reading ``receive``
  once the request body is in, so a stream whose client left would run until its
  next write fails, or forever. On 4.2 the engine watches ``receive`` itself.
- Write a broadcast event to the client straight from the code that fans it out,
  instead of waking the stream's task to do it: with thousands of streams following
  a channel, that wake-up per stream is most of the cost of delivering an event.

Without this wrapper everything still works, on 5.0+ with the same behaviour, only
fan-out is slower.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import django
from django.core.asgi import get_asgi_application as django_asgi_application

from django_sse._request_channels import Receive, Scope, Send, request_receive, request_send
from django_sse._request_threads import RequestContext

__all__ = ["get_asgi_application"]

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DJANGO_WATCHES_DISCONNECTS = django.VERSION >= (5, 0)


def get_asgi_application() -> ASGIApp:
    application: ASGIApp = django_asgi_application()

    async def with_channels(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await application(scope, receive, send)
            return
        sending = request_send.set(send)
        receiving = request_receive.set(None if DJANGO_WATCHES_DISCONNECTS else receive)
        try:
            async with RequestContext():
                await application(scope, receive, send)
        finally:
            request_receive.reset(receiving)
            request_send.reset(sending)

    with_channels.django_sse_watches_disconnects = True  # type: ignore[attr-defined]
    return with_channels
