"""The checker in vercel_schema accepts what the AI SDK accepts and rejects the rest."""

from __future__ import annotations

import copy
import json

import pytest

from tests.llm.vercel_schema import (
    EXPECTED_HEADERS,
    UPSTREAM_HEADERS,
    check_headers,
    parse_wire,
    validate_chunk,
    validate_stream,
)

SIMPLE = [
    {"type": "start", "messageId": "msg-1"},
    {"type": "start-step"},
    {"type": "text-start", "id": "text-1"},
    {"type": "text-delta", "id": "text-1", "delta": "Hello, "},
    {"type": "text-delta", "id": "text-1", "delta": "world!"},
    {"type": "text-end", "id": "text-1"},
    {"type": "finish-step"},
    {"type": "finish", "finishReason": "stop"},
]

# Two steps: reasoning, a streamed tool call and its result, then the answer with a
# source, a data part and metadata.
RICH = [
    {"type": "start", "messageId": "msg-2", "messageMetadata": {"model": "gpt-test"}},
    {"type": "start-step"},
    {"type": "reasoning-start", "id": "r-1"},
    {"type": "reasoning-delta", "id": "r-1", "delta": "The user wants the weather."},
    {"type": "reasoning-end", "id": "r-1", "providerMetadata": {"openai": {"itemId": "x"}}},
    {"type": "tool-input-start", "toolCallId": "call-1", "toolName": "weather"},
    {"type": "tool-input-delta", "toolCallId": "call-1", "inputTextDelta": '{"city":'},
    {"type": "tool-input-delta", "toolCallId": "call-1", "inputTextDelta": '"Paris"}'},
    {
        "type": "tool-input-available",
        "toolCallId": "call-1",
        "toolName": "weather",
        "input": {"city": "Paris"},
    },
    {"type": "tool-output-available", "toolCallId": "call-1", "output": {"temp": 21.5}},
    {"type": "finish-step"},
    {"type": "start-step"},
    {"type": "text-start", "id": "text-2"},
    {"type": "text-delta", "id": "text-2", "delta": "It is 21.5 °C in Paris."},
    {"type": "text-end", "id": "text-2"},
    {"type": "source-url", "sourceId": "s-1", "url": "https://example.com", "title": "Ex"},
    {"type": "data-weather", "id": "w-1", "data": {"city": "Paris", "temp": 21.5}},
    {"type": "data-progress", "data": 1.0, "transient": True},
    {"type": "message-metadata", "messageMetadata": {"tokens": 42}},
    {"type": "finish-step"},
    {"type": "finish", "finishReason": "tool-calls", "messageMetadata": {"done": True}},
]


def wire(chunks, *, done=True):
    body = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks)
    return body + ("data: [DONE]\n\n" if done else "")


def with_change(chunks, index, chunk):
    changed = copy.deepcopy(chunks)
    changed[index] = chunk
    return changed


# --- valid streams ------------------------------------------------------------------


@pytest.mark.parametrize("chunks", [SIMPLE, RICH], ids=["simple", "rich"])
def test_valid_streams_pass(chunks):
    for chunk in chunks:
        validate_chunk(chunk)
    validate_stream(chunks)


def test_minimal_stream_without_optional_fields():
    validate_stream([{"type": "start"}, {"type": "finish"}])


@pytest.mark.parametrize(
    "ending",
    [
        [{"type": "error", "errorText": "The provider failed."}],
        [{"type": "error", "errorText": "boom"}, {"type": "finish-step"}, {"type": "finish"}],
        [{"type": "error", "errorText": "boom"}, {"type": "finish", "finishReason": "error"}],
        [{"type": "abort"}],
        [{"type": "abort", "reason": "client disconnected"}, {"type": "finish"}],
    ],
    ids=["error", "error-finish-step-finish", "error-finish", "abort", "abort-reason-finish"],
)
def test_error_and_abort_endings_pass(ending):
    # The text part is left open: the client stops at the error, so that is fine.
    head = SIMPLE[:4]
    validate_stream(head + ending)


def test_other_chunk_types_pass():
    for chunk in [
        {"type": "file", "url": "https://example.com/a.png", "mediaType": "image/png"},
        {"type": "source-document", "sourceId": "d", "mediaType": "text/plain", "title": "T"},
        {"type": "tool-output-error", "toolCallId": "c", "errorText": "failed"},
        {"type": "tool-output-denied", "toolCallId": "c"},
        {"type": "tool-approval-request", "approvalId": "a", "toolCallId": "c"},
        {
            "type": "tool-input-error",
            "toolCallId": "c",
            "toolName": "t",
            "input": "not json",
            "errorText": "bad input",
            "dynamic": True,
        },
        {"type": "tool-output-available", "toolCallId": "c", "output": None, "preliminary": True},
        {"type": "data-x", "data": None},
    ]:
        validate_chunk(chunk)


