"""``aconnect()``: events from a URL as an async iterator that reconnects and resumes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from django_sse.client._options import SourceOptions, check_client
from django_sse.client._redirects import Hop, unreadable_location
from django_sse.client._source import ERROR_BODY_BYTES, StreamState
from django_sse.protocol import MessageEvent

__all__ = ["AsyncEventSource", "aconnect"]


class AsyncEventSource(StreamState[httpx.AsyncClient, asyncio.Event]):
    """An event stream that :func:`aconnect` opened: ``async for`` gives its events.

    It reconnects and resumes with ``Last-Event-ID`` on its own; ``await restart()``
    reconnects at once, ``close()`` ends the iteration (``await aclose()`` from another
    task also cuts a read that waits), ``last_event_id`` and ``reconnection_time`` are
    what the stream has set so far.
    """

    def __init__(self, url: str, options: SourceOptions, client: httpx.AsyncClient) -> None:
        super().__init__(url, options, client, asyncio.Event())

    async def aclose(self) -> None:
        """Stop, and close the connection now (``aconnect()`` does this on exit)."""
        self.close()
        if self._response is not None:
            await self._response.aclose()

    async def restart(self) -> None:
        """Drop the connection now and open a new one at once, resuming after the last
        event id; not a failure for the backoff. During the wait between connections,
        it ends the wait."""
        self._ask_restart()
        if self._response is not None:
            await self._response.aclose()

    async def __aiter__(self) -> AsyncIterator[MessageEvent]:
        while not self._closed:
            error: Exception | None = None
            try:
                async for event in self._connection():
                    yield event
                    if self._closed:
                        return
            except Exception as exc:
                error = self._failure(exc)
            delay = self._delay(error)
            if delay is None:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _connection(self) -> AsyncIterator[MessageEvent]:
        hop = self._first_hop()
        chain = [hop.request]
        response = self._response = await self._send(hop, chain)
        try:
            while response is not None and self._follows(response):
                await response.aclose()
                response = self._response = await self._send(self._redirect(response, chain), chain)
            if response is None or self._dropped():
                return
            if not self._is_event_stream(response):
                body = b""
                with self._reading_refusal():
                    async for chunk in response.aiter_raw():
                        body += chunk
                        if len(body) >= ERROR_BODY_BYTES:
                            break
                raise self._refusal(response, body)
            if self._opened(response):
                async for chunk in response.aiter_bytes():
                    for event in self._events(chunk):
                        yield event
        finally:
            self._response = None
            if response is not None:
                await response.aclose()

    async def _send(self, hop: Hop, chain: list[httpx.Request]) -> httpx.Response | None:
        """The answer to ``hop``, or None if close() or restart() came first: a wait for
        the response headers has no response to close yet, so the send is cancelled,
        and httpx closes its connection."""
        # Never the client's own redirect following: each hop is checked here.
        sending = asyncio.ensure_future(
            self._client.send(
                hop.request, stream=True, auth=self._auth(hop), follow_redirects=False
            )
        )
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sending, woken), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            await _cancel(sending)  # this task is cancelled: so is its send
            raise
        finally:
            woken.cancel()
        if sending.done():
            try:
                return sending.result()
            except Exception as exc:
                unreadable = unreadable_location(exc, chain)
                if unreadable is None:
                    raise
                raise unreadable from exc
        await _cancel(sending)
        return None


async def _cancel(sending: asyncio.Future[httpx.Response]) -> None:
    """Cancel a send and wait until httpx has closed its connection; an answer that came
    before the cancel is closed here, as nobody will read it."""
    if sending.cancel():
        await asyncio.wait((sending,))
    elif sending.exception() is None:
        await sending.result().aclose()


@asynccontextmanager
async def aconnect(
    url: str, *, client: httpx.AsyncClient | None = None, **options: Any
) -> AsyncIterator[AsyncEventSource]:
    """Open an event stream; ``async for`` over the result gives its events.

    Takes the same options as :func:`django_sse.client.connect`; ``client`` is an
    ``httpx.AsyncClient`` to send through (it is left open).
    """
    settings = SourceOptions(**options)
    check_client(client, httpx.AsyncClient)
    http = client if client is not None else httpx.AsyncClient()
    try:
        source = AsyncEventSource(url, settings, http)  # checks the URL
        try:
            yield source
        finally:
            await source.aclose()
    finally:
        if client is None:
            await http.aclose()
