"""The hub and subscriptions on a real channels_redis layer, in-process.

Two server processes sharing Redis are tested end to end in tests/e2e/test_broadcast.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from django_sse.broadcast import _hub, apublish, arevoke
from django_sse.broadcast._layer import get_layer, is_local
from django_sse.broadcast._subscription import Subscription
from django_sse.stats import Outcome
from tests.broadcast.redis_server import redis_layers, unique_prefix
from tests.broadcast.support import following, hold_receive, summary, take

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def redis_layer() -> Iterator[None]:
    # The poll is off: only the layer delivers, or the test fails.
    with override_settings(
        CHANNEL_LAYERS=redis_layers(unique_prefix()),
        DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None},
    ):
        yield


async def test_the_layer_is_redis_and_shared() -> None:
    assert type(get_layer()).__module__ == "channels_redis.core"
    assert not is_local(get_layer())


async def test_events_reach_every_subscriber_in_order() -> None:
    async with following(["chat"]) as first, following(["chat", "news"]) as both:
        for channel in ["chat", "news", "chat"]:
            await apublish(channel, channel)
        assert summary(await take(first, 2)) == [(None, "chat", "1"), (None, "chat", "2")]
        assert [e.id for e in await take(both, 3)] == [
            "chat:1,news:0",
            "chat:1,news:1",
            "chat:2,news:1",
        ]


async def test_replay_then_live_across_the_seam() -> None:
    for n in range(5):
        await apublish("chat", n)
    async with following(["chat"], "2") as events:
        await apublish("chat", 5)
        assert [e.id for e in await take(events, 4)] == ["3", "4", "5", "6"]


async def test_a_redis_channel_over_capacity_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """channels_redis refuses messages beyond a channel's capacity. While the hub does
    not receive, 50 events leave one message in Redis; the next one that arrives shows
    the gap, which is read from history."""
    layer = get_layer()
    monkeypatch.setattr(layer, "capacity", 1)
    gate, received = hold_receive(monkeypatch, layer)
    async with following(["chat"]) as events:
        for n in range(50):
            await apublish("chat", n)
        gate.set()
        assert [e.id for e in await take(events, 1)] == ["1"]
        await apublish("chat", 50)
        assert [e.id for e in await take(events, 50)] == [str(n) for n in range(2, 52)]
    assert received == [1, 51]


async def test_revoke_travels_through_redis() -> None:
    ended: list[Outcome] = []
    async with Subscription(["news"], user="7", on_end=ended.append) as subscription:
        await arevoke(7, "news")
        assert [e async for e in subscription] == []
    assert ended == [Outcome.REVOKED]


async def test_the_hub_leaves_the_redis_group_with_its_last_subscriber() -> None:
    layer = get_layer()
    async with following(["chat"]):
        (channel_name,) = await group_members(layer, "django_sse.chat")
        assert channel_name == _hub.get_hub()._channel_name
    assert await group_members(layer, "django_sse.chat") == []


async def group_members(layer: Any, group: str) -> list[str]:
    connection = layer.connection(layer.consistent_hash(group))
    members = await connection.zrange(layer._group_key(group), 0, -1)
    return [member.decode() for member in members]
