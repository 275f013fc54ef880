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
import json
import logging
import math
import os
import re
import ssl
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from django_sse import conf

__all__ = ["PushpinSettings", "publish_items", "settings"]

logger = logging.getLogger("django_sse")

_KEYS = {"PUBLISH_URL", "SIG_KEY", "SIG_ISS", "CHANNEL_PREFIX", "RECOVER_INTERVAL", "TIMEOUT"}
# The prefix goes into GRIP headers (where , ; = " and spaces are syntax, and a line
# break would end the header) and into the id format of build-id, where % and ( )
# are: a stream of several channels would end at its first event.
_PREFIX = re.compile(r"[A-Za-z0-9_.:/-]*")


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
    # Pushpin's sig_iss: when set, a Grip-Sig must name it as its issuer, so that a JWT
    # signed with the same key for another purpose does not pass for Pushpin's.
    sig_iss: str | None = None


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
        # repr: a key may be anything hashable, and keys of different types don't sort.
        named = ", ".join(sorted(map(repr, unknown)))
        raise _error(f"has unknown keys [{named}]; known: {sorted(_KEYS)}")
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
    _check_conf_value("SIG_KEY", key)
    issuer = value.get("SIG_ISS")
    if issuer is not None:
        if not isinstance(issuer, str) or not issuer:
            raise _error("['SIG_ISS'] must be None or Pushpin's sig_iss (its [proxy] setting)")
        _check_conf_value("SIG_ISS", issuer)
    prefix = value.get("CHANNEL_PREFIX", "django_sse.")
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise _error("['CHANNEL_PREFIX'] must be a str of ASCII letters, digits and - _ . : / only")
    interval = value.get("RECOVER_INTERVAL", 300)
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int)
        or not 1 <= interval <= conf.MAX_SECONDS
    ):
        raise _error("['RECOVER_INTERVAL'] must be a whole number of seconds from 1 to 1e9")
    timeout = value.get("TIMEOUT", 5.0)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or not 0 < timeout <= conf.MAX_SECONDS
    ):
        raise _error("['TIMEOUT'] must be a number of seconds above 0, at most 1e9")
    return PushpinSettings(
        tuple(urls), key.encode(), prefix, interval, float(timeout), sig_iss=issuer
    )


def _check_conf_value(name: str, value: str) -> None:
    """sse_pushpin writes it into pushpin.conf, where a line break would end the
    setting and begin another."""
    if "\r" in value or "\n" in value:
        raise _error(f"[{name!r}] must not contain a line break")


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


def publish_items(items: list[dict[str, Any]], *, must_arrive: bool = False) -> None:
    """Queue GRIP publish items for every Pushpin instance; they leave in the background.

    Returns at once: Pushpin answers a publish only once it has sent the one before to
    every connection (about 0.6 s at 20,000 of them, bench/README.md), and whoever
    publishes, a view most often, must not wait that long.

    Items that ``must_arrive`` (revoke()'s closes: nothing else would end the streams)
    are sent again until each Pushpin takes them; the others are events in history,
    which Pushpin fetches itself when one does not arrive.
    """
    if items and settings() is not None:
        _publisher.put(items, must_arrive=must_arrive)


