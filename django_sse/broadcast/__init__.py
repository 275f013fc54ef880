"""Broadcast: publish events from anywhere, stream them to every subscriber of a channel.

Needs Django Channels (``pip install 'django-sse-kit[broadcast]'``) and, for several
server processes, a shared channel layer such as channels_redis. Names resolve lazily:
the app's models import ``django_sse.broadcast.models`` while Django is still loading,
before the views and channel layers these names need can be imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django_sse._lazy import lazy_names

__all__ = ["RESET", "ChannelView", "apublish", "arevoke", "publish", "revoke"]

_LOCATIONS = {
    "RESET": "django_sse.broadcast._publish",
    "apublish": "django_sse.broadcast._publish",
    "publish": "django_sse.broadcast._publish",
    "ChannelView": "django_sse.broadcast._view",
    "arevoke": "django_sse.broadcast._view",
    "revoke": "django_sse.broadcast._view",
}

if TYPE_CHECKING:
    from django_sse.broadcast._publish import RESET, apublish, publish
    from django_sse.broadcast._view import ChannelView, arevoke, revoke


__getattr__, __dir__ = lazy_names(__name__, _LOCATIONS, __all__)
