"""A usage chunk without ``prompt_tokens`` or ``completion_tokens``, as some
OpenAI-compatible servers send it, keeps the answer: the counts it has are recorded, the
missing one is None. It used to fail the whole answer as "could not be read".
"""

from __future__ import annotations

import json

import pytest
from openai.types.chat import ChatCompletionChunk

from django_sse.llm import Finish, Usage
from django_sse.llm._formats import NativeFormat, OpenAIFormat, VercelFormat
from django_sse.models import StreamLog
from django_sse.protocol import EventParser
from tests.llm import vercel_schema
from tests.llm.support import HELLO, Answer, post, provider_at
from tests.llm.upstream import Upstream
from tests.llm.views import API_KEY
from tests.prometheus import value

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gpt-partly-counted"


@pytest.fixture(params=["prompt", "completion"])
def missing(request: pytest.FixtureRequest) -> str:
    """Which count the upstream leaves out of its usage."""
    return str(request.param)


async def test_the_answer_ends_with_done_and_the_log_keeps_the_known_count(
    upstream: Upstream, http_client: str, missing: str
) -> None:
    before = {
        kind: value("django_sse_llm_tokens_total", model=MODEL, kind=kind)
        for kind in ("prompt", "completion")
    }
    with provider_at(
        upstream.base_url(f"partial-usage-{missing}"), LLM_MODEL=MODEL, LLM_HTTP_CLIENT=http_client
    ):
        events = await (await Answer.ask("/llm/chat/", HELLO)).rest()
    assert "".join(e.json()["text"] for e in events if e.event == "token") == "t0 t1 t2 "
    done = events[-1]
    assert done.event == "done"
    assert done.json()["finish_reason"] == "stop"
    usage = done.json()["usage"]
    assert usage[f"{missing}_tokens"] is None
    known = "completion" if missing == "prompt" else "prompt"
    assert usage[f"{known}_tokens"] > 0
    log = await StreamLog.objects.aget()
    assert log.outcome == "completed"
    assert getattr(log, f"{missing}_tokens") is None
    assert getattr(log, f"{known}_tokens") == usage[f"{known}_tokens"]
    # The metrics add what is known, and nothing for what is not.
    assert value("django_sse_llm_tokens_total", model=MODEL, kind=missing) == before[missing]
    assert value("django_sse_llm_tokens_total", model=MODEL, kind=known) == (
        before[known] + usage[f"{known}_tokens"]
    )


async def test_counts_that_are_not_counts_are_unknown_and_named_in_a_warning(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    """Rather than a text or a negative number that the stream log cannot store."""
    with provider_at(upstream.base_url("partial-usage-garbled")):
        events = await (await Answer.ask("/llm/chat/", HELLO)).rest()
    assert events[-1].event == "done"
    assert events[-1].json()["usage"] == {"prompt_tokens": None, "completion_tokens": None}
    log = await StreamLog.objects.aget()
    assert (log.outcome, log.prompt_tokens, log.completion_tokens) == ("completed", None, None)
    warnings = [r.getMessage() for r in caplog.records if r.name == "django_sse"]
    assert any("prompt_tokens as 'many'" in warning for warning in warnings), warnings
    assert any("completion_tokens as -1" in warning for warning in warnings), warnings


async def test_a_resumable_answer_ends_with_done_and_its_followers_keep_the_known_count(
    upstream: Upstream, missing: str
) -> None:
    with provider_at(upstream.base_url(f"partial-usage-{missing}")):
        started = (await post("/llm/resumable/", HELLO)).json()
    answer = await Answer.follow(started["stream_url"])
    events = await answer.rest()
    assert events[-1].event == "done"
    usage = events[-1].json()["usage"]
    assert usage[f"{missing}_tokens"] is None
    stats = answer.response.stats
    assert getattr(stats, f"{missing}_tokens") is None
    known = "completion" if missing == "prompt" else "prompt"
    assert getattr(stats, f"{known}_tokens") == usage[f"{known}_tokens"] > 0


async def test_an_openai_client_gets_the_answer_and_no_usage_it_could_not_parse(
    upstream: Upstream, missing: str
) -> None:
    """OpenAI's usage has the three counts, as integers; the SDK's types refuse a null."""
    with provider_at(upstream.base_url(f"partial-usage-{missing}")):
        response = await post(
            "/llm/v1/chat/completions",
            {**HELLO, "stream": True, "stream_options": {"include_usage": True}},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        events = await Answer(response).rest()
    assert events[-1].data == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(e.data)) for e in events[:-1]]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "t0 t1 t2 "
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def encoded(answer: NativeFormat | OpenAIFormat | VercelFormat, finish: Finish) -> bytes:
    return b"".join(event.encode() for event in [*answer.start(), *answer.chunk(finish)])


def test_each_format_writes_an_unknown_count_as_its_clients_expect() -> None:
    finish = Finish("stop", Usage(prompt_tokens=None, completion_tokens=4))
    [done] = EventParser().feed(encoded(NativeFormat(model="m"), finish))
    assert done.json()["usage"] == {"prompt_tokens": None, "completion_tokens": 4}
    chunks = EventParser().feed(encoded(OpenAIFormat(model="m"), finish))
    # No usage chunk (the one with no choices): OpenAI's has every count.
    assert chunks[-1].data == "[DONE]"
    assert all(json.loads(e.data)["choices"] for e in chunks[:-1])
    parts = vercel_schema.parse_wire(encoded(VercelFormat(model="m"), finish))
    vercel_schema.validate_stream(parts)
    # The AI SDK's own usage leaves out (undefined) the counts it does not know.
    assert parts[-1]["messageMetadata"]["usage"] == {"outputTokens": 4}
