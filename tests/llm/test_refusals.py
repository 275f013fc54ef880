"""A model's refusal (OpenAI streams it as ``delta.refusal``, with no content) reaches the
client in every format and in resumable answers. It used to be dropped: the client got
zero tokens and the finish reason ``stop``, an empty answer that looked complete.

The openai SDK (tests/llm/test_e2e.py) and the Vercel AI SDK in Node
(tests/llm/test_vercel_sdk.py) read it through real servers too.
"""

from __future__ import annotations

import json

import pytest
from openai.types.chat import ChatCompletionChunk

from django_sse.llm import Finish, RefusalDelta, TextDelta
from django_sse.llm._formats import HtmlFormat, VercelFormat
from django_sse.models import StreamLog
from django_sse.protocol import Event, EventParser, MessageEvent
from tests.llm import vercel_schema
from tests.llm.support import HELLO, Answer, post, provider_at
from tests.llm.upstream import Upstream, recorded_text
from tests.llm.views import API_KEY

pytestmark = pytest.mark.django_db(transaction=True)

REFUSAL = recorded_text("refusal", "refusal")


def refused(events: list[MessageEvent]) -> str:
    return "".join(e.json()["text"] for e in events if e.event == "refusal")


async def test_the_native_format_sends_the_refusal_as_refusal_events(upstream: Upstream) -> None:
    with provider_at(upstream.base_url("refusal"), LLM_MODEL="gpt-test"):
        events = await (await Answer.ask("/llm/chat/", HELLO)).rest()
    assert refused(events) == REFUSAL
    assert [e.event for e in events if e.event != "refusal"] == ["done"]
    assert events[-1].json()["finish_reason"] == "stop"
    log = await StreamLog.objects.aget()
    assert (log.outcome, log.completion_tokens) == ("completed", 10)
    # The refusal is the first thing the model said.
    assert log.time_to_first_token is not None


async def test_the_openai_format_passes_the_refusal_on_as_delta_refusal(
    upstream: Upstream,
) -> None:
    with provider_at(upstream.base_url("refusal")):
        response = await post(
            "/llm/v1/chat/completions",
            {**HELLO, "stream": True},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        answer = Answer(response)
        events = await answer.rest()
    assert events[-1].data == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(e.data)) for e in events[:-1]]
    deltas = [c.choices[0].delta for c in chunks]
    assert "".join(delta.refusal or "" for delta in deltas) == REFUSAL
    assert all(not delta.content for delta in deltas)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_the_vercel_format_shows_the_refusal_as_text_ended_by_the_content_filter(
    upstream: Upstream,
) -> None:
    with provider_at(upstream.base_url("refusal")):
        answer = await Answer.ask("/llm/vercel/", HELLO)
        await answer.rest()
    parts = vercel_schema.parse_wire(answer.raw)
    vercel_schema.validate_stream(parts)
    assert "".join(p["delta"] for p in parts if p["type"] == "text-delta") == REFUSAL
    assert parts[-1]["finishReason"] == "content-filter"


async def test_a_resumable_answer_keeps_the_refusal_for_every_follower(
    upstream: Upstream,
) -> None:
    with provider_at(upstream.base_url("refusal")):
        started = (await post("/llm/resumable/", HELLO)).json()
    first = await (await Answer.follow(started["stream_url"])).rest()
    again = await (await Answer.follow(started["stream_url"], last_event_id="1")).rest()
    assert refused(first) == REFUSAL
    assert refused(again) == REFUSAL
    assert [e.event for e in first if e.event != "refusal"] == ["start", "done"]
    assert first[-1].json()["usage"]["completion_tokens"] == 10


def test_a_refusal_after_text_is_a_text_part_of_its_own_in_the_vercel_format() -> None:
    """A model that begins to answer and then refuses: two texts, so the refusal is not
    glued to the answer's last word."""
    answer = VercelFormat(model="m")
    events = answer.start()
    for chunk in (TextDelta("Sure."), RefusalDelta(" Actually, no."), Finish("stop")):
        events += answer.chunk(chunk)
    parts = vercel_schema.parse_wire(b"".join(event.encode() for event in events))
    vercel_schema.validate_stream(parts)
    texts = [p for p in parts if p["type"] == "text-start"]
    assert len(texts) == 2
    assert parts[-1]["finishReason"] == "content-filter"


def test_the_html_format_shows_the_refusal_escaped_in_a_span_of_its_own() -> None:
    answer = HtmlFormat(model="m")
    events: list[Event] = []
    for chunk in (RefusalDelta("I can't <b>do</b> that."), Finish("stop")):
        events += answer.chunk(chunk)
    parsed = EventParser().feed(b"".join(event.encode() for event in events))
    assert [(e.event, e.data) for e in parsed] == [
        (
            "message",
            '<span class="django-sse-refusal">I can&#x27;t &lt;b&gt;do&lt;/b&gt; that.</span>',
        ),
        ("done", "stop"),
    ]
