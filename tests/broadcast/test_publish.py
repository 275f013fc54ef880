"""publish(), apublish(), the history store and its pruning, and the commands."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_sse.broadcast import _history, _publish, apublish, publish
from django_sse.broadcast._layer import get_layer
from django_sse.broadcast.models import BroadcastEvent
from tests.broadcast.support import following, summary, take

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What publishing hands the channel layer (which then sends it on)."""
    layer = get_layer()
    group_send = layer.group_send
    messages: list[dict[str, Any]] = []

    async def record(group: str, message: dict[str, Any]) -> None:
        messages.append({"group": group, **message})
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", record)
    return messages


def stored() -> list[tuple[str, int, str, str]]:
    return list(BroadcastEvent.objects.values_list("channel", "seq", "event", "data"))


async def test_each_channel_numbers_its_events(sent: list[dict[str, Any]]) -> None:
    assert [await apublish(c, "x") for c in ["a", "a", "b", "a", "b"]] == [1, 2, 1, 3, 2]
    assert [(m["group"], m["seq"]) for m in sent] == [
        ("django_sse.a", 1),
        ("django_sse.a", 2),
        ("django_sse.b", 1),
        ("django_sse.a", 3),
        ("django_sse.b", 2),
    ]


async def test_data_is_kept_as_sent_on_the_wire(sent: list[dict[str, Any]]) -> None:
    before = time.time()
    await apublish("a", "line 1\nline 2", event="note")
    await apublish("a", {"day": date(2024, 5, 1), "n": [1, 2]})
    assert await sync_to_async(stored)() == [
        ("a", 1, "note", "line 1\nline 2"),
        ("a", 2, "", '{"day":"2024-05-01","n":[1,2]}'),
    ]
    # published_at times the delivery (docs/operations.md); it is when the send began.
    assert before <= sent[0].pop("published_at") <= time.time()
    assert sent[0] == {
        "group": "django_sse.a",
        "type": "django_sse.event",
        "channel": "a",
        "seq": 1,
        "event": "note",
        "data": "line 1\nline 2",
    }


