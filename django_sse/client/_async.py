"""``aconnect()``: events from a URL as an async iterator that reconnects and resumes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from django_sse.client._policy import SSEResponseError
from django_sse.client._source import ERROR_BODY_BYTES, SourceOptions, StreamState
from django_sse.protocol import MessageEvent

__all__ = ["AsyncEventSource", "aconnect"]


class AsyncEventSource(StreamState[httpx.AsyncClient]):
    async def aclose(self) -> None:
        """Stop, and close the connection now (``aconnect()`` does this on exit)."""
        self.close()
        if self._response is not None:
            await self._response.aclose()

    async def __aiter__(self) -> AsyncIterator[MessageEvent]:
        while not self._closed:
            error: httpx.TransportError | SSEResponseError | None = None
            try:
                async for event in self._connection():
                    yield event
                    if self._closed:
                        return
            except httpx.TransportError as exc:
                error = exc
            except SSEResponseError as refused:
                if refused.retry_after is None:
                    raise
                error = refused
            delay = self._delay(error)
            if delay is None:
                return
            await asyncio.sleep(delay)

    async def _connection(self) -> AsyncIterator[MessageEvent]:
        response = self._response = await self._client.send(self._request(), stream=True)
        try:
            if not self._is_event_stream(response):
                body = b""
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) >= ERROR_BODY_BYTES:
                        break
                raise self._refusal(response, body)
            if self._opened(response):
                async for chunk in response.aiter_bytes():
                    for event in self._parser.feed(chunk):
                        yield event
        finally:
            self._response = None
            await response.aclose()


@asynccontextmanager
async def aconnect(
    url: str, *, client: httpx.AsyncClient | None = None, **options: Any
) -> AsyncIterator[AsyncEventSource]:
    """Open an event stream; ``async for`` over the result gives its events.

    Takes the same options as :func:`django_sse.client.connect`; ``client`` is an
    ``httpx.AsyncClient`` to send through (it is left open).
    """
    settings = SourceOptions(**options)
    http = client if client is not None else httpx.AsyncClient()
    source = AsyncEventSource(url, settings, http)
    try:
        yield source
    finally:
        await source.aclose()
        if client is None:
            await http.aclose()
