"""The per-process hub on the in-memory layer: one membership per channel, fan-out,
refilling what the layer drops, polling history, renewal, slow subscribers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.db.utils import OperationalError
from django.test import override_settings

from django_sse.broadcast import _history, _hub, apublish, arevoke
from django_sse.broadcast._layer import get_layer
from django_sse.broadcast._subscription import Subscription
from django_sse.stats import Outcome
from tests.broadcast.support import following, hold_receive, take

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def layer_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(method, group) of every group_add and group_discard the hub makes."""
    layer = get_layer()
    calls: list[tuple[str, str]] = []
    for name in ["group_add", "group_discard"]:
        method = getattr(layer, name)

        async def record(group: str, channel: str, _name: str = name, _method: Any = method):
            calls.append((_name, group))
            await _method(group, channel)

        monkeypatch.setattr(layer, name, record)
    return calls


def seqs(events: list[Any]) -> list[int]:
    return [int(e.id) for e in events]


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None})
async def test_one_group_membership_per_channel_and_process(
    layer_calls: list[tuple[str, str]],
) -> None:
    async with following(["chat"]) as first, following(["chat"]) as second:
        await apublish("chat", "hello")
        assert [e.data for e in await take(first, 1)] == ["hello"]
        assert [e.data for e in await take(second, 1)] == ["hello"]
    assert layer_calls == [("group_add", "django_sse.chat"), ("group_discard", "django_sse.chat")]
    assert _hub.get_hub().idle


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None})
async def test_the_hub_starts_again_after_its_last_subscriber_left() -> None:
    for n in range(1, 3):
        async with following(["chat"]) as events:
            await apublish("chat", "hello")
            assert seqs(await take(events, 1)) == [n]
        assert _hub.get_hub().idle


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None})
async def test_messages_the_layer_drops_are_read_from_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layer = get_layer()
    group_send = layer.group_send

    async def lossy(group: str, message: dict[str, Any]) -> None:
        if message["seq"] % 3 != 0:  # two in three never arrive
            return
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", lossy)
    async with following(["chat"]) as events:
        for n in range(12):
            await apublish("chat", n)
        assert seqs(await take(events, 12)) == list(range(1, 13))


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": 0.05})
async def test_a_layer_over_capacity_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub stops receiving while 200 events are published into a layer channel that
    holds one: the layer drops 199, and no later message reveals the gap. The poll
    finds it."""
    layer = get_layer()
    monkeypatch.setattr(layer, "capacity", 1)
    gate, received = hold_receive(monkeypatch, layer)
    async with following(["chat"]) as events:
        await asyncio.gather(*(apublish("chat", n) for n in range(200)))
        gate.set()
        assert seqs(await take(events, 200)) == list(range(1, 201))
        # The layer kept at most one message (the receive may not have run yet when
        # the poll has already delivered everything from history).
        assert len(received) <= 1
        await apublish("chat", "after")
        assert seqs(await take(events, 1)) == [201]


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": 0.05})
async def test_events_another_process_stored_arrive_by_polling() -> None:
    """An in-memory layer never carries other processes' events (e.g. sse_publish)."""
    async with following(["chat"]) as events:
        for n in range(3):
            await _history.in_worker(_history.append, "chat", "", str(n))
        assert [(e.data, e.id) for e in await take(events, 3)] == [
            ("0", "1"),
            ("1", "2"),
            ("2", "3"),
        ]


