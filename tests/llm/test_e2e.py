"""Chat views behind real ASGI servers, with the upstream on a thread of this process.

The official openai SDK streams from our OpenAI-compatible endpoint unchanged, httpx
reads the native format as plain SSE, and a client that leaves makes the server close
its upstream request within a second.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any, cast

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionContentPartParam, ChatCompletionMessageParam

from django_sse.protocol import EventParser
from tests.llm.upstream import Upstream, recorded_text
from tests.llm.views import API_KEY
from tests.servers import LiveServer

pytestmark = pytest.mark.e2e

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module", params=["uvicorn", "daphne"])
def server(request: pytest.FixtureRequest, threaded_upstream: Upstream) -> Iterator[LiveServer]:
    with LiveServer(request.param, env={"SSE_TEST_UPSTREAM": threaded_upstream.url}) as live:
        yield live


def sdk(server: LiveServer, scenario: str, key: str = API_KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{server.url}/llm/{scenario}/v1", max_retries=0)


def test_the_openai_sdk_streams_from_django_unchanged(server: LiveServer) -> None:
    stream = sdk(server, "answer").chat.completions.create(
        model="anything", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == recorded_text("answer")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_the_openai_sdks_developer_messages_reach_the_model_as_system_messages(
    server: LiveServer, threaded_upstream: Upstream
) -> None:
    """Newer SDKs and models use ``developer`` where ``system`` was; the provider gets
    ``system``, which every OpenAI-compatible server knows."""
    first = len(threaded_upstream.requests)
    stream = sdk(server, "answer").chat.completions.create(
        model="anything",
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": "Hello"},
        ],
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == recorded_text("answer")
    request = threaded_upstream.wait_request_sync(first)
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]


def test_the_openai_sdks_text_parts_reach_the_model_and_an_image_is_refused_by_name(
    server: LiveServer, threaded_upstream: Upstream
) -> None:
    """Content as a list of parts, as the SDK's types (and many pages) send it: the text
    goes to the model; an image it could not see is a 400 that names it, not dropped."""
    first = len(threaded_upstream.requests)
    question: list[ChatCompletionContentPartParam] = [
        {"type": "text", "text": "What is "},
        {"type": "text", "text": "SSE?"},
    ]
    stream = sdk(server, "answer").chat.completions.create(
        model="anything", messages=[{"role": "user", "content": question}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    request = threaded_upstream.wait_request_sync(first)
    assert request.body["messages"] == [{"role": "user", "content": "What is SSE?"}]
    image: ChatCompletionContentPartParam = {
        "type": "image_url",
        "image_url": {"url": "https://example.com/cat.png"},
    }
    with pytest.raises(openai.BadRequestError, match=r"content\[1\] has the type 'image_url'"):
        sdk(server, "answer").chat.completions.create(
            model="anything",
            messages=[{"role": "user", "content": [question[0], image]}],
            stream=True,
        )
    assert len(threaded_upstream.requests) == first + 1


def test_httpx_reads_the_openai_format_as_data_lines(server: LiveServer) -> None:
    url = f"{server.url}/llm/answer/v1/chat/completions"
    body = {"model": "m", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.stream("POST", url, json=body, headers=headers, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert text == recorded_text("answer")


def test_the_openai_sdk_gets_tool_calls(server: LiveServer) -> None:
    stream = sdk(server, "tool-calls").chat.completions.create(
        model="anything", messages=HELLO, stream=True
    )
    calls = [call for c in stream if c.choices for call in c.choices[0].delta.tool_calls or []]
    names = {
        call.index: call.function.name for call in calls if call.function and call.function.name
    }
    assert set(names.values()) == {"get_weather"}
    assert len(names) == 2


def test_the_openai_sdk_sees_a_refusal_where_it_expects_it(server: LiveServer) -> None:
    """A refused answer streams as ``delta.refusal``, which the SDK's chunks and its
    stream helper both read; not as zero tokens that look like an empty answer."""
    refusal = recorded_text("refusal", "refusal")
    chunks = list(
        sdk(server, "refusal").chat.completions.create(
            model="anything", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(delta.refusal or "" for delta in deltas) == refusal
    assert all(not delta.content for delta in deltas)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 10
    with sdk(server, "refusal").chat.completions.stream(model="anything", messages=HELLO) as helper:
        events = list(helper)
        message = helper.get_final_completion().choices[0].message
    assert message.refusal == refusal
    assert not message.content
    assert [e.refusal for e in events if e.type == "refusal.done"] == [refusal]


def test_the_openai_sdk_raises_on_our_errors(server: LiveServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(server, "answer", key="sk-wrong").chat.completions.create(
            model="m", messages=HELLO, stream=True
        )
    with pytest.raises(openai.BadRequestError, match="Only streaming"):
        sdk(server, "answer").chat.completions.create(model="m", messages=HELLO)
    with pytest.raises(openai.BadRequestError, match="must be one of system, developer, user"):
        sdk(server, "answer").chat.completions.create(
            model="m", messages=cast(Any, [{"role": "robot", "content": "x"}]), stream=True
        )
    stream = sdk(server, "mid-stream-error").chat.completions.create(
        model="m", messages=HELLO, stream=True
    )
    with pytest.raises(openai.APIError, match="The language model provider failed"):
        list(stream)


def test_leaving_closes_the_upstream_request_within_a_second(
    server: LiveServer, threaded_upstream: Upstream
) -> None:
    first = len(threaded_upstream.requests)
    # The CSRF cookie and the matching header, as a page's form or script would send.
    token = secrets.token_hex(16)
    with (
        httpx.Client(timeout=10, cookies={"csrftoken": token}) as client,
        client.stream(
            "POST",
            f"{server.url}/llm/slow-20/chat/",
            json={"prompt": "Hello"},
            headers={"X-CSRFToken": token},
        ) as response,
    ):
        assert response.status_code == 200
        parser, tokens = EventParser(), 0
        for chunk in response.iter_raw():
            tokens += sum(e.event == "token" for e in parser.feed(chunk))
            if tokens >= 3:
                break
    request = threaded_upstream.wait_request_sync(first)
    request.wait_closed_sync(timeout=1.0)
    assert request.client_closed
    assert request.tokens_written < threaded_upstream.slow_max_tokens
