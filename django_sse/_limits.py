"""STREAM_LIMIT_PER_USER and STREAM_LIMIT_PER_ADDRESS: how many streams one user, or one
anonymous client address, may have open at once, in every process that shares a cache.

Each open stream holds one of its subject's slots: a key of Django's cache, named after
the subject and the slot's number, taken with ``add()`` (which sets only a key that is
absent: atomic on Redis, Memcached and the database cache) and given a lease. A thread
of each process renews the leases of its open streams in one ``set_many()`` every
RENEW_EVERY seconds, and a stream's close deletes its key. A process killed hard leaves
its slots taken until their leases run out: LEASE seconds at most. With Django's
default local-memory cache the slots, and so the limit, are per process.

A view's own limit counts the subject's streams of every view, whatever their limits.
So all of a subject's streams take their slots among as many as the largest limit that
the settings or any view give (``allow()``), and a stream gets in while fewer of them
than its own limit are taken: counted before its slot is taken, and again after. The
cache has no way to count and take in one step; the second count is what keeps streams
that start at the same moment from all getting in, as the one whose slot was taken last
counts the others'. It may count too many, when they all took theirs before any
counted: each then gives its slot back and tries again after a random moment.

A slot taken for a stream that never starts (the view failed, a middleware replaced its
response, the client left before it was sent) is given back too: it is a claim of the
task that took it until the stream opens (django_sse._claim).

A cache that fails lets the stream through, with an error in the log: a broken cache
must not take every stream down with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

from django_sse import conf
from django_sse._claim import Claim
from django_sse._closing import run_to_end
from django_sse._workers import in_worker
from django_sse.stats import StreamStats

__all__ = ["LEASE", "RETRY_AFTER", "Slots", "acquire", "allow"]

logger = logging.getLogger("django_sse")

# Seconds a slot stays taken without renewal, and between renewals: a renewal may fail
# or come late twice before an open stream's slot could be taken by another.
LEASE = 60.0
RENEW_EVERY = 20.0
# Seconds a refused client is told to wait: slots free up as other streams close.
RETRY_AFTER = 5
# Tries at a slot for streams that keep starting at the same moment as others, and the
# longest random wait between two: far longer than the cache takes to answer, so that
# they seldom meet again.
ATTEMPTS = 3
BACKOFF = 0.05

# The largest limit each setting's subjects are given anywhere: all their streams take
# their slots among that many, so that each view counts them all.
_largest: dict[str, int] = {}


def allow(setting: str, limit: int | None) -> None:
    """Note that a view lets the subjects ``setting`` counts have ``limit`` streams.

    Views declare their limits as they are defined and routed, before any request, so
    that every process that runs the same code counts the same slots."""
    if limit is None:
        return
    try:
        conf.limit(setting, limit)
    except ImproperlyConfigured:
        # Refused, with its message, where it is used; counted nowhere meanwhile, so
        # that one view's mistake cannot make every other view count too many slots.
        return
    if limit > _largest.get(setting, 0):
        _largest[setting] = limit


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
    open and gives it back when the stream closes, or, for a stream that never opens,
    soon after the task that took it has ended."""

    # One of these lives as long as each open stream.
    __slots__ = ("_claim", "alias", "key", "token")

    description = "Giving back the stream's slot"

    def __init__(self, alias: str, key: str, token: str) -> None:
        self.alias = alias
        self.key = key
        self.token = token
        self._claim: Claim | None = None

    def belong_to(self, owner: asyncio.Task[Any]) -> None:
        """Give the slot back soon after ``owner`` ends, unless its stream has opened."""
        self._claim = Claim(owner, self._delete)

    def opened(self, stats: StreamStats) -> None:
        # Renewing a slot given back could take it from another stream: a stream that
        # opens that late goes uncounted instead.
        if self._claim is not None and self._claim.take():
            _renewer.hold(self)

    async def closed(self, stats: StreamStats) -> None:
        _renewer.drop(self)
        await self._delete()

    async def give_back(self) -> None:
        """For a stream that will not open: give its slot back now, to the end whatever
        cancels the caller."""
        if self._claim is not None:
            self._claim.take()
        await run_to_end(self._delete())

    async def _delete(self) -> None:
        await in_worker(self.delete)

    def delete(self) -> None:
        cache = caches[self.alias]
        try:
            # Only if still ours: a lease that ran out may have gone to another stream.
            if cache.get(self.key) == self.token:
                cache.delete(self.key)
        except Exception:
            logger.exception("Could not give back stream slot %s", self.key)


