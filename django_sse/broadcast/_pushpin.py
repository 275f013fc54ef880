"""Pushpin mode's settings, and publishing to Pushpin.

``DJANGO_SSE["PUSHPIN"]`` switches the mode on; this module is the one place that
reads and checks it. Publishing goes over Pushpin's HTTP publish endpoint, to every
instance listed. A publish that fails is logged once per outage, never raised: the
event is stored in history already, and Pushpin fetches what a connection missed
(see _held.py) at the next event of the channel, or at the latest after
``RECOVER_INTERVAL`` seconds.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import ssl
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_sse import conf

__all__ = ["PushpinSettings", "publish_items", "settings"]

logger = logging.getLogger("django_sse")

_KEYS = {"PUBLISH_URL", "SIG_KEY", "CHANNEL_PREFIX", "RECOVER_INTERVAL", "TIMEOUT"}


@dataclass(frozen=True)
class PushpinSettings:
    # Pushpin's HTTP publish endpoints: one per Pushpin instance.
    publish_urls: tuple[str, ...]
    # Pushpin's sig_key: a request whose Grip-Sig it signed came through Pushpin.
    sig_key: bytes
    # Put before channel names in Pushpin, so that its channels cannot collide with
    # another application's.
    channel_prefix: str
    # Seconds between Pushpin's checks, per connection, for events it missed.
    recover_interval: int
    # Seconds a publish may take.
    timeout: float


def settings() -> PushpinSettings | None:
    """The PUSHPIN setting, checked; None when Pushpin mode is off."""
    value = conf.get("PUSHPIN")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _error(f"must be a dict, not {type(value).__name__}")
    unknown = set(value) - _KEYS
    if unknown:
        raise _error(f"has unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    urls = value.get("PUBLISH_URL")
    urls = (urls,) if isinstance(urls, str) else urls
    if (
        not isinstance(urls, Sequence)
        or not urls
        or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls)
    ):
        raise _error("['PUBLISH_URL'] must be Pushpin's publish URL (http://...) or a list")
    key = value.get("SIG_KEY")
    if not isinstance(key, str) or not key:
        raise _error(
            "['SIG_KEY'] must be Pushpin's sig_key (its [proxy] setting): without it, "
            "anyone could claim a request came through Pushpin"
        )
    prefix = value.get("CHANNEL_PREFIX", "django_sse.")
    if not isinstance(prefix, str) or any(c in prefix for c in ',;=" '):
        raise _error("['CHANNEL_PREFIX'] must be a str without , ; = \" or spaces")
    interval = value.get("RECOVER_INTERVAL", 300)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise _error("['RECOVER_INTERVAL'] must be a whole number of seconds, 1 or more")
    timeout = value.get("TIMEOUT", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise _error("['TIMEOUT'] must be a number of seconds above 0")
    if importlib.util.find_spec("httpx") is None:
        raise ImproperlyConfigured(
            "Pushpin mode publishes with httpx: pip install 'django-sse-kit[pushpin]'"
        )
    return PushpinSettings(tuple(urls), key.encode(), prefix, interval, float(timeout))


def _error(problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"DJANGO_SSE['PUSHPIN'] {problem}")


class _Outage:
    """Logs a failing publish endpoint once, and again once it works."""

    def __init__(self) -> None:
        self._failing: set[str] = set()
        self._lock = threading.Lock()

    def failed(self, url: str, error: Exception) -> None:
        with self._lock:
            first = url not in self._failing
            self._failing.add(url)
        if first:
            logger.error(
                "Publishing to Pushpin at %s failed (%s); its subscribers get the events "
                "from history once it answers again. Not logged again until then.",
                url,
                error,
            )

    def succeeded(self, url: str) -> None:
        with self._lock:
            if url not in self._failing:
                return
            self._failing.discard(url)
        logger.warning("Publishing to Pushpin at %s works again", url)


_outage = _Outage()


async def publish_items(items: list[dict[str, Any]]) -> None:
    """Send GRIP publish items to every Pushpin instance; failures are logged."""
    pushpin = settings()
    if pushpin is None or not items:
        return
    import httpx

    client = _client()
    for url in pushpin.publish_urls:
        try:
            response = await client.post(url, json={"items": items}, timeout=pushpin.timeout)
            response.raise_for_status()
        except httpx.HTTPError as error:
            _outage.failed(url, error)
        else:
            _outage.succeeded(url)


# One client per event loop, whose connections to Pushpin stay open between publishes.
# Sync publishers run each publish in an event loop of their own: their client goes
# with it.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def _client() -> Any:
    import httpx

    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = httpx.AsyncClient(verify=_tls())
    return client


@functools.cache
def _tls() -> ssl.SSLContext:
    """Made once: a new client's own takes about 20 ms, a publish's worth many times over."""
    return ssl.create_default_context()