# --- invalid chunks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        ({"type": "text-delta", "delta": "hi"}, "text-delta chunk: missing required field.* id"),
        ({"type": "text-delta", "id": "t", "delta": 3}, "field delta must be a string, got int"),
        ({"type": "text-start", "id": 7}, "field id must be a string"),
        ({"type": "text", "text": "hi"}, "unknown chunk type 'text'"),
        ({"type": "reasoning-file", "url": "u", "mediaType": "m"}, "unknown chunk type"),
        ({"type": "tool-approval-response", "approvalId": "a"}, "unknown chunk type"),
        ({"delta": "hi"}, "needs a string 'type'"),
        ({"type": None}, "needs a string 'type'"),
        (["text-delta"], "must be a JSON object, got list"),
        ({"type": "finish", "finishReason": "stop", "usage": {}}, "unknown field.* usage"),
        ({"type": "text-delta", "id": "t", "delta": "x", "text": "x"}, "unknown field.* text"),
        ({"type": "start-step", "stepId": 1}, "unknown field.* stepId"),
        (
            {"type": "tool-input-start", "toolCallId": "c", "toolName": "t", "_meta": {}},
            "unknown field.* _meta",
        ),
        ({"type": "start", "messageId": None}, "got null .leave an optional field out"),
        ({"type": "finish", "finishReason": "unknown"}, "field finishReason must be one of"),
        ({"type": "finish", "finishReason": "end_turn"}, "field finishReason must be one of"),
        ({"type": "data-weather", "id": "w"}, "data-weather chunk: missing required.* data"),
        ({"type": "data-weather", "data": {}, "transient": "yes"}, "transient must be a bool"),
        ({"type": "data-weather", "data": float("nan")}, "data must be a JSON value"),
        ({"type": "message-metadata"}, "missing required field.* messageMetadata"),
        ({"type": "tool-output-available", "toolCallId": "c"}, "missing required.* output"),
        (
            {"type": "text-start", "id": "t", "providerMetadata": {"openai": "x"}},
            "providerMetadata must be an object of per-provider objects",
        ),
        ({"type": "error"}, "error chunk: missing required field.* errorText"),
        ({"type": "error", "message": "boom"}, "missing required field.* errorText"),
        ({"type": "abort", "reason": 3}, "field reason must be a string"),
        (
            {"type": "source-document", "sourceId": "d", "mediaType": "text/plain"},
            "missing required field.* title",
        ),
    ],
)
def test_invalid_chunk_is_rejected(chunk, message):
    with pytest.raises(ValueError, match=message):
        validate_chunk(chunk)


# --- invalid order ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ([], "no chunks"),
        (SIMPLE[1:], r"chunk 0 \(start-step\): the first chunk must be 'start'"),
        ([*SIMPLE[:2], SIMPLE[0], *SIMPLE[2:]], "'start' may only be the first chunk"),
        (
            [*SIMPLE[:2], SIMPLE[3], *SIMPLE[2:]],
            r"chunk 2 \(text-delta\): no open 'text-start' with id 'text-1'",
        ),
        (
            with_change(SIMPLE, 4, {"type": "text-delta", "id": "text-9", "delta": "x"}),
            "no open 'text-start' with id 'text-9'",
        ),
        ([*SIMPLE[:6], SIMPLE[5], *SIMPLE[6:]], "no open 'text-start' with id 'text-1'"),
        ([*SIMPLE[:3], SIMPLE[2], *SIMPLE[3:]], "id 'text-1' is already open"),
        (SIMPLE[:5] + SIMPLE[6:], r"parts still open: \['text-1'\]"),
        ([SIMPLE[0], *SIMPLE[2:6], SIMPLE[7]], "between 'start-step' and 'finish-step'"),
        (SIMPLE[:2] + SIMPLE[1:], "a step is already open"),
        (SIMPLE[:1] + SIMPLE[6:], "no step is open"),
        (SIMPLE[:6] + SIMPLE[7:], "a step is still open"),
        ([*SIMPLE, SIMPLE[-1]], "nothing may follow 'finish'"),
        (SIMPLE[:-1], "must end with 'finish', 'error' or 'abort'"),
        (
            [*SIMPLE[:4], {"type": "error", "errorText": "x"}, *SIMPLE[4:]],
            r"chunk 5 \(text-delta\): only 'finish-step' or 'finish' may follow 'error'",
        ),
        (
            [*SIMPLE[:4], {"type": "error", "errorText": "x"}, {"type": "finish-step"}],
            "after 'error' the stream must end, or end with 'finish'",
        ),
        (
            with_change(SIMPLE, 3, {"type": "text-delta", "id": "text-1"}),
            r"chunk 3: text-delta chunk: missing required field",
        ),
        (
            with_change(RICH, 5, {"type": "reasoning-start", "id": "r-2"}),
            "no streaming 'tool-input-start' for tool call 'call-1'",
        ),
        (
            with_change(
                RICH, 9, {"type": "tool-output-available", "toolCallId": "c9", "output": 1}
            ),
            "no tool call 'c9' with complete input",
        ),
        (
            with_change(
                RICH,
                8,
                {
                    "type": "tool-input-available",
                    "toolCallId": "call-1",
                    "toolName": "w",
                    "input": 1,
                },
            ),
            "toolName 'w' differs from the start's 'weather'",
        ),
        (RICH[:8] + RICH[10:], r"tool input still streaming for \['call-1'\]"),
    ],
)
def test_invalid_order_is_rejected(chunks, message):
    with pytest.raises(ValueError, match=message):
        validate_stream(chunks)


