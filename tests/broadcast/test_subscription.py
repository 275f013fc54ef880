"""Subscriptions and the hub with the in-memory layer: replay, the seam, gaps, resets."""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any, cast

import pytest
from django.test import override_settings

from django_sse.broadcast import _history, apublish, publish
from django_sse.broadcast._history import StoredEvent
from django_sse.broadcast._subscription import Subscription
from tests.broadcast.support import following, summary, take

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_poll() -> Iterator[None]:
    """Only what a test is about delivers events; tests of the poll turn it on."""
    with override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None}):
        yield


async def publish_many(channel: str, count: int) -> list[int]:
    return [await apublish(channel, f"{channel}-{n}") for n in range(1, count + 1)]


async def append_quietly(channel: str, data: str) -> StoredEvent:
    """Store an event without sending it, as another process on another layer would."""
    return await _history.in_worker(_history.append, channel, "", data)


def reset(channel: str, reason: str, first_seq: int, id: str) -> tuple[str, Any, str]:
    return ("reset", {"channel": channel, "reason": reason, "first_seq": first_seq}, id)


def messages(channel: str, seqs: range) -> list[tuple[None, str, str]]:
    return [(None, f"{channel}-{n}", str(n)) for n in seqs]


async def test_live_events_arrive_in_order_with_their_sequence_numbers() -> None:
    async with following(["chat"]) as events:
        assert await publish_many("chat", 3) == [1, 2, 3]
        assert summary(await take(events, 3)) == messages("chat", range(1, 4))


async def test_a_new_subscriber_starts_after_the_last_event() -> None:
    await publish_many("chat", 2)
    async with following(["chat"]) as events:
        await apublish("chat", "chat-3")
        assert summary(await take(events, 1)) == messages("chat", range(3, 4))


async def test_replay_after_last_event_id_then_live() -> None:
    await publish_many("chat", 5)
    async with following(["chat"], "2") as events:
        assert summary(await take(events, 3)) == messages("chat", range(3, 6))
        await apublish("chat", "chat-6")
        assert summary(await take(events, 1)) == messages("chat", range(6, 7))


async def test_replay_longer_than_a_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_history, "PAGE_SIZE", 3)
    await publish_many("chat", 10)
    async with following(["chat"], "0") as events:
        assert summary(await take(events, 10)) == messages("chat", range(1, 11))


async def test_events_published_during_the_history_read_are_sent_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The seam: events published while history is read are neither lost nor repeated."""
    await publish_many("chat", 3)
    read = _history.read

    def read_then_publish(*args: Any, **kwargs: Any) -> list[StoredEvent]:
        page = read(*args, **kwargs)
        # The read is done; these miss it but are published while it is in progress.
        publish("chat", "chat-4")
        publish("chat", "chat-5")
        monkeypatch.setattr(_history, "read", read)
        return page

    monkeypatch.setattr(_history, "read", read_then_publish)
    async with following(["chat"], "1") as events:
        assert summary(await take(events, 4)) == messages("chat", range(2, 6))
        await apublish("chat", "chat-6")
        assert summary(await take(events, 1)) == messages("chat", range(6, 7))


async def test_events_published_while_joining_are_sent_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Published after the hub joined but before the sequence numbers were read."""
    await publish_many("chat", 2)
    heads = _history.heads

    def publish_then_read(channels: Any) -> dict[str, int]:
        # The hub reads first, as it joins; the subscription reads next.
        if heads_read:
            publish("chat", "chat-3")
            monkeypatch.setattr(_history, "heads", heads)
        heads_read.append(channels)
        return heads(channels)

    heads_read: list[Any] = []
    monkeypatch.setattr(_history, "heads", publish_then_read)
    async with following(["chat"], "1") as events:
        await apublish("chat", "chat-4")
        assert summary(await take(events, 3)) == messages("chat", range(2, 5))


async def test_pruned_events_give_a_reset_then_what_history_has() -> None:
    await publish_many("chat", 10)
    with override_settings(DJANGO_SSE={"BROADCAST_HISTORY_SIZE": 3}):
        assert await _history.in_worker(_history.prune) == 7
    async with following(["chat"], "2") as events:
        assert summary(await take(events, 4)) == [
            reset("chat", "expired", 8, "7"),
            *messages("chat", range(8, 11)),
        ]


async def test_a_fully_expired_history_resets_to_the_next_event() -> None:
    await publish_many("chat", 4)
    with override_settings(DJANGO_SSE={"BROADCAST_HISTORY_AGE": 0}):
        assert await _history.in_worker(_history.prune) == 4
    async with following(["chat"], "1") as events:
        await apublish("chat", "chat-5")
        assert summary(await take(events, 2)) == [
            reset("chat", "expired", 5, "4"),
            *messages("chat", range(5, 6)),
        ]


