"""The channel layer that carries published events between processes."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from django_sse import conf

__all__ = ["get_layer", "is_local"]

_embedded: Any = None
_embedded_lock = threading.Lock()


def get_layer() -> Any:
    """The layer BROADCAST_LAYER names in CHANNEL_LAYERS.

    Without CHANNEL_LAYERS, one in-memory layer for the whole process: broadcast works
    with nothing to install or run, within one process.
    """
    try:
        from channels.layers import InMemoryChannelLayer, get_channel_layer
    except ImportError:
        raise ImproperlyConfigured(
            "Broadcast needs Django Channels: pip install 'django-sse-kit[broadcast]'"
        ) from None
    if not getattr(settings, "CHANNEL_LAYERS", None):
        global _embedded
        with _embedded_lock:
            if _embedded is None:
                _embedded = InMemoryChannelLayer()
            return _embedded
    alias = conf.get("BROADCAST_LAYER")
    layer = get_channel_layer(alias)
    if layer is None:
        raise ImproperlyConfigured(
            f"DJANGO_SSE['BROADCAST_LAYER'] is {alias!r}, which CHANNEL_LAYERS does not define"
        )
    return layer


def is_local(layer: Any) -> bool:
    """Whether the layer reaches only this process (so other processes' events do not)."""
    from channels.layers import InMemoryChannelLayer

    return isinstance(layer, InMemoryChannelLayer)