# --- the wire -----------------------------------------------------------------------


def test_parse_wire_round_trip():
    assert parse_wire(wire(SIMPLE).encode()) == SIMPLE


def test_parse_wire_ignores_comments_ids_and_retry():
    body = ": stream-open\n\n" + wire(SIMPLE[:1], done=False) + ":\nid: 7\nretry: 1000\n\n"
    body += "data:" + json.dumps(SIMPLE[1]) + "\n\n" + wire(SIMPLE[2:])
    assert parse_wire(body) == SIMPLE


def test_wire_transcript_of_a_text_answer():
    body = (
        'data: {"type":"start","messageId":"msg-1"}\n\n'
        'data: {"type":"start-step"}\n\n'
        'data: {"type":"text-start","id":"text-1"}\n\n'
        'data: {"type":"text-delta","id":"text-1","delta":"Hello, "}\n\n'
        'data: {"type":"text-delta","id":"text-1","delta":"world!"}\n\n'
        'data: {"type":"text-end","id":"text-1"}\n\n'
        'data: {"type":"finish-step"}\n\n'
        'data: {"type":"finish","finishReason":"stop"}\n\n'
        "data: [DONE]\n\n"
    )
    validate_stream(parse_wire(body))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (wire(SIMPLE, done=False), r"does not end with 'data: \[DONE\]'"),
        (wire(SIMPLE) + wire(SIMPLE[:1], done=False), r"an event follows 'data: \[DONE\]'"),
        (wire(SIMPLE)[:-1], "must end with a complete event"),
        ("event: chunk\n" + wire(SIMPLE), "unexpected field 'event'"),
        ("data: {not json}\n\n" + wire(SIMPLE), "data is not JSON"),
        ('data: ["start"]\n\n' + wire(SIMPLE), "data is not a JSON object"),
        ('data: {"type":\ndata: "start"}\n\n' + wire(SIMPLE), "one event has 2 data lines"),
        (wire(SIMPLE).replace("\n", "\r\n"), "LF line endings only"),
    ],
)
def test_bad_wire_is_rejected(body, message):
    with pytest.raises(ValueError, match=message):
        parse_wire(body)


# --- headers ------------------------------------------------------------------------


def test_headers_constants():
    assert UPSTREAM_HEADERS["x-vercel-ai-ui-message-stream"] == "v1"
    assert "connection" not in EXPECTED_HEADERS  # hop-by-hop: not for a WSGI app to set
    assert set(EXPECTED_HEADERS) == set(UPSTREAM_HEADERS) - {"connection"}


def test_check_headers_accepts_upstream_and_our_style():
    check_headers(UPSTREAM_HEADERS)
    check_headers(
        {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-transform",
            "X-Accel-Buffering": "no",
            "X-Vercel-AI-UI-Message-Stream": "v1",
        }
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("x-vercel-ai-ui-message-stream", None, "missing header x-vercel-ai-ui-message-stream"),
        ("x-vercel-ai-ui-message-stream", "v2", "expected 'v1'"),
        ("content-type", "application/json", "header content-type is 'application/json'"),
        ("cache-control", "max-age=60", "header cache-control"),
        ("x-accel-buffering", None, "missing header x-accel-buffering"),
    ],
)
def test_check_headers_rejects(name, value, message):
    headers = dict(EXPECTED_HEADERS)
    if value is None:
        del headers[name]
    else:
        headers[name] = value
    with pytest.raises(ValueError, match=message):
        check_headers(headers)
