"""What language model answers add to the metrics: tokens and time to first token, once
per answer however many streams follow it."""

from __future__ import annotations

import pytest

from tests.llm.support import HELLO, Answer, post, provider_at
from tests.llm.upstream import Upstream
from tests.prometheus import value

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gpt-metered"


def counts() -> tuple[float, float, float]:
    return (
        value("django_sse_llm_tokens_total", model=MODEL, kind="prompt"),
        value("django_sse_llm_tokens_total", model=MODEL, kind="completion"),
        value("django_sse_llm_time_to_first_token_seconds_count", model=MODEL),
    )


def added(before: tuple[float, float, float]) -> tuple[float, float, float]:
    now = counts()
    return (now[0] - before[0], now[1] - before[1], now[2] - before[2])


async def test_an_answer_counts_its_usage_and_first_token(upstream: Upstream) -> None:
    before = counts()
    with provider_at(upstream.base_url("answer"), LLM_MODEL=MODEL):
        events = await (await Answer.ask("/llm/chat/", HELLO)).rest()
    usage = events[-1].json()["usage"]
    assert added(before) == (usage["prompt_tokens"], usage["completion_tokens"], 1)


async def test_a_resumable_answer_is_counted_once_for_all_its_followers(
    upstream: Upstream,
) -> None:
    before = counts()
    with provider_at(upstream.base_url("answer"), LLM_MODEL=MODEL):
        started = (await post("/llm/resumable/", HELLO)).json()
    first = await (await Answer.follow(started["stream_url"])).rest()
    second = await (await Answer.follow(started["stream_url"])).rest()
    assert first == second
    usage = first[-1].json()["usage"]
    assert added(before) == (usage["prompt_tokens"], usage["completion_tokens"], 1)
