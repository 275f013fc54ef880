"""The output formats, chunk by chunk: native events, OpenAI chunks, Vercel parts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk

from django_sse.llm._formats import FORMATS, HtmlFormat, NativeFormat, OpenAIFormat, VercelFormat
from django_sse.llm._types import Chunk, Finish, ProviderError, TextDelta, ToolCallDelta, Usage
from django_sse.protocol import Event, EventParser
from tests.llm import vercel_schema

ANSWER: list[Chunk] = [
    TextDelta("Hello"),
    TextDelta(", world"),
    Finish("stop", Usage(prompt_tokens=5, completion_tokens=2)),
]
TOOL_CALL: list[Chunk] = [
    TextDelta("Let me look."),
    ToolCallDelta(index=0, id="call_1", name="weather", arguments='{"ci'),
    ToolCallDelta(index=0, arguments='ty": "Oslo"}'),
    Finish("tool_calls"),
]
FAILED = ProviderError("upstream_error", "The language model provider failed.")


def render(answer: Any, chunks: list[Chunk], error: ProviderError | None = None) -> bytes:
    events: list[Event] = answer.start()
    for chunk in chunks:
        events += answer.chunk(chunk)
    if error is not None:
        events += answer.error(error)
    return b"".join(event.encode() for event in events)


def test_native_events() -> None:
    events = EventParser().feed(render(NativeFormat(model="m"), ANSWER))
    assert [(e.event, e.json()) for e in events[:2]] == [
        ("token", {"text": "Hello"}),
        ("token", {"text": ", world"}),
    ]
    assert events[2].event == "done"
    assert events[2].json() == {
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
        "model": "m",
    }


def test_native_tool_calls_and_errors() -> None:
    events = EventParser().feed(render(NativeFormat(model="m"), TOOL_CALL[:2], FAILED))
    assert events[1].event == "tool_call"
    assert events[1].json() == {"index": 0, "id": "call_1", "name": "weather", "arguments": '{"ci'}
    assert (events[2].event, events[2].json()) == ("error", FAILED.as_dict())


def openai_chunks(raw: bytes) -> list[Any]:
    """Each data line as the openai SDK would read it; [DONE] as the string."""
    events = EventParser().feed(raw)
    assert all(e.event == "message" for e in events)
    return [e.data if e.data == "[DONE]" else json.loads(e.data) for e in events]


def test_openai_chunks_parse_as_the_sdk_types() -> None:
    chunks = openai_chunks(render(OpenAIFormat(model="m"), ANSWER))
    assert chunks[-1] == "[DONE]"
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks[:-1]]
    assert {c.id for c in parsed} == {parsed[0].id}
    assert parsed[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
    assert text == "Hello, world"
    assert [c.choices[0].finish_reason for c in parsed if c.choices][-1] == "stop"
    usage = parsed[-1].usage
    assert usage is not None
    assert parsed[-1].choices == []
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (5, 2, 7)


def test_openai_without_usage_sends_no_usage_chunk() -> None:
    chunks = openai_chunks(render(OpenAIFormat(model="m", include_usage=False), ANSWER))
    assert all("usage" not in c for c in chunks[:-1])
    assert all(c["choices"] for c in chunks[:-1])


def test_openai_tool_call_deltas() -> None:
    chunks = openai_chunks(render(OpenAIFormat(model="m"), TOOL_CALL))
    calls = [
        call
        for c in chunks[:-1]
        if c["choices"]
        for call in ChatCompletionChunk.model_validate(c).choices[0].delta.tool_calls or []
    ]
    assert calls[0].id == "call_1"
    assert calls[0].type == "function"
    assert calls[0].function is not None
    assert calls[0].function.name == "weather"
    assert "".join(c.function.arguments or "" for c in calls if c.function) == '{"city": "Oslo"}'


def test_openai_error_is_the_shape_its_sdk_raises_on() -> None:
    chunks = openai_chunks(render(OpenAIFormat(model="m"), ANSWER[:1], FAILED))
    assert chunks[-1] == {
        "error": {
            "message": FAILED.message,
            "type": "upstream_error",
            "code": "upstream_error",
            "param": None,
        }
    }


@pytest.mark.parametrize("chunks", [ANSWER, TOOL_CALL, [Finish("stop")]])
def test_vercel_parts_follow_the_schema(chunks: list[Chunk]) -> None:
    parts = vercel_schema.parse_wire(render(VercelFormat(model="m"), chunks))
    vercel_schema.validate_stream(parts)
    assert parts[0]["type"] == "start"
    assert parts[-1]["type"] == "finish"
    assert parts[-1]["finishReason"] == parts[-1]["messageMetadata"]["finishReason"]


@pytest.mark.parametrize(
    ("finish", "metadata"),
    [
        (
            Finish("stop", Usage(prompt_tokens=5, completion_tokens=2)),
            {
                "finishReason": "stop",
                "usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7},
            },
        ),
        (Finish("tool_calls"), {"finishReason": "tool-calls"}),
        (Finish("content_filter"), {"finishReason": "content-filter"}),
        (Finish("end_turn"), {"finishReason": "other"}),
    ],
)
def test_vercel_finish_carries_the_reason_and_usage(
    finish: Finish, metadata: dict[str, object]
) -> None:
    parts = vercel_schema.parse_wire(render(VercelFormat(model="m"), [finish]))
    vercel_schema.validate_stream(parts)
    assert parts[-1] == {
        "type": "finish",
        "finishReason": metadata["finishReason"],
        "messageMetadata": metadata,
    }


def test_vercel_text_and_tool_input() -> None:
    parts = vercel_schema.parse_wire(render(VercelFormat(model="m"), TOOL_CALL))
    text = "".join(p["delta"] for p in parts if p["type"] == "text-delta")
    assert text == "Let me look."
    (available,) = [p for p in parts if p["type"] == "tool-input-available"]
    assert available == {
        "type": "tool-input-available",
        "toolCallId": "call_1",
        "toolName": "weather",
        "input": {"city": "Oslo"},
    }


def test_vercel_error_ends_the_stream_validly() -> None:
    parts = vercel_schema.parse_wire(render(VercelFormat(model="m"), ANSWER[:1], FAILED))
    vercel_schema.validate_stream(parts)
    assert parts[-1] == {"type": "error", "errorText": FAILED.message}


def test_vercel_headers() -> None:
    assert VercelFormat.headers == {"x-vercel-ai-ui-message-stream": "v1"}


def test_every_format_is_registered() -> None:
    assert set(FORMATS) == {"native", "openai", "vercel", "html"}


def test_openai_without_usage_from_the_provider_sends_no_usage_chunk() -> None:
    chunks = openai_chunks(render(OpenAIFormat(model="m"), [TextDelta("x"), Finish("stop")]))
    assert chunks[-1] == "[DONE]"
    assert all(c["choices"] for c in chunks[:-1])


def test_html_pieces_are_escaped_and_unnamed_so_htmx_swaps_them() -> None:
    hostile: list[Chunk] = [
        TextDelta("<img src=x onerror=alert(1)>"),
        TextDelta(" & "),
        TextDelta("\n"),
        TextDelta('"quoted" </script>'),
        TextDelta(""),
        ToolCallDelta(index=0, id="c", name="n", arguments="{}"),
        Finish("stop"),
    ]
    events = EventParser().feed(render(HtmlFormat(model="m"), hostile))
    assert [(e.event, e.data) for e in events] == [
        ("message", "&lt;img src=x onerror=alert(1)&gt;"),
        ("message", " &amp; "),
        ("message", "<span>\n</span>"),
        ("message", "&quot;quoted&quot; &lt;/script&gt;"),
        ("done", "stop"),
    ]


def test_an_html_failure_is_shown_escaped_then_done() -> None:
    failed = ProviderError("upstream_error", "Bad <b>gateway</b>")
    events = EventParser().feed(render(HtmlFormat(model="m"), [TextDelta("Hi")], failed))
    assert [(e.event, e.data) for e in events] == [
        ("message", "Hi"),
        (
            "message",
            '<p class="django-sse-error" role="alert">Bad &lt;b&gt;gateway&lt;/b&gt;</p>',
        ),
        ("done", "error"),
    ]