async def test_group_membership_is_renewed_before_the_layer_expires_it(
    monkeypatch: pytest.MonkeyPatch, layer_calls: list[tuple[str, str]]
) -> None:
    monkeypatch.setattr(get_layer(), "group_expiry", 0.1)
    renewed = asyncio.Event()
    add = get_layer().group_add

    async def add_and_tell(group: str, channel: str) -> None:
        await add(group, channel)
        if len(layer_calls) >= 2:
            renewed.set()

    monkeypatch.setattr(get_layer(), "group_add", add_and_tell)
    async with following(["chat"]):
        await asyncio.wait_for(renewed.wait(), 10)
    assert layer_calls[:2] == [("group_add", "django_sse.chat")] * 2


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None, "BROADCAST_QUEUE_SIZE": 5})
async def test_a_slow_subscriber_is_cut_off_and_the_others_continue() -> None:
    ended: list[Outcome] = []
    slow = Subscription(["chat"], on_end=ended.append)
    async with slow, following(["chat"]) as fast:
        for n in range(1, 21):
            await apublish("chat", n)
            assert seqs(await take(fast, 1)) == [n]
        assert ended == [Outcome.SLOW_CONSUMER]
        # What was queued is dropped with it: the client replays it after reconnecting.
        assert [e.id async for e in slow] == []


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None})
async def test_revoke_ends_only_that_users_subscriptions_of_that_channel() -> None:
    ended: dict[str, list[Outcome]] = {"ada-news": [], "ada-chat": [], "bob-news": []}
    ada_news = Subscription(["news"], user="1", on_end=ended["ada-news"].append)
    ada_chat = Subscription(["chat"], user="1", on_end=ended["ada-chat"].append)
    bob_news = Subscription(["news"], user="2", on_end=ended["bob-news"].append)
    async with ada_news, ada_chat, bob_news:
        await arevoke(1, "news")
        await apublish("news", "after")  # the revoke was sent first, so it arrived first
        assert [e.data for e in await take(aiter(bob_news), 1)] == ["after"]
    assert ended == {"ada-news": [Outcome.REVOKED], "ada-chat": [], "bob-news": []}


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None})
async def test_subscribers_leaving_together_leave_every_group(
    monkeypatch: pytest.MonkeyPatch, layer_calls: list[tuple[str, str]]
) -> None:
    layer = get_layer()
    discard = layer.group_discard

    async def slow_discard(group: str, channel: str) -> None:
        await asyncio.sleep(0)  # as a networked layer would: others run meanwhile
        await discard(group, channel)

    monkeypatch.setattr(layer, "group_discard", slow_discard)
    first, second = Subscription(["a"]), Subscription(["b"])
    await first.__aenter__()
    await second.__aenter__()
    await asyncio.gather(first.__aexit__(), second.__aexit__())
    assert sorted(layer_calls) == [
        ("group_add", "django_sse.a"),
        ("group_add", "django_sse.b"),
        ("group_discard", "django_sse.a"),
        ("group_discard", "django_sse.b"),
    ]
    assert _hub.get_hub().idle


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None})
async def test_a_stopped_hub_ends_even_if_the_layer_swallows_the_cancellation(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py can turn the cancellation of a blocked read into its own TimeoutError."""
    layer = get_layer()
    receive = layer.receive
    receivers: list[asyncio.Task[Any]] = []

    async def swallowing(channel: str) -> dict[str, Any]:
        receivers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            message: dict[str, Any] = await receive(channel)
        except asyncio.CancelledError:
            raise TimeoutError("Timeout reading from the layer") from None
        return message

    monkeypatch.setattr(layer, "receive", swallowing)
    async with following(["chat"]):
        pass
    async with following(["chat"]) as events:
        await apublish("chat", "again")
        assert [e.data for e in await take(events, 1)] == ["again"]
    await asyncio.wait(receivers)
    assert "Receiving from the channel layer failed" not in caplog.text


def gate_group_add(
    monkeypatch: pytest.MonkeyPatch, channel: str
) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold the hub's join of ``channel``'s group, inside its membership lock: the
    first event is set once the join waits, the second lets it go on."""
    layer = get_layer()
    add = layer.group_add
    waiting, go = asyncio.Event(), asyncio.Event()

    async def gated(group: str, layer_channel: str) -> None:
        if group == f"django_sse.{channel}":
            waiting.set()
            await go.wait()
        await add(group, layer_channel)

    monkeypatch.setattr(layer, "group_add", gated)
    return waiting, go


async def until(condition: Any) -> None:
    """Let the other tasks run until ``condition()`` holds (a bounded number of turns)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def stored_elsewhere(channel: str, count: int) -> None:
    """Events another process published: an in-memory layer never carries them."""
    for n in range(count):
        await _history.in_worker(_history.append, channel, "", str(n))


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": 0.05})
async def test_a_feed_made_anew_while_its_channel_is_still_joined_is_polled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page reload: the old stream's leaving and the new one's joining both wait for a
    third subscription's join, and the channel never leaves the layer."""
    hub = _hub.get_hub()
    old = Subscription(["x"])
    await old.__aenter__()
    old_feed = hub._feeds["x"]
    waiting, go = gate_group_add(monkeypatch, "y")
    other = Subscription(["y"])
    joining = asyncio.create_task(other.__aenter__())
    await waiting.wait()
    leaving = asyncio.create_task(old.__aexit__())
    new = Subscription(["x"])
    arriving = asyncio.create_task(new.__aenter__())
    await until(lambda: hub._feeds.get("x") not in (None, old_feed))
    go.set()
    await asyncio.gather(joining, leaving, arriving)
    try:
        await stored_elsewhere("x", 3)
        assert seqs(await take(aiter(new), 3)) == [1, 2, 3]
    finally:
        await new.__aexit__()
        await other.__aexit__()


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": 0.05})
async def test_a_join_cut_short_by_a_disconnect_leaves_the_channel_followed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The channel's first subscriber leaves while joining; the second one stays."""
    waiting, _ = gate_group_add(monkeypatch, "x")
    first, second = Subscription(["x"]), Subscription(["x"])
    joining = asyncio.create_task(first.__aenter__())
    await waiting.wait()
    staying = asyncio.create_task(second.__aenter__())
    hub = _hub.get_hub()
    await until(lambda: second in hub._feeds["x"].subscribers)
    joining.cancel()
    with pytest.raises(asyncio.CancelledError):
        await joining
    await staying
    try:
        await stored_elsewhere("x", 3)
        assert seqs(await take(aiter(second), 3)) == [1, 2, 3]
    finally:
        await second.__aexit__()


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None})
async def test_a_history_read_that_fails_does_not_stop_live_events(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The hub fills a gap from history; the database failing then (a lock, a restart)
    only leaves the gap to the subscribers, who read it themselves."""
    layer = get_layer()
    group_send = layer.group_send

    async def losing_the_first(group: str, message: dict[str, Any]) -> None:
        if message["seq"] != 1:
            await group_send(group, message)

    catch_up = _history.catch_up
    failures: list[dict[str, int]] = []

    def failing_once(after: dict[str, int], targets: dict[str, int]) -> Any:
        if not failures:
            failures.append(targets)
            raise OperationalError("database is locked")
        return catch_up(after, targets)

    monkeypatch.setattr(layer, "group_send", losing_the_first)
    monkeypatch.setattr(_history, "catch_up", failing_once)
    async with following(["chat"]) as events:
        await apublish("chat", "lost by the layer")
        await apublish("chat", "shows the gap")
        assert [e.data for e in await take(events, 2)] == ["lost by the layer", "shows the gap"]
        await apublish("chat", "live")
        assert [e.data for e in await take(events, 1)] == ["live"]
    assert failures == [{"chat": 1}]
    assert "Reading the missed events of 'chat' failed" in caplog.text


class Recorder:
    """A subscriber that notes the sequence number of every event the hub pushes to it."""

    user: str | None = None

    def __init__(self, channels: tuple[str, ...]) -> None:
        self.channels = channels
        self.pushed: list[int] = []
        self._arrivals: asyncio.Queue[int] = asyncio.Queue()

    def push(self, stored: _history.StoredEvent) -> bool:
        self.pushed.append(stored.seq)
        self._arrivals.put_nowait(stored.seq)
        return True

    def end(self, outcome: Outcome) -> None:
        raise AssertionError(f"ended with {outcome}")

    async def wait_for(self, seq: int) -> None:
        while await asyncio.wait_for(self._arrivals.get(), 10) != seq:
            pass


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None})
async def test_an_event_that_shows_a_gap_is_pushed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The history page read for the gap already holds the event that showed it."""
    layer = get_layer()
    group_send = layer.group_send

    async def losing_the_first(group: str, message: dict[str, Any]) -> None:
        if message["seq"] != 1:
            await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", losing_the_first)
    hub, recorder = _hub.get_hub(), Recorder(("chat",))
    await hub.subscribe(recorder)
    try:
        for data in ["lost by the layer", "shows the gap", "live"]:
            await apublish("chat", data)
        # The layer's messages reach the hub in order: once 3 is in, 2 has been handled.
        await recorder.wait_for(3)
    finally:
        await hub.unsubscribe(recorder)
    assert recorder.pushed == [1, 2, 3]


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": 0.05})
async def test_an_event_the_poll_delivered_first_is_pushed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The poll reads an event from history before the layer's message of it arrives."""
    layer = get_layer()
    receive = layer.receive
    gate, handled = asyncio.Event(), asyncio.Event()
    received: list[int] = []

    async def gated(channel: str) -> dict[str, Any]:
        # The hub receives again only once it has handled the message before.
        if 2 in received:
            handled.set()
        await gate.wait()
        message: dict[str, Any] = await receive(channel)
        received.append(message["seq"])
        return message

    monkeypatch.setattr(layer, "receive", gated)
    hub, recorder = _hub.get_hub(), Recorder(("chat",))
    await hub.subscribe(recorder)
    try:
        await apublish("chat", "polled")
        await recorder.wait_for(1)
        gate.set()
        await apublish("chat", "live")
        await asyncio.wait_for(handled.wait(), 10)
    finally:
        await hub.unsubscribe(recorder)
    assert received == [1, 2]
    assert recorder.pushed == [1, 2]
