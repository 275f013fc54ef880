"""The hub: one per event loop, the only reader of the channel layer in its process.

It holds one layer channel, joined to the group of every channel that has a local
subscriber, and fans each event out to those subscribers' queues in memory: the layer
carries an event once per process, however many streams follow the channel there.

The hub also keeps each channel's events in order for its subscribers. Layers drop
messages (they are at-most-once, and refuse what exceeds a channel's capacity), and
an in-memory layer never sees what other processes publish, so the hub reads what it
missed from history: when a message arrives ahead of the last one it fanned out, and
when a periodic look at the channels' sequence numbers shows it behind. One history
read per process, instead of one per subscriber. Subscribers still check the order
themselves (see _subscription.py); the hub only makes that check rarely fire.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections.abc import Coroutine
from typing import Any, Protocol

from django_sse import _metrics, conf
from django_sse.broadcast import _history
from django_sse.broadcast._channels import group_name
from django_sse.broadcast._history import EVENT_MESSAGE, StoredEvent
from django_sse.broadcast._layer import get_layer, is_local
from django_sse.stats import Outcome

__all__ = ["FOLLOW_MESSAGE", "REVOKE_MESSAGE", "STOP_MESSAGE", "Hub", "Subscriber", "get_hub"]

logger = logging.getLogger("django_sse")

REVOKE_MESSAGE = "django_sse.revoke"
# Asks whatever produces a channel's events (e.g. an LLM generation) to stop; streams
# following the channel ignore it.
STOP_MESSAGE = "django_sse.stop"
# Tells whatever produces a channel's events that a stream follows it.
FOLLOW_MESSAGE = "django_sse.follow"
# Such messages to producers, by type: the method of the subscriber they call, if it
# has one.
_PRODUCER_MESSAGES = {STOP_MESSAGE: "stop", FOLLOW_MESSAGE: "followed"}
# Seconds to wait before receiving again after the layer failed (e.g. Redis restarting).
RECEIVE_RETRY = 1.0


class Subscriber(Protocol):
    channels: tuple[str, ...]
    # The subscribing user's primary key as a str, for revoke(); None if anonymous.
    user: str | None

    def push(self, stored: StoredEvent) -> bool:
        """Queue an event; False if the subscriber has ended and takes no more."""

    def end(self, outcome: Outcome) -> None:
        """End the subscriber's stream with this outcome."""


class _Feed:
    """One channel's local subscribers and how far the hub has fanned it out."""

    __slots__ = ("channel", "last", "lock", "polled", "subscribers")

    def __init__(self, channel: str) -> None:
        self.channel = channel
        # In the order they joined (a dict, not a set): a fan-out then visits the
        # streams' objects roughly in the order they sit in memory, which with thousands
        # of streams is measurably faster than a set's scattered order.
        self.subscribers: dict[Subscriber, None] = {}
        # The highest sequence number fanned out (or known to need no fan-out).
        self.last: int | None = None
        # The channel's sequence number at the previous poll.
        self.polled = 0
        # Orders fan-out between the receive loop and the poll.
        self.lock = asyncio.Lock()

    def fan_out(self, stored: StoredEvent) -> None:
        ended = [sub for sub in self.subscribers if not sub.push(stored)]
        for sub in ended:
            del self.subscribers[sub]
        if self.last is None or stored.seq > self.last:
            self.last = stored.seq

    async def offer(self, stored: StoredEvent) -> None:
        async with self.lock:
            if self.last is not None and stored.seq > self.last + 1:
                try:
                    await self._fill(stored.seq - 1)
                except Exception:
                    # The event still goes out: each subscriber sees the gap and reads
                    # it from history itself (see _subscription.py).
                    logger.exception("Reading the missed events of %r failed", self.channel)
            # Unless history brought it already (a page read for a gap, or the poll,
            # may hold it): every subscriber would queue the copy and wake to drop it.
            if self.last is None or stored.seq > self.last:
                self.fan_out(stored)

    async def catch_up(self, target: int) -> None:
        async with self.lock:
            if self.last is not None and target > self.last:
                await self._fill(target)

    async def _fill(self, target: int) -> None:
        assert self.last is not None
        channel = self.channel
        async for stored in _history.catch_up({channel: self.last}, {channel: target}):
            self.fan_out(stored)


