"""The ASGI channels of the HTTP request being handled, for the stream engine.

django_sse.asgi sets them around each request; the engine reads them. They live here,
below both, so the engine never imports the application's entry point.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["Receive", "Scope", "Send", "request_receive", "request_send"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]

# The receive channel of the HTTP request being handled, on Django < 5.0 only.
request_receive: contextvars.ContextVar[Receive | None] = contextvars.ContextVar(
    "django_sse_request_receive", default=None
)
# The send channel of the HTTP request being handled.
request_send: contextvars.ContextVar[Send | None] = contextvars.ContextVar(
    "django_sse_request_send", default=None
)
