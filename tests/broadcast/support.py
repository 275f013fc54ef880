"""Reading broadcast streams in tests, in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from django.test import AsyncClient

from django_sse.broadcast._subscription import Subscription
from django_sse.protocol import Event, EventParser, MessageEvent
from django_sse.response import SSEResponse
from tests.sse import READ_TIMEOUT


async def take(events: AsyncIterator[Event], count: int) -> list[Event]:
    """The next ``count`` events of a subscription; fails rather than hang."""
    return [await asyncio.wait_for(anext(events), READ_TIMEOUT) for _ in range(count)]


def summary(events: list[Event]) -> list[tuple[str | None, Any, str | None]]:
    return [(e.event, e.data, e.id) for e in events]


class Stream:
    """A ChannelView response read event by event, through Django's async test client."""

    def __init__(self, response: SSEResponse) -> None:
        self.response = response
        self.status = response.status_code
        # The engine itself, not the test client's wrapper around it: closing the engine
        # is what Django's ASGI handler does when the client leaves.
        self._chunks = response._engine
        self._parser = EventParser()
        self._ready: list[MessageEvent] = []

    @classmethod
    async def open(cls, path: str, client: AsyncClient | None = None, **kwargs: Any) -> Stream:
        return await cls.start(await respond(path, client, **kwargs))

    @classmethod
    async def start(cls, response: SSEResponse) -> Stream:
        stream = cls(response)
        # The opening comment; reading it starts the engine, and so the subscription.
        assert await anext(stream._chunks) == b":\n"
        return stream

    async def next(self, count: int = 1) -> list[MessageEvent]:
        while len(self._ready) < count:
            chunk = await asyncio.wait_for(anext(self._chunks), READ_TIMEOUT)
            self._ready += self._parser.feed(chunk)
        events, self._ready = self._ready[:count], self._ready[count:]
        return events

    async def rest(self) -> list[MessageEvent]:
        """Everything until the server ends the stream."""
        async for chunk in self._chunks:
            self._ready += self._parser.feed(chunk)
        events, self._ready = self._ready, []
        return events

    async def close(self) -> None:
        await self._chunks.aclose()

    @property
    def outcome(self) -> str | None:
        outcome = self.response.stats.outcome
        return None if outcome is None else str(outcome)


async def respond(path: str, client: AsyncClient | None = None, **kwargs: Any) -> SSEResponse:
    """The view's response, before Django has started sending it."""
    response = await (client or AsyncClient()).get(path, **kwargs)
    assert isinstance(response, SSEResponse), response.content
    return response


def data(events: list[MessageEvent]) -> list[Any]:
    return [json.loads(e.data) if e.event == "reset" else e.data for e in events]


@contextlib.asynccontextmanager
async def following(
    channels: list[str], last_event_id: str | None = None, **kwargs: Any
) -> AsyncIterator[AsyncIterator[Event]]:
    """A subscription's events; it has joined the hub when this is entered."""
    subscription = Subscription(channels, last_event_id, **kwargs)
    async with subscription:
        events = aiter(subscription)
        try:
            yield events
        finally:
            await events.aclose()  # type: ignore[attr-defined]


def hold_receive(monkeypatch: Any, layer: Any) -> tuple[asyncio.Event, list[int]]:
    """Make the hub's receive from ``layer`` wait for the returned gate; the list fills
    with the sequence numbers it then receives."""
    receive = layer.receive
    gate = asyncio.Event()
    received: list[int] = []

    async def gated(channel: str) -> dict[str, Any]:
        await gate.wait()
        message: dict[str, Any] = await receive(channel)
        received.append(message["seq"])
        return message

    monkeypatch.setattr(layer, "receive", gated)
    return gate, received