class Hub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self._local = is_local(layer)
        self._feeds: dict[str, _Feed] = {}
        # Groups the layer channel is in: changed only under _membership, so that a
        # channel's last subscriber leaving and a new first one arriving cannot leave
        # the layer disagreeing with _feeds.
        self._joined: set[str] = set()
        self._membership = asyncio.Lock()
        self._channel_name: str | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def idle(self) -> bool:
        return not self._feeds and self._channel_name is None

    async def subscribe(self, subscriber: Subscriber) -> None:
        """Start fanning out the subscriber's channels to it; returns once joined."""
        for channel in subscriber.channels:
            feed = self._feeds.get(channel)
            if feed is None:
                feed = self._feeds[channel] = _Feed(channel)
            feed.subscribers[subscriber] = None
        await self._sync_membership()

    async def unsubscribe(self, subscriber: Subscriber) -> None:
        for channel in subscriber.channels:
            feed = self._feeds.get(channel)
            if feed is not None:
                feed.subscribers.pop(subscriber, None)
                if not feed.subscribers:
                    del self._feeds[channel]
        await self._sync_membership()

    async def _sync_membership(self) -> None:
        async with self._membership:
            if self._feeds and self._channel_name is None:
                self._channel_name = await self.layer.new_channel()
                self._start(self._receive())
                self._start(self._tick())
            # Subscribers come and go during every await below: repeat until the
            # layer's groups match the feeds, and every feed has started.
            while True:
                leaving = [channel for channel in self._joined if channel not in self._feeds]
                joining = [channel for channel in self._feeds if channel not in self._joined]
                # Not only the joining ones: a feed made anew while its channel was still
                # joined (its last subscriber left, a new one came, while another
                # subscription held this lock), or one whose start a disconnect
                # cancelled, has not started either.
                unstarted = [channel for channel, feed in self._feeds.items() if feed.last is None]
                if not leaving and not joining and not unstarted:
                    break
                for channel in leaving:
                    await self._leave(channel)
                # Recorded before the await: a cancelled call may or may not have
                # reached the layer, and a needless discard later is harmless.
                self._joined.update(joining)
                for channel in joining:
                    await self.layer.group_add(group_name(channel), self._channel_name)
                if unstarted:
                    await self._start_feeds(unstarted)
            if not self._feeds and self._channel_name is not None:
                self._stop()

    async def _leave(self, channel: str) -> None:
        self._joined.discard(channel)
        try:
            await self.layer.group_discard(group_name(channel), self._channel_name)
        except Exception:
            # Not the leaving stream's failure: the membership expires with the
            # layer's group_expiry, and meanwhile its messages are ignored.
            logger.exception("Could not leave the channel layer group of %r", channel)

    async def _start_feeds(self, channels: list[str]) -> None:
        """Set where new feeds start: the sequence numbers once the groups are joined.

        Every later event reaches the hub through the layer or the poll. A subscriber
        starts from a position it reads after this, so it needs nothing earlier. Until
        then a feed's ``last`` is None, and neither the poll nor a gap can repair it:
        with an in-memory layer, no event of another process would ever reach it.
        """
        heads = await _history.in_worker(_history.heads, channels)
        for channel, head in heads.items():
            feed = self._feeds.get(channel)
            if feed is not None:
                feed.polled = head
                if feed.last is None or head > feed.last:
                    feed.last = head

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        # In a fresh context: the hub outlives the request whose stream started it.
        task = contextvars.Context().run(asyncio.get_running_loop().create_task, work)
        self._tasks.append(task)

    def _stop(self) -> None:
        # Not awaited: a task that does not end (see _receive) must not hold up
        # the membership lock, and with it every new subscriber.
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        self._channel_name = None

    async def _receive(self) -> None:
        assert self._channel_name is not None
        channel_name = self._channel_name
        task = asyncio.current_task()
        while task in self._tasks:
            try:
                message = await self.layer.receive(channel_name)
            except Exception:
                if task not in self._tasks:
                    # Stopped, and the layer's client turned the cancellation into
                    # an error of its own (redis-py's read timeout can).
                    return
                logger.exception(
                    "Receiving from the channel layer failed; retrying in %s s", RECEIVE_RETRY
                )
                await asyncio.sleep(RECEIVE_RETRY)
                # Whatever failed may have lost the group memberships too.
                await self._rejoin()
                continue
            try:
                await self._dispatch(message)
            except Exception:
                # One message's failure must not end the only reader of the layer.
                logger.exception(
                    "Handling a channel layer message (%r, channel %r) failed",
                    message.get("type"),
                    message.get("channel"),
                )

    async def _dispatch(self, message: dict[str, Any]) -> None:
        feed = self._feeds.get(message.get("channel", ""))
        if feed is None:
            return
        if message.get("type") == EVENT_MESSAGE:
            await feed.offer(StoredEvent.from_message(message))
            if "published_at" in message:
                _metrics.event_delivered(float(message["published_at"]))
        elif message.get("type") == REVOKE_MESSAGE:
            for subscriber in list(feed.subscribers):
                if subscriber.user is not None and subscriber.user == message.get("user"):
                    subscriber.end(Outcome.REVOKED)
        elif message.get("type") in _PRODUCER_MESSAGES:
            method = _PRODUCER_MESSAGES[message["type"]]
            for subscriber in list(feed.subscribers):
                handler = getattr(subscriber, method, None)
                if handler is not None:
                    handler()

    async def _tick(self) -> None:
        """Poll history, and renew group memberships before the layer expires them."""
        loop = asyncio.get_running_loop()
        poll_interval = conf.get("BROADCAST_POLL_INTERVAL")
        renew_interval = float(getattr(self.layer, "group_expiry", 86400)) / 2
        renew_at = loop.time() + renew_interval
        while True:
            await asyncio.sleep(min(poll_interval or renew_interval, renew_interval))
            if poll_interval:
                try:
                    await self._poll()
                except Exception:
                    logger.exception("Reading broadcast history failed")
            if loop.time() >= renew_at:
                renew_at = loop.time() + renew_interval
                await self._rejoin()

    async def _poll(self) -> None:
        feeds = list(self._feeds.values())
        if not feeds:
            return
        heads = await _history.in_worker(_history.heads, [feed.channel for feed in feeds])
        for feed in feeds:
            head = heads[feed.channel]
            # A shared layer is given one poll's time to deliver what history has, so
            # a busy channel is not read twice; a local one never gets other
            # processes' events at all.
            target = head if self._local else feed.polled
            feed.polled = head
            await feed.catch_up(target)

    async def _rejoin(self) -> None:
        async with self._membership:
            if self._channel_name is None:
                return
            for channel in list(self._joined):
                try:
                    await self.layer.group_add(group_name(channel), self._channel_name)
                except Exception:
                    logger.exception("Could not renew the channel layer group of %r", channel)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """This event loop's hub, on the layer the settings name now."""
    loop = asyncio.get_running_loop()
    layer = get_layer()
    hub = _hubs.get(loop)
    if hub is None or (hub.layer is not layer and hub.idle):
        hub = _hubs[loop] = Hub(layer)
    return hub
