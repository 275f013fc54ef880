"""The local OpenAI stand-in, driven by the real ``openai`` SDK over real HTTP.

Why: every later LLM test trusts this server to look like OpenAI to the SDK; these tests are
where that trust is earned. Expected values come from the recordings themselves, not from the
server's code.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from tests.llm import upstream as upstream_module
from tests.llm.upstream import Upstream, recorded_text, recording

MESSAGES: list[Any] = [{"role": "user", "content": "What are Server-Sent Events?"}]


def from_upstream(context: dict[str, Any]) -> bool:
    """Whether a problem the event loop reports came from the upstream server's code.

    Why: other code's leaks also land on whatever loop runs when they are collected (the SDK
    closes a forgotten AsyncOpenAI on the running loop), and must not fail these tests.
    """
    exception = context.get("exception")
    traceback = exception.__traceback__ if exception is not None else None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == upstream_module.__file__:
            return True
        traceback = traceback.tb_next
    return any("Upstream." in repr(context.get(key)) for key in ("future", "handle", "task"))


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """The server on the test's loop; fails the test on anything of its that the loop would
    only log."""
    loop = asyncio.get_running_loop()
    problems: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: problems.append(context))
    try:
        async with Upstream() as server:
            yield server
    finally:
        loop.set_exception_handler(None)
    assert server.errors == []
    assert [problem for problem in problems if from_upstream(problem)] == []


def client_for(upstream: Upstream, scenario: str, max_retries: int = 0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="test", base_url=upstream.base_url(scenario), max_retries=max_retries
    )


async def ask(client: openai.AsyncOpenAI, **options: Any) -> Any:
    """A streamed chat completion of MESSAGES."""
    return await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, **options
    )


def recorded_tool_calls(name: str) -> dict[int, tuple[str, str]]:
    """Tool-call index -> (function name, joined arguments), folded from the recording."""
    calls: dict[int, tuple[str, str]] = {}
    for chunk in recording(name):
        for choice in chunk.get("choices") or []:
            for call in choice["delta"].get("tool_calls") or []:
                name_so_far, arguments = calls.get(call["index"], ("", ""))
                function = call.get("function") or {}
                calls[call["index"]] = (
                    name_so_far + (function.get("name") or ""),
                    arguments + (function.get("arguments") or ""),
                )
    return calls


async def collect_content(stream: Any, into: list[str]) -> None:
    """Appends each chunk's content to ``into``, so a caller keeps what came before an error."""
    async for chunk in stream:
        into.append(chunk.choices[0].delta.content or "")


async def test_answer_replays_the_recording_with_usage(upstream):
    async with client_for(upstream, "answer") as client:
        stream = await ask(client, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]

    assert all(isinstance(chunk, openai.types.chat.ChatCompletionChunk) for chunk in chunks)
    assert len(chunks) == len(recording("answer"))
    assert chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == recorded_text("answer")
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.total_tokens == (
        usage_chunk.usage.prompt_tokens + usage_chunk.usage.completion_tokens
    )
    assert all(chunk.usage is None for chunk in chunks[:-1])

    [record] = upstream.requests
    assert record.scenario == "answer"
    assert record.body["model"] == "gpt-4o-mini"
    assert record.body["messages"] == MESSAGES
    assert record.body["stream"] is True
    assert record.body["stream_options"] == {"include_usage": True}
    assert record.headers["authorization"] == "Bearer test"
    assert record.status == 200
    assert record.completed
    assert record.tokens_written == sum(
        1
        for chunk in recording("answer")
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content")
    )


