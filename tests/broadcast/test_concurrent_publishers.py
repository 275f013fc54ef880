"""Many publishers to one channel at once, each on its own database connection.

Run on SQLite (make test), PostgreSQL (make test-postgres) and MariaDB/MySQL
(make test-mysql). Sequence numbers come from the channel's counter row
(_history.append()): whatever the database, the channel's history must hold 1..N with
no gap and no repeat, each published event exactly once, under the number its
publisher was told. MariaDB deadlocked here when publishers raced to create the
counter row (a failed INSERT's shared lock, then an UPDATE).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from django.db import connections, transaction

from django_sse.broadcast import _history, publish
from django_sse.broadcast.models import BroadcastChannel, BroadcastEvent

pytestmark = pytest.mark.django_db(transaction=True)

PUBLISHERS = 8
EACH = 40
CHANNEL = "crowded"

_R = TypeVar("_R")


def at_once(work: Callable[[int], _R]) -> list[_R]:
    """``work(publisher)`` in PUBLISHERS threads released together, each thread on a
    database connection of its own (closed when it is done)."""
    start = threading.Barrier(PUBLISHERS)

    def run(publisher: int) -> _R:
        try:
            start.wait()
            return work(publisher)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(PUBLISHERS) as pool:
        return list(pool.map(run, range(PUBLISHERS)))


def history(channel: str) -> list[tuple[int, str]]:
    """The channel's events as a stream replays them: in order, page by page."""
    events: list[tuple[int, str]] = []
    while page := _history.read({channel: events[-1][0] if events else 0}, limit=97):
        events += [(stored.seq, stored.data) for stored in page]
    return events


def assert_numbered_once(published: dict[str, int], channel: str = CHANNEL) -> None:
    """Every event in history once, in order 1..N, under the number publish() returned."""
    events = history(channel)
    count = len(published)
    assert [seq for seq, _ in events] == list(range(1, count + 1))
    repeated = [data for data, n in Counter(data for _, data in events).items() if n > 1]
    assert repeated == []
    assert dict((data, seq) for seq, data in events) == published
    assert BroadcastChannel.objects.get(name=channel).last_seq == count


def test_publishers_racing_for_a_new_channel_number_every_event_once() -> None:
    def publish_some(publisher: int) -> dict[str, int]:
        return {f"{publisher}-{n}": publish(CHANNEL, f"{publisher}-{n}") for n in range(EACH)}

    results = at_once(publish_some)
    for seqs in results:  # one publisher's events were numbered in its own order
        assert list(seqs.values()) == sorted(seqs.values())
    published = {data: seq for seqs in results for data, seq in seqs.items()}
    assert len(published) == PUBLISHERS * EACH
    assert_numbered_once(published)


def test_publishers_inside_transactions_leave_no_gap_when_some_roll_back() -> None:
    """Inside an outer transaction the counter stays locked until it ends: a rolled
    back publish gives its number back, so the numbers that stay are still 1..N."""
    publish(CHANNEL, "first")  # the channel's counter exists; the race is on its row lock

    class RolledBack(Exception):
        pass

    def publish_some(publisher: int) -> dict[str, int]:
        kept = {}
        for n in range(EACH):
            data = f"{publisher}-{n}"
            try:
                with transaction.atomic():
                    seq = publish(CHANNEL, data)
                    if n % 3 == 0:
                        raise RolledBack
            except RolledBack:
                continue
            kept[data] = seq
        return kept

    results = at_once(publish_some)
    published = {"first": 1} | {data: seq for seqs in results for data, seq in seqs.items()}
    assert len(published) == 1 + PUBLISHERS * (EACH - len(range(0, EACH, 3)))
    assert_numbered_once(published)
    assert BroadcastEvent.objects.filter(channel=CHANNEL).count() == len(published)