@pytest.mark.parametrize(
    ("channel", "error", "message"),
    [
        ("", ValueError, "must not be empty"),
        ("a b", ValueError, "may only contain"),
        ("chat:1", ValueError, "may only contain"),
        ("naïve", ValueError, "may only contain"),
        ("x" * 81, ValueError, "at most 80"),
        (7, TypeError, "must be a str"),
        # A resumable answer's: only the answer publishes to it.
        ("llm.AAAAAAAAAAAAAAAAAAAAAA", ValueError, "resumable answer's"),
        ("llm.anything", ValueError, "resumable answer's"),
    ],
)
async def test_bad_channel_names_are_refused(channel: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        await apublish(channel, "x")
    assert await BroadcastEvent.objects.acount() == 0


async def test_longest_channel_name_is_accepted() -> None:
    name = "a-Z_0.9" + "x" * 73
    assert await apublish(name, "x") == 1


@pytest.mark.parametrize(
    ("data", "event", "error", "message"),
    [
        ("x", "reset", ValueError, "reserved"),
        ("x", "a\nb", ValueError, "CR or LF"),
        ("x", "", ValueError, "1 to 200"),
        ("x", "e" * 201, ValueError, "1 to 200"),
        ("x", 5, TypeError, "must be a str"),
        (None, None, TypeError, "needs data"),
        (object(), None, TypeError, "JSON-serializable"),
        (b"bytes", None, TypeError, "JSON-serializable"),
        # Not JSON: a browser's JSON.parse would refuse the event.
        ([float("inf")], None, TypeError, "JSON-serializable"),
        ({"x": float("nan")}, None, TypeError, "JSON-serializable"),
        # What no database stores (PostgreSQL refuses NUL) and UTF-8 cannot send.
        ("a\x00b", None, ValueError, "data must not contain a NUL character"),
        ("a\ud800", None, ValueError, r"data must not contain a lone UTF-16 surrogate \(U\+D800\)"),
        (
            {"text": "a\udfff"},
            None,
            ValueError,
            r"data must not contain a lone UTF-16 surrogate \(U\+DFFF\)",
        ),
        ("x", "a\x00", ValueError, "event type must not contain a NUL character"),
    ],
)
def test_bad_events_are_refused(data: Any, event: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        publish("a", data, event=event)
    assert stored() == []


def test_sync_publish_refuses_a_resumable_answers_channel_too() -> None:
    with pytest.raises(ValueError, match="resumable answer's"):
        publish("llm.x", "forged token", event="token")
    assert stored() == []


def test_publish_from_sync_code(sent: list[dict[str, Any]]) -> None:
    assert publish("a", "x") == 1
    assert [m["seq"] for m in sent] == [1]


def test_inside_a_transaction_the_event_is_sent_on_commit(sent: list[dict[str, Any]]) -> None:
    with transaction.atomic():
        assert publish("a", "x") == 1
        assert sent == []
    assert [m["seq"] for m in sent] == [1]


def test_a_rolled_back_event_is_neither_sent_nor_kept(sent: list[dict[str, Any]]) -> None:
    def publish_then_fail() -> None:
        with transaction.atomic():
            publish("a", "x")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        publish_then_fail()
    assert sent == []
    assert stored() == []
    assert publish("a", "y") == 1


def test_concurrent_publishers_get_distinct_consecutive_numbers() -> None:
    def publish_some(worker: int) -> list[int]:
        return [publish("a", f"{worker}-{n}") for n in range(25)]

    with ThreadPoolExecutor(4) as pool:
        numbers = [seq for seqs in pool.map(publish_some, range(4)) for seq in seqs]
    assert sorted(numbers) == list(range(1, 101))
    assert sorted(seq for _, seq, _, _ in stored()) == list(range(1, 101))


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": 0.05})
async def test_a_failed_send_is_logged_and_the_event_still_arrives(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(group: str, message: dict[str, Any]) -> None:
        raise ConnectionError("layer down")

    async with following(["a"]) as events:
        monkeypatch.setattr(get_layer(), "group_send", broken)
        with caplog.at_level(logging.ERROR, "django_sse"):
            assert await apublish("a", "x") == 1
        assert "subscribers will read it from history" in caplog.text
        assert summary(await take(events, 1)) == [(None, "x", "1")]


def test_a_missing_layer_alias_fails_before_storing() -> None:
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with (
        override_settings(CHANNEL_LAYERS=layers, DJANGO_SSE={"BROADCAST_LAYER": "events"}),
        pytest.raises(Exception, match="'events', which CHANNEL_LAYERS does not define"),
    ):
        publish("a", "x")
    assert stored() == []


def test_a_configured_layer_is_used() -> None:
    layers = {"events": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=layers, DJANGO_SSE={"BROADCAST_LAYER": "events"}):
        layer = get_layer()
        assert layer is not None
        assert get_layer() is layer
    assert get_layer() is not layer  # the embedded one again


class TestPruning:
    @pytest.fixture(autouse=True)
    def no_automatic_pruning(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_history, "PRUNE_EVERY", 10**9)

    def test_keeps_the_newest_events_of_each_channel(self) -> None:
        for channel in ["a"] * 5 + ["b"] * 2:
            publish(channel, "x")
        with override_settings(DJANGO_SSE={"BROADCAST_HISTORY_SIZE": 2}):
            assert _history.prune() == 3
        assert [(c, seq) for c, seq, _, _ in stored()] == [("a", 4), ("a", 5), ("b", 1), ("b", 2)]

    def test_drops_events_older_than_the_age(self) -> None:
        for _ in range(4):
            publish("a", "x")
        an_hour_ago = timezone.now() - timedelta(hours=1)
        BroadcastEvent.objects.filter(seq__lte=3).update(created_at=an_hour_ago)
        with override_settings(DJANGO_SSE={"BROADCAST_HISTORY_AGE": 1800}):
            assert _history.prune(batch_size=2) == 3
        assert [seq for _, seq, _, _ in stored()] == [4]

    def test_nothing_without_limits(self) -> None:
        publish("a", "x")
        limits = {"BROADCAST_HISTORY_SIZE": None, "BROADCAST_HISTORY_AGE": None}
        with override_settings(DJANGO_SSE=limits):
            assert _history.prune() == 0

    def test_publishing_prunes_its_channel_now_and_then(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_history, "PRUNE_EVERY", 4)
        with override_settings(DJANGO_SSE={"BROADCAST_HISTORY_SIZE": 2}):
            for _ in range(7):
                publish("a", "x")
            assert [seq for _, seq, _, _ in stored()] == [3, 4, 5, 6, 7]
            publish("a", "x")
        assert [seq for _, seq, _, _ in stored()] == [7, 8]

    async def test_apublish_prunes_too(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_history, "PRUNE_EVERY", 2)
        with override_settings(DJANGO_SSE={"BROADCAST_HISTORY_SIZE": 1}):
            for _ in range(2):
                await apublish("a", "x")
        assert [seq for _, seq, _, _ in await sync_to_async(stored)()] == [2]

    def test_the_command_prunes_every_channel(self) -> None:
        for channel in ["a", "a", "b", "b"]:
            publish(channel, "x")
        out = StringIO()
        with override_settings(DJANGO_SSE={"BROADCAST_HISTORY_SIZE": 1}):
            call_command("sse_prune_history", "--batch-size", "1", stdout=out)
        assert out.getvalue() == "Deleted 2 broadcast events.\n"
        assert [(c, seq) for c, seq, _, _ in stored()] == [("a", 2), ("b", 2)]

    def test_the_command_refuses_a_bad_batch_size(self) -> None:
        with pytest.raises(CommandError, match="--batch-size"):
            call_command("sse_prune_history", "--batch-size", "0")


class TestPublishCommand:
    def run(self, *args: str) -> str:
        out = StringIO()
        call_command("sse_publish", *args, stdout=out)
        return out.getvalue()

    def test_prints_the_sequence_number(self, sent: list[dict[str, Any]]) -> None:
        assert self.run("news", "hello") == "1\n"
        assert self.run("news", '{"a": 1}', "--json", "--event", "update") == "2\n"
        assert stored() == [("news", 1, "", "hello"), ("news", 2, "update", '{"a":1}')]
        assert [m["seq"] for m in sent] == [1, 2]

    def test_without_json_the_data_is_text(self) -> None:
        self.run("news", '{"a": 1}')
        assert stored() == [("news", 1, "", '{"a": 1}')]

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["bad name", "x"], "may only contain"),
            (["news", "{", "--json"], "not valid JSON"),
            # Python's parser reads these; JSON has no such numbers.
            (["news", "[1e999]", "--json"], "not JSON compliant"),
            (["news", "NaN", "--json"], "not JSON compliant"),
            (["news", "x", "--event", "reset"], "reserved"),
            # Past the parser's recursion limit: a RecursionError's traceback before.
            (["news", "[" * 100_000 + "]" * 100_000, "--json"], "nested too deeply"),
        ],
    )
    def test_errors_are_command_errors(self, args: list[str], message: str) -> None:
        with pytest.raises(CommandError, match=message):
            self.run(*args)
        assert stored() == []


def test_reset_is_the_public_name() -> None:
    from django_sse.broadcast import RESET

    assert RESET == _publish.RESET == "reset"


def test_a_failed_prune_is_logged_and_the_publish_stands(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(_history, "PRUNE_EVERY", 1)
    monkeypatch.setattr(_history, "prune", broken)
    with caplog.at_level(logging.ERROR, "django_sse"):
        assert publish("a", "x") == 1
    assert "Could not prune the history of channel 'a'" in caplog.text
    assert [seq for _, seq, _, _ in stored()] == [1]