async def test_usage_chunk_and_field_only_when_asked_for(upstream):
    async with client_for(upstream, "answer") as client:
        stream = await ask(client)
        chunks = [chunk async for chunk in stream]

    assert all(chunk.choices for chunk in chunks)
    # OpenAI leaves the usage field out entirely, rather than sending null.
    assert all("usage" not in chunk.model_fields_set for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == recorded_text(
        "answer"
    )


async def test_a_refusal_streams_as_refusal_deltas_with_no_content(upstream):
    async with client_for(upstream, "refusal") as client:
        stream = await ask(client, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]

    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    assert all(not delta.content for delta in deltas)
    refusal = "".join(delta.refusal or "" for delta in deltas)
    assert refusal == recorded_text("refusal", "refusal")
    assert refusal.startswith("I'm sorry")
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert upstream.requests[0].tokens_written == 10


@pytest.mark.parametrize("missing", ["prompt", "completion"])
async def test_partial_usage_leaves_a_count_out(upstream, missing):
    async with client_for(upstream, f"partial-usage-{missing}") as client:
        stream = await ask(client, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "t0 t1 t2 "
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage = chunks[-1].usage
    assert usage is not None
    sent = usage.model_fields_set
    assert f"{missing}_tokens" not in sent
    assert "total_tokens" not in sent
    assert {"prompt_tokens", "completion_tokens"} - sent == {f"{missing}_tokens"}


async def test_tool_call_deltas_parse(upstream):
    async with client_for(upstream, "tool-calls") as client:
        stream = await ask(client)
        chunks = [chunk async for chunk in stream]

    calls: dict[int, tuple[str, str]] = {}
    ids: dict[int, str] = {}
    for chunk in chunks:
        for call in chunk.choices[0].delta.tool_calls or []:
            name, arguments = calls.get(call.index, ("", ""))
            if call.id:
                ids[call.index] = call.id
            if call.function is not None:
                name += call.function.name or ""
                arguments += call.function.arguments or ""
            calls[call.index] = (name, arguments)

    assert calls == recorded_tool_calls("tool-calls")
    assert sorted(calls) == [0, 1]
    assert all(call_id.startswith("call_") for call_id in ids.values())
    assert json.loads(calls[1][1]) == {"city": "Lyon", "unit": "celsius"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_mid_stream_error_raises_api_error_after_content(upstream):
    content: list[str] = []
    async with client_for(upstream, "mid-stream-error") as client:
        stream = await ask(client)
        with pytest.raises(openai.APIError) as caught:
            await collect_content(stream, content)

    error = caught.value
    assert "".join(content) == recorded_text("mid-stream-error") != ""
    assert not isinstance(error, openai.APIStatusError)  # the HTTP status was 200
    assert error.type == "server_error"
    assert error.body == recording("mid-stream-error")[-1]["error"]
    assert error.message.startswith("The server had an error")


@pytest.mark.parametrize(
    ("what", "raised"),
    [("not-json", json.JSONDecodeError), ("not-utf-8", UnicodeDecodeError)],
)
async def test_an_unreadable_line_fails_the_sdk_after_three_tokens(upstream, what, raised):
    content: list[str] = []
    async with client_for(upstream, f"unreadable-{what}") as client:
        stream = await ask(client)
        with pytest.raises(raised):
            await collect_content(stream, content)
    assert "".join(content) == "t0 t1 t2 "


async def test_the_unreadable_lines_are_sent_as_they_are(upstream):
    """What the SDK passes on as JSON, but not as a chunk: a list, a number for text,
    an object for a tool call's arguments."""
    async with httpx.AsyncClient(
        base_url=upstream.url, headers={"Authorization": "Bearer k"}
    ) as http:
        seen = {}
        for what in ("not-an-object", "content-not-text", "arguments-not-text"):
            body = {"model": "m", "messages": MESSAGES, "stream": True}
            response = await http.post(f"/unreadable-{what}/v1/chat/completions", json=body)
            lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
            seen[what] = json.loads(lines[4].removeprefix("data: "))
            assert lines[-1] == "data: [DONE]"
    assert seen["not-an-object"] == ["t3 "]
    assert seen["content-not-text"]["choices"][0]["delta"]["content"] == 3
    (call,) = seen["arguments-not-text"]["choices"][0]["delta"]["tool_calls"]
    assert call["function"]["arguments"] == {"city": "Paris"}


async def test_unauthorized(upstream):
    async with client_for(upstream, "unauthorized") as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await ask(client)

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.request_id == upstream.requests[0].request_id


async def test_rate_limited_says_when_to_retry(upstream):
    async with client_for(upstream, "rate-limited") as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(client)

    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    assert len(upstream.requests) == 1


async def test_sdk_retries_a_rate_limit_after_retry_after(upstream):
    # A fractional retry-after is honoured as given; "0" would fall back to the backoff.
    async with client_for(upstream, "rate-limited-0.01", max_retries=1) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(client)

    assert caught.value.response.headers["retry-after"] == "0.01"
    first, second = upstream.requests
    assert first.headers["x-stainless-retry-count"] == "0"
    assert second.headers["x-stainless-retry-count"] == "1"
    assert first.body == second.body


async def test_context_length_exceeded(upstream):
    async with client_for(upstream, "context-length") as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await ask(client)

    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "messages"


async def test_server_error(upstream):
    async with client_for(upstream, "server-error") as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await ask(client)

    assert caught.value.status_code == 500
    assert caught.value.type == "server_error"


async def test_closing_the_sdk_stream_is_seen_and_stops_the_writes(upstream):
    async with client_for(upstream, "slow-20") as client:
        stream = await ask(client)
        first = [await anext(stream) for _ in range(3)]
        record = upstream.requests[-1]
        await stream.close()

        # The whole stream would take 500 x 20 ms = 10 s; finishing within the timeout
        # means the server stopped on the close, not at the end.
        await record.wait_closed(timeout=5)
        await record.wait_finished(timeout=5)

    assert [chunk.choices[0].delta.content for chunk in first] == ["", "t0 ", "t1 "]
    assert record.closed_by == "client"
    assert record.outcome == "client-closed"
    assert 2 <= record.tokens_written < upstream.slow_max_tokens


async def test_fast_tokens_carry_their_index(upstream):
    async with client_for(upstream, "fast-2000") as client:
        stream = await ask(client, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]

    contents = [chunk.choices[0].delta.content for chunk in chunks[1:-2]]
    assert [int(content[1:]) for content in contents if content] == list(range(2000))
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2000
    record = upstream.requests[0]
    assert record.tokens_written == 2000
    assert record.token_times == sorted(record.token_times)


async def test_requests_share_a_keep_alive_connection(upstream):
    async with client_for(upstream, "answer") as client:
        for _ in range(3):
            stream = await ask(client)
            _ = [chunk async for chunk in stream]

    assert len({record.connection_id for record in upstream.requests}) == 1
    assert all(record.completed for record in upstream.requests)


async def test_non_streamed_completion(upstream):
    async with client_for(upstream, "answer") as client:
        answer = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    async with client_for(upstream, "tool-calls") as client:
        calls = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    async with client_for(upstream, "slow-20") as client:
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert answer.choices[0].message.content == recorded_text("answer")
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    tool_calls = calls.choices[0].message.tool_calls or []
    assert {
        index: (call.function.name, call.function.arguments)
        for index, call in enumerate(tool_calls)
        if isinstance(call, openai.types.chat.ChatCompletionMessageFunctionToolCall)
    } == recorded_tool_calls("tool-calls")
    assert calls.choices[0].finish_reason == "tool_calls"


async def test_requests_are_validated(upstream):
    auth = {"authorization": "Bearer test"}
    url = "/answer/v1/chat/completions"
    async with httpx.AsyncClient(base_url=upstream.url) as http:
        no_messages = await http.post(url, json={"model": "m"}, headers=auth)
        no_model = await http.post(url, json={"messages": MESSAGES}, headers=auth)
        not_json = await http.post(url, content=b"{nope", headers=auth)
        no_key = await http.post(url, json={"model": "m", "messages": MESSAGES})
        unknown = await http.post(
            "/no-such-scenario/v1/chat/completions",
            json={"model": "m", "messages": MESSAGES},
            headers=auth,
        )
        wrong_method = await http.get(url, headers=auth)

    assert no_messages.status_code == 400
    assert no_messages.json()["error"]["param"] == "messages"
    assert no_model.status_code == 400
    assert "model" in no_model.json()["error"]["message"]
    assert not_json.status_code == 400
    assert no_key.status_code == 401
    assert unknown.status_code == 404
    assert wrong_method.status_code == 404
    for response in (no_messages, no_model, not_json, no_key, unknown, wrong_method):
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert len({record.connection_id for record in upstream.requests}) == 1


async def test_chunked_request_bodies_are_refused_clearly(upstream):
    async def body() -> AsyncIterator[bytes]:
        yield b'{"model": "m", '
        yield b'"messages": []}'

    async with httpx.AsyncClient(base_url=upstream.url) as http:
        response = await http.post(
            "/answer/v1/chat/completions", content=body(), headers={"authorization": "Bearer t"}
        )

    assert response.status_code == 501
    assert "Content-Length" in response.json()["error"]["message"]
    assert upstream.requests == []


async def test_closing_the_server_aborts_streams_in_flight(upstream):
    async with client_for(upstream, "slow-10") as client:
        stream = await ask(client)
        await anext(stream)
        record = upstream.requests[-1]
        await upstream.close()

        assert record.outcome == "server-closed"
        assert record.closed_by == "server"
        with pytest.raises(openai.APIConnectionError):
            async for _ in stream:
                pass


async def test_thread_mode_awaited_from_another_loop():
    with Upstream.in_thread() as upstream:
        async with client_for(upstream, "slow-10") as client:
            stream = await ask(client)
            record = await upstream.wait_request(0)
            await anext(stream)
            await stream.close()
            await record.wait_closed(timeout=5)
            await record.wait_finished(timeout=5)

        assert record.outcome == "client-closed"
        assert upstream.errors == []


def test_thread_mode_with_the_sync_client():
    with Upstream.in_thread() as upstream:
        client = openai.OpenAI(api_key="test", base_url=upstream.base_url("answer"), max_retries=0)
        with client:
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
            assert text == recorded_text("answer")
            assert upstream.wait_request_sync(0).body["model"] == "gpt-4o-mini"

            client = client.with_options(base_url=upstream.base_url("slow-10"))
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            next(stream)
            stream.close()
            record = upstream.wait_request_sync(1)
            record.wait_closed_sync(timeout=5)
            record.wait_finished_sync(timeout=5)

        assert record.outcome == "client-closed"
        assert upstream.errors == []
