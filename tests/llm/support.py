"""Chat views driven in-process against the local OpenAI-format upstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.test import AsyncClient, override_settings

from django_sse.llm import OpenAIProvider, get_provider
from django_sse.protocol import EventParser, MessageEvent
from django_sse.response import SSEResponse

READ_TIMEOUT = 10.0

HELLO = {"messages": [{"role": "user", "content": "Hello"}]}

# What the split-pairs recording's text becomes: its emoji whole again, though it came
# in two escaped halves, and what no UTF-8 can carry (or PostgreSQL store) replaced.
SPLIT_PAIRS_TEXT = "Smile \U0001f600 and a NUL \ufffd and a lone \ufffd end."


# The providers tests used on the running loop, for close_providers() to close.
used: list[OpenAIProvider] = []


@contextmanager
def provider_at(base_url: str, **settings: Any) -> Iterator[None]:
    """Chat views use the OpenAI provider at ``base_url``, without retries."""
    options = {"LLM_BASE_URL": base_url, "LLM_MAX_RETRIES": 0, "LLM_TIMEOUT": 10.0, **settings}
    with override_settings(DJANGO_SSE={"LOG_STREAMS": True, **options}):
        provider = get_provider()
        assert isinstance(provider, OpenAIProvider)
        used.append(provider)
        yield


async def close_providers() -> None:
    """Close the SDK clients of this test's loop, which ends with the test."""
    while used:
        await used.pop().aclose()


async def post(path: str, body: Any, client: AsyncClient | None = None, **kwargs: Any) -> Any:
    return await (client or AsyncClient()).post(
        path, json.dumps(body), content_type="application/json", **kwargs
    )


class Answer:
    """A chat view's response, read chunk by chunk from its engine."""

    def __init__(self, response: Any) -> None:
        assert isinstance(response, SSEResponse), (response.status_code, response.content)
        self.response = response
        self.raw = b""
        self._chunks = response._engine
        self._parser = EventParser()
        self.events: list[MessageEvent] = []

    @classmethod
    async def ask(cls, path: str, body: Any, **kwargs: Any) -> Answer:
        response = await post(path, body, **kwargs)
        assert isinstance(response, SSEResponse), (response.status_code, response.content)
        return cls(response)

    @classmethod
    async def follow(cls, url: str, last_event_id: str | None = None) -> Answer:
        headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
        response = await AsyncClient().get(url, headers=headers)
        assert isinstance(response, SSEResponse), (response.status_code, response.content)
        return cls(response)

    async def read(self, count: int) -> list[MessageEvent]:
        while len(self.events) < count:
            chunk = await asyncio.wait_for(anext(self._chunks), READ_TIMEOUT)
            self.raw += chunk
            self.events += self._parser.feed(chunk)
        return self.events

    async def rest(self) -> list[MessageEvent]:
        async def drain() -> None:
            async for chunk in self._chunks:
                self.raw += chunk
                self.events += self._parser.feed(chunk)

        await asyncio.wait_for(drain(), READ_TIMEOUT)
        return self.events

    async def leave(self) -> None:
        """What Django does when the client goes away."""
        await self._chunks.aclose()
