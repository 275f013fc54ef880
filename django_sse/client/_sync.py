"""``connect()``: events from a URL as an iterator that reconnects and resumes."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from django_sse.client._options import SourceOptions
from django_sse.client._redirects import Hop, unreadable_location
from django_sse.client._source import ERROR_BODY_BYTES, StreamState
from django_sse.protocol import MessageEvent

__all__ = ["EventSource", "connect"]


class EventSource(StreamState[httpx.Client, threading.Event]):
    """An event stream that :func:`connect` opened: iterating it gives its events.

    It reconnects and resumes with ``Last-Event-ID`` on its own; ``restart()``
    reconnects at once, ``close()`` ends the iteration, ``last_event_id`` and
    ``reconnection_time`` are what the stream has set so far. ``restart()``, ``close()``
    and ``shutdown()`` act at once from another thread too, also on a read that waits.
    """

    def __init__(self, url: str, options: SourceOptions, client: httpx.Client) -> None:
        super().__init__(url, options, client, threading.Event())

    def close(self) -> None:
        """Stop: the iteration ends after the current event, or, called from another
        thread, at once."""
        super().close()
        self._cut()

    def shutdown(self) -> None:
        """Stop, and close the connection now (``connect()`` does this on exit)."""
        self.close()
        # An iteration left at an event (a break) never reaches its own cleanup.
        if self._response is not None:
            self._response.close()

    def restart(self) -> None:
        """Drop the connection now and open a new one at once, resuming after the last
        event id; not a failure for the backoff. During the wait between connections,
        it ends the wait. Callable from any thread."""
        self._ask_restart()
        self._cut()

    def _cut(self) -> None:
        """Make a read blocked in another thread return now. Closing the response does
        not wake a thread blocked in recv() on Linux; shutting the socket down does, and
        the reading thread then cleans up after itself."""
        response = self._response
        if response is None:
            return
        sock = _socket(response)
        if sock is None:
            response.close()
            return
        # socket.socket's own shutdown, also for TLS: SSLSocket.shutdown() would drop
        # the SSL object under the thread that is reading through it.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

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

    def _connection(self) -> Iterator[MessageEvent]:
        hop = self._first_hop()
        chain = [hop.request]
        response = self._response = self._send(hop, chain)
        try:
            while self._follows(response):
                response.close()
                response = self._response = self._send(self._redirect(response, chain), chain)
            if self._dropped():
                return
            if not self._is_event_stream(response):
                body = b""
                with self._reading_refusal():
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

    def _send(self, hop: Hop, chain: list[httpx.Request]) -> httpx.Response:
        # Never the client's own redirect following: each hop is checked here.
        try:
            return self._client.send(
                hop.request, stream=True, auth=self._auth(hop), follow_redirects=False
            )
        except Exception as exc:
            unreadable = unreadable_location(exc, chain)
            if unreadable is None:
                raise
            raise unreadable from exc


def _socket(response: httpx.Response) -> socket.socket | None:
    """The socket under an HTTP/1 response, where the transport tells; never an HTTP/2
    connection's, which other requests share."""
    stream = response.extensions.get("network_stream")
    if stream is None or not response.http_version.startswith("HTTP/1"):
        return None
    sock = stream.get_extra_info("socket")
    return sock if isinstance(sock, socket.socket) else None


@contextmanager
def connect(
    url: str, *, client: httpx.Client | None = None, **options: Any
) -> Iterator[EventSource]:
    """Open an event stream; iterating the result gives its events.

    Options: ``method`` ("GET"), ``headers``, ``json`` / ``data`` (a request body),
    ``last_event_id`` (to resume from), ``reconnect`` (True), ``max_retries`` (None:
    forever), ``backoff_cap`` (30 s: the longest wait, but for a ``Retry-After``; up to
    a day), ``read_timeout`` (60 s of silence; keep-alive
    comments count as activity), ``repeat_post`` (False: a POST is never sent twice),
    ``retry`` (ms before the first reconnection, until the server sends one),
    ``follow_redirects`` (True), ``max_redirects`` (10), ``redirect_credentials``
    (False: Authorization stays with its origin), ``on_comment`` (called with each
    comment's text) and ``on_status`` (called with each :class:`ClientStatus`).
    ``client`` is an ``httpx.Client`` to send through, e.g. for auth or cookies (it is
    left open). ``source.restart()`` reconnects at once, resuming.

    When the stream ends or the network fails, the client waits the server's
    ``retry`` (3 s by default), then backs off exponentially (from at least 100 ms)
    with jitter up to ``backoff_cap``, and reconnects with ``Last-Event-ID``. HTTP 204
    ends the stream for good; another status or content type raises
    :class:`SSEResponseError`. A request that cannot be sent at all (a URL that is not
    http(s), a header value HTTP cannot carry) raises its httpx error, not retried.

    Entering it checks the options (``ValueError`` or ``TypeError`` naming the one out of
    range or of the wrong type) and the URL's host and port (``httpx.InvalidURL``),
    before any request.
    """
    settings = SourceOptions(**options)
    http = client if client is not None else httpx.Client()
    try:
        source = EventSource(url, settings, http)  # checks the URL
        try:
            yield source
        finally:
            source.shutdown()
    finally:
        if client is None:
            http.close()
