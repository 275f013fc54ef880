"""Broadcast: publish events from anywhere, stream them to every subscriber of a channel.

Needs Django Channels (``pip install 'django-sse-kit[broadcast]'``) and, for several
server processes, a shared channel layer such as channels_redis. Names resolve lazily:
the app's models import ``django_sse.broadcast.models`` while Django is still loading,
before the views and channel layers these names need can be imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module_name = _LOCATIONS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'django_sse.broadcast' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
