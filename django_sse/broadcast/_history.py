"""The history store: sequence numbers, recent events for replay, and pruning.

Functions here are synchronous ORM code. The event loop calls them through
``in_worker()``, which runs them in a worker thread and closes the thread's database
connection afterwards, so neither the loop nor an open stream holds a connection.
Everything reads from and writes to the database the router picks for writes: a
replica that lags behind would make gaps look unfillable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone

from django_sse import conf
from django_sse._workers import in_worker
from django_sse.broadcast.models import BroadcastChannel, BroadcastEvent
from django_sse.protocol import Event

__all__ = [
    "EVENT_MESSAGE",
    "StoredEvent",
    "append",
    "catch_up",
    "database",
    "heads",
    "in_worker",
    "prune",
    "prune_due",
    "read",
]


# Events per history query, for replays and gap fills alike.
PAGE_SIZE = 500
# A channel is pruned on every PRUNE_EVERY-th publish, one batch at most, so a publish
# never pays for more than one bounded DELETE; sse_prune_history does the rest.
PRUNE_EVERY = 100
PRUNE_BATCH = 1000

EVENT_MESSAGE = "django_sse.event"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event of a channel, as kept in history and as carried by the channel layer."""

    channel: str
    seq: int
    event: str  # "" for the default type, "message"
    data: str
    _sse_event: Event | None = field(default=None, init=False, repr=False, compare=False)

    def as_event(self) -> Event:
        """This event as a single-channel stream sends it: its id is the sequence number.

        Built once and shared by every such stream in the process, so it is also
        encoded once (Event keeps its bytes) however many subscribers there are.
        """
        if self._sse_event is None:
            event = Event(data=self.data, event=self.event or None, id=str(self.seq))
            object.__setattr__(self, "_sse_event", event)
        assert self._sse_event is not None
        return self._sse_event

    def as_message(self, published_at: float) -> dict[str, Any]:
        """The layer's message; ``published_at`` (time.time()) times its delivery."""
        return {
            "type": EVENT_MESSAGE,
            "channel": self.channel,
            "seq": self.seq,
            "event": self.event,
            "data": self.data,
            "published_at": published_at,
        }

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> StoredEvent:
        return cls(message["channel"], int(message["seq"]), message["event"], message["data"])


def database() -> str:
    return router.db_for_write(BroadcastEvent)


def append(channel: str, event: str, data: str) -> StoredEvent:
    """Store an event under the channel's next sequence number.

    The counter is incremented before it is read: the UPDATE (on MariaDB/MySQL, an
    upsert) takes the row's write lock at once, so concurrent publishers queue up
    behind it instead of reading the same value (or, on SQLite, deadlocking while
    upgrading a read lock). Inside an outer transaction the lock is held until that
    transaction ends, so sequence numbers follow commit order.
    """
    using = database()
    counters = BroadcastChannel.objects.using(using).filter(name=channel)
    with transaction.atomic(using=using):
        if connections[using].vendor == "mysql":
            _increment_mysql(using, channel)
        elif not counters.update(last_seq=F("last_seq") + 1):
            try:
                with transaction.atomic(using=using):
                    BroadcastChannel.objects.using(using).create(name=channel, last_seq=1)
            except IntegrityError:  # another publisher created it first
                counters.update(last_seq=F("last_seq") + 1)
        seq = counters.values_list("last_seq", flat=True).get()
        BroadcastEvent.objects.using(using).create(
            channel=channel, seq=seq, event=event, data=data, created_at=timezone.now()
        )
    return StoredEvent(channel, seq, event, data)


def _increment_mysql(using: str, channel: str) -> None:
    """Create or increment the channel's counter in one statement, on MariaDB/MySQL.

    InnoDB keeps the shared lock a duplicate INSERT takes on the existing row, even
    after rolling back to the savepoint; two publishers that both lost the race to
    create a channel's counter then both wait to UPDATE it, and one of them fails
    with a deadlock. INSERT ... ON DUPLICATE KEY UPDATE takes the write lock at once.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    table = quote(BroadcastChannel._meta.db_table)
    columns = {field.name: field.column for field in BroadcastChannel._meta.concrete_fields}
    name, last_seq = quote(str(columns["name"])), quote(str(columns["last_seq"]))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({name}, {last_seq}) VALUES (%s, 1)"
            f" ON DUPLICATE KEY UPDATE {last_seq} = {last_seq} + 1",
            [channel],
        )


def heads(channels: Iterable[str]) -> dict[str, int]:
    """Each channel's last sequence number; 0 for a channel never published to."""
    channels = list(channels)
    found = dict(
        BroadcastChannel.objects.using(database())
        .filter(name__in=channels)
        .values_list("name", "last_seq")
    )
    return {channel: found.get(channel, 0) for channel in channels}


