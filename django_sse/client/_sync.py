"""``connect()``: events from a URL as an iterator that reconnects and resumes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from django_sse.client._source import ERROR_BODY_BYTES, SourceOptions, StreamState
from django_sse.protocol import MessageEvent

__all__ = ["EventSource", "connect"]


class EventSource(StreamState[httpx.Client]):
    """An event stream that :func:`connect` opened: iterating it gives its events.

    It reconnects and resumes with ``Last-Event-ID`` on its own; ``restart()``
    reconnects at once, ``close()`` ends the iteration, ``last_event_id`` and
    ``reconnection_time`` are what the stream has set so far.
    """

    def __init__(self, url: str, options: SourceOptions, client: httpx.Client) -> None:
        super().__init__(url, options, client)
        # Set to cut a wait between connections short: by restart() or shutdown().
        self._wake = threading.Event()

    def shutdown(self) -> None:
        """Stop, and close the connection now (``connect()`` does this on exit)."""
        self.close()
        self._wake.set()
        if self._response is not None:
            self._response.close()

    def restart(self) -> None:
        """Drop the connection now and open a new one at once, resuming after the last
        event id; not a failure for the backoff. Callable from any thread."""
        self._restarting = True
        self._wake.set()
        if self._response is not None:
            self._response.close()

    def __iter__(self) -> Iterator[MessageEvent]:
        while not self._closed:
            error: Exception | None = None
            try:
                for event in self._connection():
                    yield event
                    if self._closed:
                        return
            except Exception as exc:
                error = self._failure(exc)
            delay = self._delay(error)
            if delay is None:
                return
            self._wake.wait(delay)
            self._wake.clear()

    def _connection(self) -> Iterator[MessageEvent]:
        request = self._request()
        chain = [str(request.url)]
        response = self._response = self._client.send(request, stream=True)
        try:
            while self._follows(response):
                response.close()
                response = self._response = self._client.send(
                    self._redirect(response, chain), stream=True
                )
            if not self._is_event_stream(response):
                body = b""
                for chunk in response.iter_raw():
                    body += chunk
                    if len(body) >= ERROR_BODY_BYTES:
                        break
                raise self._refusal(response, body)
            if self._opened(response):
                for chunk in response.iter_bytes():
                    yield from self._events(chunk)
        finally:
            self._response = None
            response.close()


@contextmanager
def connect(
    url: str, *, client: httpx.Client | None = None, **options: Any
) -> Iterator[EventSource]:
    """Open an event stream; iterating the result gives its events.

    Options: ``method`` ("GET"), ``headers``, ``json`` / ``data`` (a request body),
    ``last_event_id`` (to resume from), ``reconnect`` (True), ``max_retries`` (None:
    forever), ``backoff_cap`` (30 s), ``read_timeout`` (60 s of silence; keep-alive
    comments count as activity), ``repeat_post`` (False: a POST is never sent twice),
    ``retry`` (ms before the first reconnection, until the server sends one),
    ``follow_redirects`` (True), ``max_redirects`` (10), ``redirect_credentials``
    (False: Authorization stays with its origin), ``on_comment`` (called with each
    comment's text) and ``on_status`` (called with each :class:`ClientStatus`).
    ``client`` is an ``httpx.Client`` to send through, e.g. for auth or cookies (it is
    left open). ``source.restart()`` reconnects at once, resuming.

    When the stream ends or the network fails, the client waits the server's
    ``retry`` (3 s by default), then backs off exponentially with jitter up to
    ``backoff_cap``, and reconnects with ``Last-Event-ID``. HTTP 204 ends the stream
    for good; another status or content type raises :class:`SSEResponseError`.
    """
    settings = SourceOptions(**options)
    http = client if client is not None else httpx.Client()
    source = EventSource(url, settings, http)
    try:
        yield source
    finally:
        source.shutdown()
        if client is None:
            http.close()