async def acquire(request: HttpRequest, subject: Subject) -> Slots | HttpResponse | None:
    """A free slot of ``subject``'s, the 429 that tells the client to come back, or None
    when the cache cannot be reached."""
    owner = asyncio.current_task()
    if owner is None:
        raise RuntimeError("A stream slot belongs to a task: take it in one")
    alias = str(conf.get("STREAM_LIMIT_CACHE"))
    space = max(subject.limit, conf.limit(subject.setting) or 0, _largest.get(subject.setting, 0))
    keys = [f"django_sse:stream-slot:{subject.key}:{number}" for number in range(space)]
    try:
        slot = await _take(caches[alias], alias, keys, subject.limit) if subject.limit else None
    except Exception:
        logger.exception("Stream limits could not reach cache %r; the stream is let through", alias)
        return None
    if slot is not None:
        slot.belong_to(owner)
        return slot
    logger.warning(
        "Refused a stream at %s: %s has %d open or opening, the most %s allows",
        request.path,
        subject.key,
        subject.limit,
        subject.setting,
    )
    response = HttpResponse(
        f"Too many streams: {subject.described} {subject.limit} open or opening, the most "
        f"allowed at once. Close one, or try again in {RETRY_AFTER} s.",
        status=429,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(RETRY_AFTER)
    return response


async def _take(cache: BaseCache, alias: str, keys: list[str], limit: int) -> Slots | None:
    """One of ``keys`` while fewer than ``limit`` of them are taken; None once as many
    are, or when streams starting at the same moment kept taking the last ones too."""
    token = secrets.token_hex(8)
    for attempt in range(ATTEMPTS):
        if attempt:
            await asyncio.sleep(random.uniform(0, BACKOFF))
        taken = await cache.aget_many(keys)
        if len(taken) >= limit:
            return None
        # A random free one: streams starting at the same moment mostly try different ones.
        slot = Slots(alias, random.choice([key for key in keys if key not in taken]), token)
        if await _try(cache, slot, keys, limit):
            return slot
    return None


async def _try(cache: BaseCache, slot: Slots, keys: list[str], limit: int) -> bool:
    """Whether ``slot`` is taken, with no more than ``limit`` of ``keys``."""
    try:
        if not await cache.aadd(slot.key, slot.token, LEASE):
            return False
        if len(await cache.aget_many(keys)) <= limit:
            return True
    except BaseException:
        # A cancellation can come between the add and its answer: the slot may be ours.
        await slot.give_back()
        raise
    await slot.give_back()
    return False


class _Renewer:
    """The process's thread that keeps its streams' slots leased."""

    def __init__(self) -> None:
        self._held: dict[Slots, None] = {}
        # The slots of the renewal under way that closed while it ran: their stream's
        # close may have deleted a key that the renewal then wrote again.
        self._closed_while_renewing: set[Slots] | None = None
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
            if self._held.pop(slots, 0) is None and self._closed_while_renewing is not None:
                self._closed_while_renewing.add(slots)

    def _run(self) -> None:
        while True:
            time.sleep(RENEW_EVERY)
            self.renew()

    def renew(self) -> None:
        """Renew every held lease without holding the lock through the cache's answer
        (the event loop takes it to drop a slot); then delete again what closed meanwhile."""
        with self._lock:
            held = list(self._held)
            self._closed_while_renewing = set()
        try:
            by_cache: dict[str, dict[str, str]] = {}
            for slots in held:
                by_cache.setdefault(slots.alias, {})[slots.key] = slots.token
            for alias, leases in by_cache.items():
                try:
                    caches[alias].set_many(leases, LEASE)
                except Exception:
                    logger.exception(
                        "Could not renew %d stream slots in cache %r", len(leases), alias
                    )
        finally:
            with self._lock:
                closed, self._closed_while_renewing = self._closed_while_renewing, None
        for slots in closed:
            slots.delete()

    def forget(self) -> None:
        """In a forked child: the parent's thread and streams are not there."""
        self._held = {}
        self._closed_while_renewing = None
        self._lock = threading.Lock()
        self._thread = None


_renewer = _Renewer()
os.register_at_fork(after_in_child=_renewer.forget)
