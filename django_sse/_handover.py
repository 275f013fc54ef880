"""A stream taken over from Django's ASGI handler once its response has started.

While Django's handler serves a streaming response, it keeps its own machinery alive
for as long as the stream lasts: its coroutine, the two tasks it runs (one reading the
response, one listening for the disconnect), the wait on them and its loop over the
response. For an idle stream that is a large share of its memory (bench/README.md,
idle_breakdown.py), and none of it is used again.

So django_sse's ASGI application (django_sse.asgi) offers each HTTP request a
``Handover``. An SSEResponse served by Django takes it: Django sends the response's
start and, from the response's iterator, nothing; the end of the body it then sends
is held back here. Django's handler finishes as for any response (``response.close()``
and ``request_finished`` run now, not when the stream ends), and the application goes
on to run the stream itself, with the request's own ASGI channels.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import django

from django_sse._request_channels import Receive, Send

__all__ = ["DJANGO_WATCHES_DISCONNECTS", "Continuation", "Handover", "request_handover"]

# Django 5.0+ listens for http.disconnect while a response streams, and cancels it;
# Django 4.2 stops reading ``receive`` once the request body is in.
DJANGO_WATCHES_DISCONNECTS = django.VERSION >= (5, 0)

# The rest of a taken-over stream: called with the request's receive and send, and
# whether the client had already left when Django finished.
Continuation = Callable[[Receive, Send, bool], Coroutine[Any, Any, None]]

request_handover: contextvars.ContextVar[Handover | None] = contextvars.ContextVar(
    "django_sse_request_handover", default=None
)


class Handover:
    """One request's ASGI channels, the wrappers of them Django is given, and the
    stream that took the request over.

    A stream that Django serves itself (one that did not take the handover) writes
    broadcast events to ``asgi_send`` straight from the code that fans them out, and on
    Django 4.2 watches ``asgi_receive`` for the disconnect (see django_sse.asgi).
    """

    __slots__ = ("asgi_receive", "asgi_send", "context", "continuation", "disconnected", "has_body")

    def __init__(self, receive: Receive, send: Send) -> None:
        self.asgi_receive = receive
        self.asgi_send = send
        self.continuation: Continuation | None = None
        # The context of the task that took the handover: the view's and middleware's
        # context variables (active language, time zone, urlconf) for the stream.
        self.context: contextvars.Context | None = None
        self.disconnected = False
        # Django closes the request's body file when its handler finishes; a stream
        # whose request had a body may still read it (request.POST, request.body), so
        # such a stream stays with Django.
        self.has_body = False

    def take(self, continuation: Continuation) -> bool:
        """Run ``continuation`` after Django's handler; False if that cannot be."""
        if self.continuation is not None or self.has_body:
            return False
        self.continuation = continuation
        self.context = contextvars.copy_context()
        return True

    async def receive(self) -> Mapping[str, Any]:
        message = await self.asgi_receive()
        if message.get("body"):
            self.has_body = True
        elif message["type"] == "http.disconnect":
            # Django consumed the disconnect: the continuation must not wait for it.
            self.disconnected = True
        return message

    async def send(self, message: Mapping[str, Any]) -> None:
        if (
            self.continuation is not None
            and message["type"] == "http.response.body"
            and not message.get("more_body", False)
        ):
            # The end of the body is the continuation's to send.
            return
        await self.asgi_send(message)

    def resume(self) -> Coroutine[Any, Any, None] | None:
        """The rest of the stream that took this request over, if any, to be awaited
        where Django left it: with the context variables the view's task had."""
        continuation, context = self.continuation, self.context
        if continuation is None or context is None:
            return None
        self.continuation = self.context = None
        for variable, value in context.items():
            if variable.get(_MISSING) is not value:
                variable.set(value)
        return continuation(self.asgi_receive, self.asgi_send, self.disconnected)


_MISSING = object()
