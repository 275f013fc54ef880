"""``connect()``: events from a URL as an iterator that reconnects and resumes."""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from django_sse.client._options import SourceOptions, check_client
from django_sse.client._redirects import Hop, unreadable_location
from django_sse.client._source import ERROR_BODY_BYTES, StreamState
from django_sse.protocol import MessageEvent

__all__ = ["EventSource", "connect"]

# httpcore's trace events that hand over a connection just opened (by a proxy, too).
_OPENED = ("connect_tcp.complete", "connect_unix_socket.complete", "start_tls.complete")


class EventSource(StreamState[httpx.Client, threading.Event]):
    """An event stream that :func:`connect` opened: iterating it gives its events.

    It reconnects and resumes with ``Last-Event-ID`` on its own; ``restart()``
    reconnects at once, ``close()`` ends the iteration, ``last_event_id`` and
    ``reconnection_time`` are what the stream has set so far. ``restart()``, ``close()``
    and ``shutdown()`` act at once from another thread too, also on a read that waits and
    on a wait for the response headers.
    """

    def __init__(self, url: str, options: SourceOptions, client: httpx.Client) -> None:
        super().__init__(url, options, client, threading.Event())
        # The send waiting for its response headers, for close() and restart() to wake.
        self._sending: _Sending | None = None

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
        """Make a wait for the response headers, or a read, blocked in another thread
        return now. Closing the response does not wake a thread blocked in recv() on
        Linux; shutting the socket down does, and the reading thread then cleans up
        after itself."""
        sending = self._sending
        if sending is not None:
            sending.settled.set()
        response = self._response
        if response is None:
            return
        sock = _socket(response)
        if sock is None:
            response.close()
        else:
            _shut_down(sock)

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
        response = self._send(hop, chain)
        while response is not None and self._follows(response):
            response.close()
            response = self._send(self._redirect(response, chain), chain)
        if response is None:
            return
        self._response = response
        try:
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

    def _send(self, hop: Hop, chain: list[httpx.Request]) -> httpx.Response | None:
        """The answer to ``hop``, or None if close() or restart() came first: they wake
        this thread at once, as the async client cancels its send."""
        sending = self._sending = _Sending()
        try:
            if self._dropped():
                return None
            hop.request.extensions = {**hop.request.extensions, "trace": sending.trace}
            # Never the client's own redirect following: each hop is checked here.
            send = functools.partial(
                self._client.send,
                hop.request,
                stream=True,
                auth=self._auth(hop),
                follow_redirects=False,
            )
            threading.Thread(target=sending.run, args=(send,), name="sse-send", daemon=True).start()
            try:
                sending.settled.wait()
            except BaseException:
                sending.leave()  # this thread was interrupted: nobody reads the answer
                raise
        finally:
            self._sending = None
        try:
            return sending.answer()
        except Exception as exc:
            unreadable = unreadable_location(exc, chain)
            if unreadable is None:
                raise
            raise unreadable from exc


class _Sending:
    """One send, made in a thread of its own while the stream's thread waits for it.

    httpx's sync send has nothing to cancel, and closing a socket does not wake a thread
    blocked in recv(): so the stream's thread waits on ``settled``, which the answer, or
    close() and restart(), set. A send left before its answer came shuts down the
    connection opened for it; one the pool lent (keep-alive), or an HTTP/2 one, which
    other requests share, is left to end by itself, and its answer is closed.
    """

    def __init__(self) -> None:
        self.settled = threading.Event()
        self._lock = threading.Lock()
        self._answer: httpx.Response | None = None
        self._error: BaseException | None = None
        self._left = False
        self._socket: socket.socket | None = None

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's ``trace`` extension: notes the connection opened for this send."""
        if event.endswith(_OPENED) and "return_value" in info:
            stream = info["return_value"]
            tls = stream.get_extra_info("ssl_object")
            shared = tls is not None and tls.selected_alpn_protocol() == "h2"
            self._socket = None if shared else _stream_socket(stream)
            if self._left:  # left while it connected
                self._shut()

    def run(self, send: Callable[[], httpx.Response]) -> None:
        answer: httpx.Response | None = None
        error: BaseException | None = None
        try:
            answer = send()
        except BaseException as exc:  # handed to the stream's thread, whatever it is
            error = exc
        with self._lock:
            left = self._left
            if not left:
                self._answer, self._error = answer, error
            self.settled.set()
        if left and answer is not None:
            answer.close()

    def answer(self) -> httpx.Response | None:
        """The response, or the send's error; None if neither came yet: then the send is
        left, and whatever comes is closed."""
        with self._lock:
            self._left = self._answer is None and self._error is None
        if self._left:
            self._shut()
            return None
        if self._error is not None:
            raise self._error
        return self._answer

    def leave(self) -> None:
        """Leave the send whether or not it answered, closing any answer."""
        with self._lock:
            self._left = True
            answer, self._answer = self._answer, None
        if answer is not None:
            answer.close()
        self._shut()

    def _shut(self) -> None:
        if self._socket is not None:
            _shut_down(self._socket)


def _socket(response: httpx.Response) -> socket.socket | None:
    """The socket under an HTTP/1 response, where the transport tells; never an HTTP/2
    connection's, which other requests share."""
    stream = response.extensions.get("network_stream")
    if stream is None or not response.http_version.startswith("HTTP/1"):
        return None
    return _stream_socket(stream)


def _stream_socket(stream: Any) -> socket.socket | None:
    sock = stream.get_extra_info("socket")
    return sock if isinstance(sock, socket.socket) else None


def _shut_down(sock: socket.socket) -> None:
    """Wake a thread blocked reading ``sock``; it then cleans up after itself."""
    # socket.socket's own shutdown, also for TLS: SSLSocket.shutdown() would drop the
    # SSL object under the thread that is reading through it.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


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

    Entering it checks every argument (``ValueError`` or ``TypeError`` naming the one out
    of range or of the wrong type) and the URL (``httpx.UnsupportedProtocol`` if it is not
    http(s), ``httpx.InvalidURL`` for its host or port), before any request.
    """
    settings = SourceOptions(**options)
    check_client(client, httpx.Client)
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
