"""Server-Sent Events for Django: an async SSEView, a spec-exact wire protocol, and more."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django_sse._lazy import lazy_names

__all__ = [
    "FINISHED",
    "ChannelView",
    "Event",
    "EventParser",
    "MessageEvent",
    "Outcome",
    "SSEResponse",
    "SSEView",
    "apublish",
    "merge",
    "publish",
    "render_event",
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
    "FINISHED": "django_sse.protocol",
    "MessageEvent": "django_sse.protocol",
    "merge": "django_sse._merge",
    "render_event": "django_sse._render",
    "Outcome": "django_sse.stats",
    "SSEResponse": "django_sse.response",
    "sse_response": "django_sse.views",
    "SSEView": "django_sse.views",
}

if TYPE_CHECKING:
    from django_sse._merge import merge
    from django_sse._render import render_event
    from django_sse.broadcast import ChannelView, apublish, publish
    from django_sse.protocol import FINISHED, Event, EventParser, MessageEvent
    from django_sse.response import SSEResponse
    from django_sse.stats import Outcome
    from django_sse.views import SSEView, sse_response


__getattr__, __dir__ = lazy_names(__name__, _LOCATIONS, __all__)
