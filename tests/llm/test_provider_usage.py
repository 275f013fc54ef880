"""A project's own provider (the documented extension point) that reports usage that is
not counts of tokens: the count is unknown, with a warning that names the provider.

It used to raise in the metrics (a negative count, a str) at the answer's very end, which
ended an answer the client had read whole with an error; other counts (a bool, a float,
more than the stream log's column holds) went to the stream log as they were.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import pytest
from django.test import AsyncRequestFactory, override_settings

from django_sse.broadcast import _history
from django_sse.llm import ChatView, Finish, Message, ProviderError, TextDelta, Usage, _records
from django_sse.llm._generation import RunningGeneration
from django_sse.models import StreamLog
from tests.llm.conftest import stop_answers
from tests.llm.support import HELLO, Answer
from tests.prometheus import value

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "miscounting-model"
# 2**31: one more than the stream log's PositiveIntegerField columns hold on every database.
NOT_COUNTS = [-1, "12", True, 1.5, 2**31, [3]]


class Miscounting:
    """A provider of the kind a project writes, whose usage has a count that is not one."""

    model = MODEL
    label = "a miscounting model at test"

    def __init__(self, usage: Any) -> None:
        self.usage = usage

    async def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> AsyncGenerator[Any, None]:
        yield TextDelta("All of it.")
        yield Finish("stop", self.usage)


def counted() -> tuple[float, float]:
    return (
        value("django_sse_llm_tokens_total", model=MODEL, kind="prompt"),
        value("django_sse_llm_tokens_total", model=MODEL, kind="completion"),
    )


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "django_sse"]


async def ask(provider: Miscounting) -> Answer:
    request = AsyncRequestFactory().post("/", json.dumps(HELLO), content_type="application/json")
    view: Any = ChatView.as_view(provider=provider)
    with override_settings(DJANGO_SSE={"LOG_STREAMS": True}):
        return Answer(await view(request))


@pytest.mark.parametrize("count", NOT_COUNTS, ids=repr)
async def test_a_count_that_is_not_one_is_unknown_and_the_answer_completes(
    count: Any, caplog: pytest.LogCaptureFixture
) -> None:
    before = counted()
    answer = await ask(Miscounting(Usage(prompt_tokens=count, completion_tokens=4)))
    events = await answer.rest()
    assert [e.event for e in events] == ["token", "done"]
    assert events[-1].json()["usage"] == {"prompt_tokens": None, "completion_tokens": 4}
    log = await StreamLog.objects.aget()
    assert (log.outcome, log.prompt_tokens, log.completion_tokens) == ("completed", None, 4)
    assert counted() == (before[0], before[1] + 4)
    assert (
        f"The provider Miscounting (a miscounting model at test) reported prompt_tokens as "
        f"{count!r}, not a count of tokens: it is recorded as unknown"
    ) in warnings(caplog)


async def test_usage_that_is_not_a_usage_is_unknown(caplog: pytest.LogCaptureFixture) -> None:
    events = await (await ask(Miscounting({"prompt_tokens": 3}))).rest()
    assert events[-1].event == "done"
    assert events[-1].json()["usage"] is None
    log = await StreamLog.objects.aget()
    assert (log.outcome, log.prompt_tokens, log.completion_tokens) == ("completed", None, None)
    assert any("with the usage {'prompt_tokens': 3}, not a Usage" in w for w in warnings(caplog))


async def test_a_resumable_answer_is_checked_at_the_same_door(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its followers record the done event's usage: what they read is checked too."""
    generation = RunningGeneration(Miscounting(Usage(5, -3)), [Message(role="user", content="Hi")])
    anyone = _records.Admission(None, None, per_user=None, per_address=None)
    await _history.in_worker(_records.admit, generation.id, anyone, MODEL, "test")
    await generation.start()
    try:
        answer = await Answer.follow(f"/llm/resumable/{generation.id}/")
        events = await answer.rest()
    finally:
        await stop_answers()
    assert events[-1].event == "done"
    assert events[-1].json()["usage"] == {"prompt_tokens": 5, "completion_tokens": None}
    assert (answer.response.stats.prompt_tokens, answer.response.stats.completion_tokens) == (
        5,
        None,
    )
    assert any("reported completion_tokens as -3" in w for w in warnings(caplog))


class FailingAsCalled:
    """A provider whose ``stream()`` checks the conversation before it returns its
    generator, and refuses it there."""

    model = MODEL
    label = "a picky model at test"

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> AsyncGenerator[Any, None]:
        raise ProviderError("bad_request", "The model takes no greetings.")


async def test_a_provider_that_fails_as_it_is_called_ends_the_answer_with_its_error() -> None:
    """Not a 500 from the view: the request to the model was made as the response was."""
    answer = await ask(FailingAsCalled())  # type: ignore[arg-type]
    events = await answer.rest()
    assert [e.event for e in events] == ["error"]
    assert events[0].json() == {"code": "bad_request", "message": "The model takes no greetings."}
    log = await StreamLog.objects.aget()
    assert log.outcome == "error"
