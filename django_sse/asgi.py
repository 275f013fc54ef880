"""The ASGI entry point to use on Django 4.2, where views never learn of disconnects.

Django 5.0+ listens for ``http.disconnect`` while a response streams and cancels it,
which the stream engine turns into outcome ``client_disconnected``. Django 4.2 stops
reading the ASGI ``receive`` channel once the request body is in, so a stream whose
client left would run until its next write fails, or forever. On 4.2 this wrapper
hands ``receive`` to the engine, which then watches for the disconnect itself. On
5.0+ it returns Django's own application untouched.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import django
from django.core.asgi import get_asgi_application as django_asgi_application

__all__ = ["get_asgi_application"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DJANGO_WATCHES_DISCONNECTS = django.VERSION >= (5, 0)

# The receive channel of the HTTP request being handled, on Django < 5.0 only.
request_receive: contextvars.ContextVar[Receive | None] = contextvars.ContextVar(
    "django_sse_request_receive", default=None
)


def get_asgi_application() -> ASGIApp:
    application: ASGIApp = django_asgi_application()
    if DJANGO_WATCHES_DISCONNECTS:
        return application

    async def watched(scope: Scope, receive: Receive, send: Send) -> None:
        token = request_receive.set(receive if scope["type"] == "http" else None)
        try:
            await application(scope, receive, send)
        finally:
            request_receive.reset(token)

    watched.django_sse_watches_disconnects = True  # type: ignore[attr-defined]
    return watched
