"""Server-Sent Events for Django: an async SSEView, a spec-exact wire protocol, and more."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "ChannelView",
    "Event",
    "EventParser",
    "MessageEvent",
    "Outcome",
    "SSEResponse",
    "SSEView",
    "apublish",
    "publish",
    "sse_response",
]

__version__ = "0.1.0"

# Public names resolve lazily, so importing django_sse (e.g. from settings) never
# imports Django's models or an optional extra before they are needed.
_LOCATIONS = {
    "ChannelView": "django_sse.broadcast",
    "apublish": "django_sse.broadcast",
    "publish": "django_sse.broadcast",
    "Event": "django_sse.protocol",
    "EventParser": "django_sse.protocol",
    "MessageEvent": "django_sse.protocol",
    "Outcome": "django_sse.response",
    "SSEResponse": "django_sse.response",
    "sse_response": "django_sse.response",
    "SSEView": "django_sse.views",
}

if TYPE_CHECKING:
    from django_sse.broadcast import ChannelView, apublish, publish
    from django_sse.protocol import Event, EventParser, MessageEvent
    from django_sse.response import Outcome, SSEResponse, sse_response
    from django_sse.views import SSEView


def __getattr__(name: str) -> Any:
    module_name = _LOCATIONS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'django_sse' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
