"""One stream's subscription: replay from history, then live events, each exactly once.

The seam between the two is where other implementations lose or repeat events. Here
the subscription joins the hub first, so live events queue up while history is read;
it then reads the channels' sequence numbers and replays history up to them, and only
then drains the queue, skipping what it has already sent. An event published while
history was being read is in the queue, in history, or both, never neither.

Every event is checked against the stream's position in its channel: one already sent
is skipped, and one that arrives with a gap before it (the layer dropped messages)
waits until the gap is read from history. What history no longer has is announced
with a ``reset`` event instead of being skipped silently.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping

from django_sse import conf
from django_sse.broadcast import _history
from django_sse.broadcast._channels import format_id, parse_id, validate_channels
from django_sse.broadcast._history import StoredEvent
from django_sse.broadcast._hub import Hub, get_hub
from django_sse.broadcast._publish import RESET
from django_sse.protocol import Event
from django_sse.stats import Outcome

__all__ = ["Subscription"]

# Why a reset event was sent: events were pruned from history before the stream got
# them, the client's Last-Event-ID is beyond the channel's last event (its history
# was wiped), or the Last-Event-ID is not one of ours.
EXPIRED = "expired"
AHEAD = "ahead"
INVALID = "invalid"


class Subscription:
    """Events of ``channels`` from after ``last_event_id`` on, as SSE Events.

    ``async with subscription:`` joins the hub (and leaves it on exit); iterating it
    inside yields the events.

    ``on_end`` is called when the hub ends the subscription: its queue overflowed
    (outcome ``slow_consumer``) or its user's access was revoked (``revoked``).

    ``offer`` takes an event straight to the stream, bypassing this subscription's
    iterator (``SSEResponse.offer``). The subscription uses it for the next event in
    order while the iterator waits, which saves waking it for every event.

    ``since`` is where a channel starts that the Last-Event-ID does not name: the
    channel's sequence number when the request was accepted. Without it such a
    channel starts at its head when the subscription joins the hub, a moment after
    the response has gone out, and an event published in that moment would be
    neither replayed nor delivered.
    """

    __slots__ = (
        "_capacity",
        "_ended",
        "_hub",
        "_last_event_id",
        "_offer",
        "_opening",
        "_positions",
        "_queue",
        "_since",
        "_waiter",
        "channels",
        "on_end",
        "user",
    )

    def __init__(
        self,
        channels: Iterable[str],
        last_event_id: str | None = None,
        *,
        user: str | None = None,
        on_end: Callable[[Outcome], None] | None = None,
        since: Mapping[str, int] | None = None,
        offer: Callable[[Event], bool] | None = None,
    ) -> None:
        self.channels = validate_channels(channels)
        self._offer = offer
        # What the stream starts from: read once, by _start(), then let go of.
        self._since = since
        self.user = user
        self.on_end = on_end
        self._last_event_id = last_event_id
        # The last sequence number sent (or skipped by a reset), per channel.
        self._positions: dict[str, int] = {}
        # Events waiting for the source, created as the first one must wait and let go
        # of once drained: an empty deque is 0.7 KiB, and an idle subscriber has none.
        self._queue: deque[StoredEvent] | None = None
        self._capacity: int = conf.get("BROADCAST_QUEUE_SIZE")
        self._waiter: asyncio.Future[None] | None = None
        self._ended: Outcome | None = None
        self._hub: Hub
        # The resets for what the Last-Event-ID cannot resume, and each channel's
        # sequence number right after joining the hub: the stream starts with both.
        self._opening: tuple[list[Event], dict[str, int]] | None = None

    async def __aenter__(self) -> Subscription:
        """Join the hub, then read where each channel is: nothing published after
        this returns can be missed."""
        self._hub = get_hub()
        try:
            await self._hub.subscribe(self)
            heads = await _history.in_worker(_history.heads, self.channels)
        except BaseException:
            await self._hub.unsubscribe(self)
            raise
        self._opening = (self._start(heads), heads)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._hub.unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        """Replay, then live events, until the hub ends the subscription."""
        async for event in self._catch_up():
            yield event
        while (stored := await self._next()) is not None:
            if stored.seq > self._positions[stored.channel] + 1:
                async for event in self._replay({stored.channel: stored.seq - 1}):
                    yield event
            for event in self._deliver(stored):
                yield event

    async def _catch_up(self) -> AsyncIterator[Event]:
        """The resets, then history up to the heads read on joining. Its own generator,
        so that an idle stream keeps none of it."""
        if self._opening is None:
            raise RuntimeError("A subscription is iterated inside `async with` only")
        resets, heads = self._opening
        self._opening = None
        for event in resets:
            yield event
        async for event in self._replay(self._behind(heads)):
            yield event

    async def backlog(self, limit: int) -> tuple[list[Event], bool]:
        """Without joining the hub: the resets and the events history has after the
        starting positions, up to each channel's head now; at most about ``limit``, and
        whether more remain. What a stream that Pushpin holds starts with (_held.py)."""
        heads = await _history.in_worker(_history.heads, self.channels)
        events = self._start(heads)
        behind = self._behind(heads)
        async for event in self._replay(behind):
            events.append(event)
            if len(events) >= limit:
                return events, any(self._positions[c] < head for c, head in behind.items())
        return events, False

    @property
    def positions(self) -> dict[str, int]:
        """The last sequence number sent (or skipped by a reset), per channel."""
        return dict(self._positions)

    # Called by the hub.

    def push(self, stored: StoredEvent) -> bool:
        if self._ended is not None:
            return False
        offer = self._offer
        if offer is not None and self._waiter is not None and not self._queue:
            # The next event in order, while the iterator waits: straight to the stream.
            # Inline, not a method: a fan-out runs this for every subscriber.
            positions, channel = self._positions, stored.channel
            position = positions[channel]
            if stored.seq == position + 1:
                positions[channel] = stored.seq
                if offer(self._event(stored)):
                    return True
                positions[channel] = position
        if self._queue is None:
            self._queue = deque()
        if len(self._queue) >= self._capacity:
            self.end(Outcome.SLOW_CONSUMER)
            return False
        self._queue.append(stored)
        self._wake()
        return True

    def end(self, outcome: Outcome) -> None:
        if self._ended is not None:
            return
        self._ended = outcome
        self._queue = None
        self._wake()
        if self.on_end is not None:
            self.on_end(outcome)

    # The stream's side.

    def _start(self, heads: dict[str, int]) -> list[Event]:
        """Set the starting positions; resets for what the Last-Event-ID cannot resume."""
        since, last_event_id = self._since or {}, self._last_event_id
        self._since = self._last_event_id = None
        requested: dict[str, int] | None = {}
        if last_event_id:  # an empty id is the spec's way of saying "none"
            requested = parse_id(last_event_id, self.channels)
        resets: list[tuple[str, str]] = []
        for channel, head in heads.items():
            asked = None if requested is None else requested.get(channel)
            if asked is None or asked > head:
                self._positions[channel] = min(since.get(channel, head), head)
                if requested is None:
                    resets.append((channel, INVALID))
                elif asked is not None:
                    resets.append((channel, AHEAD))
            else:
                self._positions[channel] = asked
        return [
            self._reset(channel, reason, self._positions[channel] + 1) for channel, reason in resets
        ]

    def _behind(self, heads: dict[str, int]) -> dict[str, int]:
        """The channels whose head is past this stream's position, with that head."""
        return {c: head for c, head in heads.items() if self._positions[c] < head}

    async def _replay(self, targets: dict[str, int]) -> AsyncIterator[Event]:
        """History up to each channel's target; a reset for what history lacks."""
        after = {channel: self._positions[channel] for channel in targets}
        async for stored in _history.catch_up(after, targets):
            for event in self._deliver(stored):
                yield event
        for channel, target in targets.items():
            if self._positions[channel] < target:
                yield self._reset(channel, EXPIRED, target + 1)

    def _deliver(self, stored: StoredEvent) -> list[Event]:
        channel, seq = stored.channel, stored.seq
        position = self._positions[channel]
        if seq <= position:
            return []
        events = [self._reset(channel, EXPIRED, seq)] if seq > position + 1 else []
        self._positions[channel] = seq
        events.append(self._event(stored))
        return events

    def _event(self, stored: StoredEvent) -> Event:
        """``stored`` as this stream sends it, once its position has moved to it."""
        if len(self._positions) == 1:
            return stored.as_event()
        return Event(data=stored.data, event=stored.event or None, id=format_id(self._positions))

    def _reset(self, channel: str, reason: str, first_seq: int) -> Event:
        """Tell the client it missed events of ``channel``; the stream goes on at first_seq."""
        self._positions[channel] = first_seq - 1
        return Event(
            event=RESET,
            data={"channel": channel, "reason": reason, "first_seq": first_seq},
            id=format_id(self._positions),
        )

    async def _next(self) -> StoredEvent | None:
        """The next queued event; None once the hub has ended the subscription."""
        while not self._queue and self._ended is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        queue = self._queue
        if not queue or self._ended is not None:
            return None
        stored = queue.popleft()
        if not queue:
            self._queue = None
        return stored

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