async def test_an_id_ahead_of_the_channel_resets() -> None:
    await publish_many("chat", 3)
    async with following(["chat"], "99") as events:
        await apublish("chat", "chat-4")
        assert summary(await take(events, 2)) == [
            reset("chat", "ahead", 4, "3"),
            *messages("chat", range(4, 5)),
        ]


@pytest.mark.parametrize("last_event_id", ["nonsense", "-1", "1.5", "a:b:c", "x" * 30])
async def test_an_unreadable_id_resets_and_goes_live(last_event_id: str) -> None:
    await publish_many("chat", 2)
    async with following(["chat"], last_event_id) as events:
        await apublish("chat", "chat-3")
        assert summary(await take(events, 2)) == [
            reset("chat", "invalid", 3, "2"),
            *messages("chat", range(3, 4)),
        ]


async def test_an_empty_id_means_none() -> None:
    await publish_many("chat", 2)
    async with following(["chat"], "") as events:
        await apublish("chat", "chat-3")
        assert summary(await take(events, 1)) == messages("chat", range(3, 4))


async def test_several_channels_resume_from_one_id_in_publishing_order() -> None:
    for channel in ["a", "b", "a", "b", "a"]:
        await apublish(channel, channel)
    async with following(["a", "b"], "a:1,b:1") as events:
        assert summary(await take(events, 3)) == [
            (None, "a", "a:2,b:1"),
            (None, "b", "a:2,b:2"),
            (None, "a", "a:3,b:2"),
        ]
        await apublish("b", "b")
        assert summary(await take(events, 1)) == [(None, "b", "a:3,b:3")]


async def test_a_channel_missing_from_the_id_starts_live() -> None:
    await publish_many("a", 2)
    await publish_many("b", 2)
    async with following(["a", "b"], "a:1,other:4") as events:
        await apublish("b", "b-3")
        assert summary(await take(events, 2)) == [
            (None, "a-2", "a:2,b:2"),
            (None, "b-3", "a:2,b:3"),
        ]


async def test_a_single_channel_id_does_not_resume_several() -> None:
    await publish_many("a", 1)
    async with following(["a", "b"], "1") as events:
        assert summary(await take(events, 2)) == [
            reset("a", "invalid", 2, "a:1,b:0"),
            reset("b", "invalid", 1, "a:1,b:0"),
        ]


async def test_a_gap_in_live_events_is_read_from_history() -> None:
    subscription = Subscription(["chat"], "0")
    async with subscription:
        events = aiter(subscription)
        # Stored but never sent; then only the last one reaches the subscriber.
        for n in range(1, 4):
            last = await append_quietly("chat", f"chat-{n}")
        subscription.push(last)
        assert summary(await take(events, 3)) == messages("chat", range(1, 4))
        await events.aclose()  # type: ignore[attr-defined]


def queued(subscription: Subscription) -> object:
    """Its queue, as what a test's asserts about it should not narrow."""
    return subscription._queue


async def test_events_that_waited_for_the_source_leave_no_queue_behind() -> None:
    """An idle subscriber keeps no queue (an empty deque is 0.7 KiB): one is made for a
    burst the source was not waiting for, and let go of once it is drained."""
    subscription = Subscription(["chat"], "0")
    async with subscription:
        events = aiter(subscription)
        assert queued(subscription) is None
        # Pushed before the source waits: the events queue.
        for n in range(1, 4):
            assert subscription.push(await append_quietly("chat", f"chat-{n}"))
        assert len(cast(Sized, queued(subscription))) == 3
        assert summary(await take(events, 3)) == messages("chat", range(1, 4))
        assert queued(subscription) is None
        await events.aclose()  # type: ignore[attr-defined]


async def test_a_subscription_lets_go_of_what_it_started_from() -> None:
    """The Last-Event-ID, the starting positions and the heads read on joining serve
    only the start; an idle subscriber keeps none of them."""
    await publish_many("chat", 2)
    subscription = Subscription(["chat"], "1", since={"chat": 0})
    async with subscription:
        events = aiter(subscription)
        assert summary(await take(events, 1)) == messages("chat", range(2, 3))
        await apublish("chat", "chat-3")
        assert summary(await take(events, 1)) == messages("chat", range(3, 4))
        kept = (subscription._opening, subscription._since, subscription._last_event_id)
        assert kept == (None, None, None)
        await events.aclose()  # type: ignore[attr-defined]


async def test_a_subscription_is_iterated_inside_async_with_only() -> None:
    with pytest.raises(RuntimeError, match="inside `async with`"):
        await anext(aiter(Subscription(["chat"])))
