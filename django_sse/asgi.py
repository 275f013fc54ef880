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

Without this wrapper everything still works, on 5.0+ with the same behaviour, only
idle streams take more memory and fan-out is slower.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import django
from django.core.asgi import get_asgi_application as django_asgi_application

from django_sse._handover import Handover, request_handover
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
        handover = Handover(receive, send)
        sending = request_send.set(send)
        receiving = request_receive.set(None if DJANGO_WATCHES_DISCONNECTS else receive)
        handing = request_handover.set(handover)
        try:
            async with RequestContext():
                await application(scope, handover.receive, handover.send)
                rest = handover.resume()
                if rest is not None:
                    await rest
        finally:
            request_handover.reset(handing)
            request_receive.reset(receiving)
            request_send.reset(sending)

    with_channels.django_sse_watches_disconnects = True  # type: ignore[attr-defined]
    return with_channels