class _Publisher:
    """A thread of its own sends what is queued to Pushpin, in the order queued, as many
    items per request as are waiting (up to BATCH_ITEMS).

    A thread, not a task: sync code publishes from event loops that end with each call.
    At exit, what is still queued gets up to the publish timeout to leave, so that a
    short-lived process (``manage.py sse_publish``) has published when it ends.

    The queue is bounded: while Pushpin takes fewer events than are published (it is
    slow, or its publishes time out), the oldest events are dropped, newest kept. Each
    is in history, and the next one of its channel tells Pushpin what it missed.
    """

    BATCH_ITEMS = 100
    # Events queued at most: about 10 MB of small events.
    MAX_QUEUED_ITEMS = 10_000
    # Seconds between tries of items that must arrive, while a Pushpin refuses them.
    RETRY_DELAY = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # (item, must_arrive), in the order published.
        self._queue: deque[tuple[dict[str, Any], bool]] = deque()
        # Items that must arrive, per publish URL that has not taken them yet.
        self._retry: dict[str, list[dict[str, Any]]] = {}
        self._sending = False
        self._dropping = False
        self._thread: threading.Thread | None = None

    def put(self, items: list[dict[str, Any]], must_arrive: bool = False) -> None:
        with self._changed:
            self._queue.extend((item, must_arrive) for item in items)
            if len(self._queue) > self.MAX_QUEUED_ITEMS:
                self._drop_oldest()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="django_sse pushpin publisher", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()

    def _drop_oldest(self) -> None:
        """Down to half the bound at once, so that a publish pays for this rarely."""
        excess = len(self._queue) - self.MAX_QUEUED_ITEMS // 2
        kept: deque[tuple[dict[str, Any], bool]] = deque()
        for entry in self._queue:
            if excess > 0 and not entry[1]:
                excess -= 1
            else:
                kept.append(entry)
        self._queue = kept
        if not self._dropping:
            self._dropping = True
            logger.warning(
                "Pushpin takes fewer events than are published: the oldest queued for it "
                "are dropped (its subscribers get them from history). Not logged again "
                "until the queue empties."
            )

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued has been sent (or failed, or given up on: items
        that must arrive are retried meanwhile); False on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: not self._queue and not self._sending and not self._retry, timeout
            )

    def forget(self) -> None:
        """In a forked child: the thread and what it had stayed in the parent."""
        self.__init__()  # type: ignore[misc]

    def _next(self) -> tuple[list[dict[str, Any]], set[int]]:
        """The next batch, and the ids of its items that must arrive; waits for one, or
        until items that must arrive are due again."""
        with self._changed:
            while not self._queue:
                if self._retry:
                    if not self._changed.wait(self.RETRY_DELAY) and not self._queue:
                        self._sending = True
                        return [], set()
                else:
                    self._dropping = False
                    self._changed.wait()
            batch = [self._queue.popleft() for _ in range(min(self.BATCH_ITEMS, len(self._queue)))]
            self._sending = True
        return [item for item, _ in batch], {id(item) for item, must in batch if must}

    def _run(self) -> None:
        import httpx

        with httpx.Client(verify=_tls()) as client:
            while True:
                items, must_arrive = self._next()
                try:
                    self._send(client, items, must_arrive)
                except Exception:
                    # Whatever failed, the thread goes on: ended, it would leave every
                    # later event unpublished for the life of the process.
                    logger.exception("Publishing %d items to Pushpin failed", len(items))
                finally:
                    with self._changed:
                        self._sending = False
                        self._changed.notify_all()

    def _send(self, client: Any, items: list[dict[str, Any]], must_arrive: set[int]) -> None:
        import httpx

        pushpin = settings()
        if pushpin is None:
            with self._lock:
                self._retry.clear()
            return
        for url in pushpin.publish_urls:
            with self._lock:
                retried = self._retry.pop(url, [])
            # What this Pushpin refused before goes first: a close before later events.
            payload = retried + items
            if not payload:
                continue
            try:
                response = client.post(url, json={"items": payload}, timeout=pushpin.timeout)
                response.raise_for_status()
            except Exception as error:
                again = retried + [item for item in items if id(item) in must_arrive]
                if again:
                    with self._lock:
                        self._retry[url] = _unique(again)
                if not isinstance(error, httpx.HTTPError):
                    raise  # logged with its traceback by _run()
                _outage.failed(url, error)
            else:
                _outage.succeeded(url)


def _unique(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without repeats, in order: a revoke() repeated during an outage is sent once."""
    return list({json.dumps(item, sort_keys=True): item for item in items}.values())


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
