"""Pushpin mode's settings, and publishing to Pushpin.

``DJANGO_SSE["PUSHPIN"]`` switches the mode on; this module is the one place that
reads and checks it. Publishing goes over Pushpin's HTTP publish endpoint, to every
instance listed. Publishing happens in the background, batched; a publish
that fails is logged once per outage, never raised: the event is stored in history
already, and Pushpin fetches what a connection missed (see _held.py) at the next event
of the channel, or at the latest after ``RECOVER_INTERVAL`` seconds.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import logging
import math
import os
import queue
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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


# The PUSHPIN dict last read, and what it was read as: settings() runs for each publish
# and each request of a ChannelView, and the URLs' checks are not free (9 µs each).
_last: tuple[dict[str, Any], PushpinSettings] | None = None


def settings() -> PushpinSettings | None:
    """The PUSHPIN setting, checked; None when Pushpin mode is off."""
    global _last
    value = conf.get("PUSHPIN")
    if value is None:
        return None
    if _last is None or _last[0] is not value:
        _last = (value, _read(value))
    return _last[1]


def _read(value: dict[str, Any]) -> PushpinSettings:
    unknown = set(value) - _KEYS
    if unknown:
        raise _error(f"has unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    if importlib.util.find_spec("httpx") is None:
        raise ImproperlyConfigured(
            "Pushpin mode publishes with httpx: pip install 'django-sse-kit[pushpin]'"
        )
    urls = value.get("PUBLISH_URL")
    urls = (urls,) if isinstance(urls, str) else urls
    if (
        not isinstance(urls, Sequence)
        or not urls
        or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls)
    ):
        raise _error("['PUBLISH_URL'] must be Pushpin's publish URL (http://...) or a list")
    for url in urls:
        _check_publish_url(url)
    key = value.get("SIG_KEY")
    if not isinstance(key, str) or not key:
        raise _error(
            "['SIG_KEY'] must be Pushpin's sig_key (its [proxy] setting): without it, "
            "anyone could claim a request came through Pushpin"
        )
    if "\r" in key or "\n" in key:
        # sse_pushpin writes it into pushpin.conf, where a line break would end the
        # setting and begin another.
        raise _error("['SIG_KEY'] must not contain a line break")
    prefix = value.get("CHANNEL_PREFIX", "django_sse.")
    if not isinstance(prefix, str) or any(c in prefix for c in ',;=" '):
        raise _error("['CHANNEL_PREFIX'] must be a str without , ; = \" or spaces")
    interval = value.get("RECOVER_INTERVAL", 300)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise _error("['RECOVER_INTERVAL'] must be a whole number of seconds, 1 or more")
    timeout = value.get("TIMEOUT", 5.0)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise _error("['TIMEOUT'] must be a number of seconds above 0")
    return PushpinSettings(tuple(urls), key.encode(), prefix, interval, float(timeout))


def _check_publish_url(url: str) -> None:
    """Refuses a URL that httpx (the publisher) or urllib (``sse_pushpin``, for its port)
    cannot parse: here it is a check error, while in the publisher it would fail every
    publish."""
    import httpx

    try:
        port = urlsplit(url).port
        host = httpx.URL(url).host
    except (ValueError, httpx.InvalidURL) as error:
        raise _error(f"['PUBLISH_URL'] {url!r} is not a valid URL: {error}") from None
    if not host:
        raise _error(f"['PUBLISH_URL'] {url!r} has no host")
    if port == 0:
        raise _error(f"['PUBLISH_URL'] {url!r} has port 0")


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


def publish_items(items: list[dict[str, Any]]) -> None:
    """Queue GRIP publish items for every Pushpin instance; they leave in the background.

    Returns at once: Pushpin answers a publish only once it has sent the one before to
    every connection (about 0.6 s at 20,000 of them, bench/README.md), and whoever
    publishes, a view most often, must not wait that long.
    """
    if items and settings() is not None:
        _publisher.put(items)


class _Publisher:
    """A thread of its own sends what is queued to Pushpin, in the order queued, as many
    items per request as are waiting (up to BATCH_ITEMS).

    A thread, not a task: sync code publishes from event loops that end with each call.
    At exit, what is still queued gets up to the publish timeout to leave, so that a
    short-lived process (``manage.py sse_publish``) has published when it ends.
    """

    BATCH_ITEMS = 100

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[list[dict[str, Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self._drained = threading.Condition(self._lock)

    def put(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="django_sse pushpin publisher", daemon=True
                )
                self._thread.start()
        self._queue.put(items)

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued has been sent (or failed); False on timeout."""
        with self._drained:
            return self._drained.wait_for(lambda: self._pending == 0, timeout)

    def forget(self) -> None:
        """In a forked child: the thread and what it had stayed in the parent."""
        self.__init__()  # type: ignore[misc]

    def _run(self) -> None:
        import httpx

        with httpx.Client(verify=_tls()) as client:
            while True:
                batches = [self._queue.get()]
                items = list(batches[0])
                while len(items) < self.BATCH_ITEMS:
                    try:
                        batches.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                    items += batches[-1]
                try:
                    self._send(client, items)
                except Exception:
                    # Whatever failed, the thread goes on: ended, it would leave every
                    # later event unpublished for the life of the process.
                    logger.exception("Publishing %d items to Pushpin failed", len(items))
                finally:
                    with self._drained:
                        self._pending -= len(batches)
                        self._drained.notify_all()

    @staticmethod
    def _send(client: Any, items: list[dict[str, Any]]) -> None:
        import httpx

        pushpin = settings()
        if pushpin is None:
            return
        for url in pushpin.publish_urls:
            try:
                response = client.post(url, json={"items": items}, timeout=pushpin.timeout)
                response.raise_for_status()
            except httpx.HTTPError as error:
                _outage.failed(url, error)
            else:
                _outage.succeeded(url)


_publisher = _Publisher()
os.register_at_fork(after_in_child=_publisher.forget)


@atexit.register
def _drain_at_exit() -> None:
    pushpin = settings() if _publisher._thread is not None else None
    if pushpin is not None:
        _publisher.drain(pushpin.timeout)


@functools.cache
def _tls() -> ssl.SSLContext:
    """Made once: a new client's own takes about 20 ms, a publish's worth many times over."""
    return ssl.create_default_context()
