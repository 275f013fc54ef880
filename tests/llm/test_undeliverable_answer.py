"""A resumable answer whose next event cannot be published: its followers are told, at once.

Publishing stores the event in history, then sends it through the channel layer. When
the history write failed mid-answer (its database went away for a moment), the answer
stopped there without an ending: its followers waited for an end that never came, and
the model's request was closed only by the loop's end. Now the model is stopped, the row
says ``error`` and the followers get an ``error`` event that ends their streams.

A channel layer that fails is not such a failure: the event is in history, and every
follower reads it from there (the hub's poll). The last test pins that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer
from django.test import override_settings

from django_sse.broadcast import _history
from django_sse.broadcast._history import EVENT_MESSAGE
from django_sse.llm.models import Generation
from tests.llm.support import HELLO, Answer, post, provider_at
from tests.llm.upstream import Upstream, recorded_text

pytestmark = pytest.mark.django_db(transaction=True)


class FailingHistory:
    """The real ``_history.append``, except for the one write the test picks, which
    raises as a database that went away does. A stand-in for a real outage, which a
    test cannot cause in the middle of one answer."""

    def __init__(self, event: str, occurrence: int = 1) -> None:
        self._append = _history.append
        self._event = event
        self._left = occurrence

    def __call__(self, channel: str, event: str, data: str, *args: Any) -> Any:
        if event == self._event:
            self._left -= 1
            if self._left == 0:
                raise ConnectionError("the database went away")
        return self._append(channel, event, data, *args)


@pytest.fixture
def failing(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Arm the failure: the given occurrence of a write of that event type fails."""

    def arm(event: str, occurrence: int = 1) -> None:
        monkeypatch.setattr(_history, "append", FailingHistory(event, occurrence))

    return arm


async def start(upstream: Upstream, scenario: str) -> dict[str, Any]:
    with provider_at(upstream.base_url(scenario)):
        response = await post("/llm/resumable/", HELLO)
    assert response.status_code == 201, response.content
    started: dict[str, Any] = response.json()
    return started


def text(events: list[Any]) -> str:
    return "".join(e.json()["text"] for e in events if e.event == "token")


async def test_a_token_that_cannot_be_published_ends_the_answer_for_its_followers(
    upstream: Upstream, failing: Callable[..., None]
) -> None:
    failing("token", occurrence=3)
    started = await start(upstream, "slow-20-40")
    one = await Answer.follow(started["stream_url"])
    two = await Answer.follow(started["stream_url"])
    events = await one.rest()  # it ends: an ending reached it
    assert await two.rest() == events
    assert [e.event for e in events] == ["start", "token", "token", "error"]
    assert events[-1].json() == {
        "code": "upstream_error",
        "message": "The answer failed on the server.",
    }
    assert one.response.stats.outcome == "error"
    row = await Generation.objects.aget(pk=started["id"])
    assert row.outcome == "error"
    assert row.ended_at is not None
    # Nobody could get the rest of the answer: the model was stopped writing it.
    request = upstream.requests[0]
    await request.wait_closed(timeout=5.0)
    assert request.client_closed
    assert request.tokens_written < 40


async def test_an_ending_that_cannot_be_published_is_an_error_and_its_row_too(
    upstream: Upstream, failing: Callable[..., None]
) -> None:
    """The row is marked ended before the ending is published; when that publish fails,
    the row must not say ``completed`` for an answer nobody got to the end of."""
    failing("done")
    started = await start(upstream, "answer")
    events = await (await Answer.follow(started["stream_url"])).rest()
    assert text(events) == recorded_text("answer")
    assert events[-1].event == "error"
    row = await Generation.objects.aget(pk=started["id"])
    assert row.outcome == "error"


class FailingLayer(InMemoryChannelLayer):  # type: ignore[misc]
    """A real in-memory layer whose sends of events fail once the test says so, as a
    Redis layer's do while Redis is away."""

    failing = False

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if FailingLayer.failing and message.get("type") == EVENT_MESSAGE:
            raise ConnectionError("the channel layer went away")
        await super().group_send(group, message)


async def test_a_channel_layer_that_fails_mid_answer_loses_nothing(upstream: Upstream) -> None:
    layers = {"default": {"BACKEND": f"{__name__}.FailingLayer"}}
    with override_settings(CHANNEL_LAYERS=layers):
        started = await start(upstream, "slow-20-40")
        answer = await Answer.follow(started["stream_url"])
        await answer.read(3)
        FailingLayer.failing = True
        try:
            events = await answer.rest()
        finally:
            FailingLayer.failing = False
    assert text(events) == "".join(f"t{i} " for i in range(40))
    assert events[-1].event == "done"
    row = await Generation.objects.aget(pk=started["id"])
    assert row.outcome == "completed"