def last(channel: str) -> StoredEvent | None:
    """The channel's latest event still in history."""
    row = (
        BroadcastEvent.objects.using(database())
        .filter(channel=channel)
        .order_by("-seq")
        .values_list("channel", "seq", "event", "data")
        .first()
    )
    return None if row is None else StoredEvent(*row)


def read(after: Mapping[str, int], limit: int = PAGE_SIZE) -> list[StoredEvent]:
    """Up to ``limit`` events that follow the given positions, in publishing order.

    Within a channel, insertion order is sequence order (the counter's lock is held
    while the row is inserted), so ordering by primary key interleaves several
    channels the way they were published.
    """
    if not after:
        return []
    rows = (
        BroadcastEvent.objects.using(database())
        .filter(reduce(or_, (Q(channel=c, seq__gt=seq) for c, seq in after.items())))
        .order_by("pk")
        .values_list("channel", "seq", "event", "data")[:limit]
    )
    return [StoredEvent(*row) for row in rows]


async def catch_up(
    after: Mapping[str, int], targets: Mapping[str, int]
) -> AsyncIterator[StoredEvent]:
    """Events from history after ``after`` until each channel reaches its target.

    Reads page by page; stops early when history runs out, so a channel that ends
    below its target had events pruned (or is being caught up by a reader that
    already has them). May yield events beyond a target, never fewer than exist.
    """
    positions = dict(after)
    pending = {c: target for c, target in targets.items() if positions[c] < target}
    while pending:
        page = await in_worker(read, {c: positions[c] for c in pending})
        for stored in page:
            positions[stored.channel] = stored.seq
            yield stored
        if len(page) < PAGE_SIZE:
            return
        pending = {c: target for c, target in pending.items() if positions[c] < target}


def prune_due(seq: int) -> bool:
    return seq % PRUNE_EVERY == 0


def prune(
    channels: Iterable[str] | None = None,
    *,
    batch_size: int = PRUNE_BATCH,
    max_batches: int | None = None,
) -> int:
    """Delete events outside the history window, in batches; returns how many.

    Without ``channels``, every channel is pruned. ``max_batches`` bounds the work
    per channel, for pruning on the publishing path.
    """
    size = conf.get("BROADCAST_HISTORY_SIZE")
    age = conf.get("BROADCAST_HISTORY_AGE")
    if size is None and age is None:
        return 0
    using = database()
    counters = BroadcastChannel.objects.using(using)
    if channels is not None:
        counters = counters.filter(name__in=list(channels))
    cutoff = timezone.now() - timedelta(seconds=age) if age is not None else None
    deleted = 0
    # Read in full first: on SQLite, deleting while a read cursor is open holds a read
    # lock into the write, which deadlocks with another writer's commit.
    for channel, last_seq in list(counters.values_list("name", "last_seq")):
        outside = Q()
        if size is not None:
            outside |= Q(seq__lte=last_seq - size)
        if cutoff is not None:
            outside |= Q(created_at__lt=cutoff)
        old = BroadcastEvent.objects.using(using).filter(outside, channel=channel)
        batches = 0
        while max_batches is None or batches < max_batches:
            end = _batch_end(old, batch_size)
            if end is None:
                break
            deleted += old.filter(seq__lte=end).delete()[0]
            batches += 1
    return deleted


def _batch_end(old: QuerySet[BroadcastEvent], batch_size: int) -> int | None:
    """The sequence number the next batch of ``old`` ends at; None when none is left.

    The DELETE is bounded by it rather than given the batch's keys, whatever the batch
    size: a query carries at most 32,766 parameters on SQLite (250,000 as Debian builds
    it), 65,535 with psycopg 3's server-side binding. No event can join the batch
    meanwhile: a new one's number is higher.
    """
    numbers = old.order_by("seq").values_list("seq", flat=True)
    last: list[int] = list(numbers[batch_size - 1 : batch_size])
    end: int | None = last[0] if last else old.aggregate(end=Max("seq"))["end"]
    return end
