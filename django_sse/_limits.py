"""STREAM_LIMIT_PER_USER and STREAM_LIMIT_PER_ADDRESS: how many streams one user, or one
anonymous client address, may have open at once, in every process that shares a cache.

Each open stream holds one of its subject's slots: a key of Django's cache, named after
the subject and the slot's number, taken with ``add()`` (which sets only a key that is
absent: atomic on Redis, Memcached and the database cache) and given a lease. A thread
of each process renews the leases of its open streams in one ``set_many()`` every
RENEW_EVERY seconds, and a stream's close deletes its key. A process killed hard leaves
its slots taken until their leases run out: LEASE seconds at most. With Django's
default local-memory cache the slots, and so the limit, are per process.

A cache that fails lets the stream through, with an error in the log: a broken cache
must not take every stream down with it.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import threading
import time
from dataclasses import dataclass

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse

from django_sse import conf
from django_sse.stats import StreamStats

__all__ = ["LEASE", "RETRY_AFTER", "Slots", "acquire"]

logger = logging.getLogger("django_sse")

# Seconds a slot stays taken without renewal, and between renewals: a renewal may fail
# or come late twice before an open stream's slot could be taken by another.
LEASE = 60.0
RENEW_EVERY = 20.0
# Seconds a refused client is told to wait: slots free up as other streams close.
RETRY_AFTER = 5


@dataclass(frozen=True)
class Subject:
    """Whose streams are counted, and the setting that limits them."""

    key: str
    described: str
    setting: str
    limit: int


def subject_of(
    user_id: object, address: str | None, per_user: int | None, per_address: int | None
) -> Subject | None:
    """Logged-in users are counted per user, anonymous clients per address: a limit per
    address would also count everyone behind one office's or one phone network's NAT."""
    if user_id is not None:
        if per_user is None:
            return None
        return Subject(f"user:{user_id}", "you have", "STREAM_LIMIT_PER_USER", per_user)
    if per_address is None or address is None:
        return None
    return Subject(
        f"address:{address}",
        "your address has",
        "STREAM_LIMIT_PER_ADDRESS",
        per_address,
    )


class Slots:
    """The slot one stream holds; a stream observer that renews it while the stream is
    open and gives it back when the stream closes."""

    description = "Giving back the stream's slot"

    def __init__(self, alias: str, key: str, token: str) -> None:
        self.alias = alias
        self.key = key
        self.token = token

    def opened(self, stats: StreamStats) -> None:
        _renewer.hold(self)

    async def closed(self, stats: StreamStats) -> None:
        _renewer.drop(self)
        cache = caches[self.alias]
        try:
            # Only if still ours: a lease that ran out may have gone to another stream.
            if await cache.aget(self.key) == self.token:
                await cache.adelete(self.key)
        except Exception:
            logger.exception("Could not give back stream slot %s", self.key)


async def acquire(request: HttpRequest, subject: Subject) -> Slots | HttpResponse | None:
    """A free slot of ``subject``'s, the 429 that tells the client to come back, or None
    when the cache cannot be reached."""
    alias = str(conf.get("STREAM_LIMIT_CACHE"))
    token = secrets.token_hex(8)
    limit = subject.limit
    # From a random slot on: with a few streams open, the first try mostly succeeds.
    first = random.randrange(limit) if limit else 0
    try:
        cache = caches[alias]
        for step in range(limit):
            key = f"django_sse:stream-slot:{subject.key}:{(first + step) % limit}"
            if await cache.aadd(key, token, LEASE):
                return Slots(alias, key, token)
    except Exception:
        logger.exception("Stream limits could not reach cache %r; the stream is let through", alias)
        return None
    logger.warning(
        "Refused a stream at %s: %s %d open, the most %s allows",
        request.path,
        subject.key,
        limit,
        subject.setting,
    )
    response = HttpResponse(
        f"Too many streams: {subject.described} {limit} open, the most allowed at once. "
        f"Close one, or try again in {RETRY_AFTER} s.",
        status=429,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(RETRY_AFTER)
    return response


class _Renewer:
    """The process's thread that keeps its streams' slots leased."""

    def __init__(self) -> None:
        self._held: dict[Slots, None] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, slots: Slots) -> None:
        with self._lock:
            self._held[slots] = None
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="django_sse stream slots", daemon=True
                )
                self._thread.start()

    def drop(self, slots: Slots) -> None:
        with self._lock:
            self._held.pop(slots, None)

    def _run(self) -> None:
        while True:
            time.sleep(RENEW_EVERY)
            self.renew()

    def renew(self) -> None:
        with self._lock:
            held = list(self._held)
        by_cache: dict[str, dict[str, str]] = {}
        for slots in held:
            by_cache.setdefault(slots.alias, {})[slots.key] = slots.token
        for alias, leases in by_cache.items():
            try:
                caches[alias].set_many(leases, LEASE)
            except Exception:
                logger.exception("Could not renew %d stream slots in cache %r", len(leases), alias)

    def forget(self) -> None:
        """In a forked child: the parent's thread and streams are not there."""
        self._held = {}
        self._lock = threading.Lock()
        self._thread = None


_renewer = _Renewer()
os.register_at_fork(after_in_child=_renewer.forget)
