"""The Vercel AI SDK itself (the ``ai`` package from npm, in Node) reading ChatView's
Vercel format through a real server: the last 5.x and the newest release."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import node
from tests.llm.upstream import Upstream, recorded_text
from tests.servers import LiveServer

pytestmark = pytest.mark.e2e

CLIENT = Path(__file__).with_name("vercel_client.mjs")


@pytest.fixture(scope="module")
def server(threaded_upstream: Upstream) -> Iterator[LiveServer]:
    with LiveServer("uvicorn", env={"SSE_TEST_UPSTREAM": threaded_upstream.url}) as live:
        yield live


@pytest.mark.parametrize("release", ["ai@5", "ai@latest"])
def test_use_chat_sees_the_text_the_finish_reason_and_the_usage(
    server: LiveServer, release: str
) -> None:
    folder = node.packages(release.replace("@", "-"), release)
    out = json.loads(node.run(folder, CLIENT, f"{server.url}/llm/answer/vercel/"))
    assert out["errors"] == [], node.version(folder, "ai")
    message = out["message"]
    assert message["role"] == "assistant"
    text = "".join(part["text"] for part in message["parts"] if part["type"] == "text")
    assert text == recorded_text("answer")
    metadata = message["metadata"]
    assert metadata["finishReason"] == "stop"
    usage = metadata["usage"]
    assert usage["inputTokens"] > 0
    assert usage["outputTokens"] > 0
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]


@pytest.mark.parametrize("release", ["ai@5", "ai@latest"])
def test_use_chat_shows_a_refusal_as_text_and_its_finish_as_content_filter(
    server: LiveServer, release: str
) -> None:
    """As the AI SDK's own OpenAI provider shows a refusal: the model's words as text, and
    the finish reason content-filter, not an empty message that stopped normally."""
    folder = node.packages(release.replace("@", "-"), release)
    out = json.loads(node.run(folder, CLIENT, f"{server.url}/llm/refusal/vercel/"))
    assert out["errors"] == [], node.version(folder, "ai")
    message = out["message"]
    text = "".join(part["text"] for part in message["parts"] if part["type"] == "text")
    assert text == recorded_text("refusal", "refusal")
    assert message["metadata"]["finishReason"] == "content-filter"
    assert message["metadata"]["usage"]["outputTokens"] == 10
