"""What broadcast adds to the metrics: each published event, and its delivery timed
once per process however many streams there follow its channel."""

from __future__ import annotations

import pytest

from django_sse.broadcast import apublish
from tests.broadcast.support import Stream
from tests.prometheus import value

pytestmark = pytest.mark.django_db(transaction=True)

FROM_START = {"Last-Event-ID": "0"}


async def test_each_event_is_counted_and_its_delivery_timed_once() -> None:
    published = value("django_sse_broadcast_published_total")
    delivered = value("django_sse_broadcast_delivery_seconds_count")
    streams = [await Stream.open("/broadcast/rooms/metered/", headers=FROM_START) for _ in range(3)]
    for n in range(2):
        await apublish("metered", n)
    for stream in streams:
        assert [e.data for e in await stream.next(2)] == ["0", "1"]
        await stream.close()
    assert value("django_sse_broadcast_published_total") - published == 2
    assert value("django_sse_broadcast_delivery_seconds_count") - delivered == 2


async def test_an_event_nobody_follows_is_counted_but_not_timed() -> None:
    published = value("django_sse_broadcast_published_total")
    delivered = value("django_sse_broadcast_delivery_seconds_count")
    await apublish("nobody-here", "x")
    assert value("django_sse_broadcast_published_total") - published == 1
    assert value("django_sse_broadcast_delivery_seconds_count") == delivered
