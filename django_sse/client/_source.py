"""One logical stream across its connections, minus the I/O: requests, answers, waits.

The sync and async event sources differ only in how they send, read and sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

import httpx

from django_sse.client._options import SourceOptions, check_url
from django_sse.client._policy import ClientStatus, SSEResponseError
from django_sse.client._redirects import Hop, next_hop
from django_sse.protocol import Comment, EventParser, MessageEvent

__all__ = ["ERROR_BODY_BYTES", "StreamState"]

ERROR_BODY_BYTES = 1024
# Statuses that, with Retry-After, mean "not now": too many requests, unavailable.
RETRY_LATER = (429, 503)
# The longest Retry-After honoured; a server asking for more gets this.
MAX_RETRY_AFTER = 3600.0
# Errors in the request itself, which sending it again cannot mend: a header h11 will
# not write (before a byte leaves), a URL that is not http(s).
UNSENDABLE = (httpx.LocalProtocolError, httpx.UnsupportedProtocol)
# What a read raises when restart() or close() cuts its connection.
CUT = (httpx.HTTPError, httpx.StreamError)


def seconds_until(retry_after: str) -> float | None:
    """A Retry-After value (seconds, or an HTTP date) as seconds from now; None if
    there is none or it cannot be read."""
    value = retry_after.strip()
    # isdigit() alone also takes "²" and other digits int() and float() refuse.
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max((when - datetime.now(timezone.utc)).total_seconds(), 0.0), MAX_RETRY_AFTER)


def resume_header(last_event_id: str) -> bytes:
    """The Last-Event-ID header's value: the id's UTF-8 bytes, as EventSource sends them,
    without the spaces and tabs at either end, which fetch strips from every header
    value (and h11 refuses to send)."""
    return last_event_id.encode().strip(b" \t")


ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)
WakeT = TypeVar("WakeT", threading.Event, asyncio.Event)


class StreamState(Generic[ClientT, WakeT]):
    def __init__(self, url: str, options: SourceOptions, client: ClientT, wake: WakeT) -> None:
        # Checked as it will be sent, after the client's base_url: at the call, not at
        # connecting, where a bad host was a bare UnicodeError and a bad port wrapped.
        try:
            asked = client.build_request("GET", url).url
        except UnicodeError as exc:  # httpx decodes an IDNA host ("xn--") for the Host header
            raise httpx.InvalidURL(f"Invalid host in {url}: {exc}") from None
        check_url(asked)
        self.url = url
        self._client: ClientT = client
        # Set to cut a wait between connections short: by restart() or close().
        self._wake: WakeT = wake
        # The response being read, so restart(), close() and leaving the context manager
        # can cut it at once.
        self._response: httpx.Response | None = None
        self._options = options
        self._policy = options.policy()
        self._parser = EventParser(
            last_event_id=options.last_event_id, reconnection_time=options.retry
        )
        self._closed = False
        self._finished = False
        # restart() was called during this connection: its end is not a failure.
        self._restarting = False
        # The Cookie header the caller set, if any: it goes where credentials go.
        self._cookie: str | None = None

    @property
    def last_event_id(self) -> str:
        return self._parser.last_event_id

    @property
    def reconnection_time(self) -> int | None:
        """The server's last valid ``retry``, in milliseconds."""
        return self._parser.reconnection_time

    def close(self) -> None:
        """Stop: the iteration ends after the current event, and a wait for the next
        connection ends now."""
        self._closed = True
        self._wake.set()

    def _ask_restart(self) -> None:
        """restart()'s decision; the sync and async sources then cut the connection."""
        self._restarting = True
        self._wake.set()

    def _first_hop(self) -> Hop:
        # A restart asked before now is answered by this very connection. In this order,
        # one asked in between still finds its flag, and the connection is dropped.
        self._restarting = False
        self._wake.clear()
        # Each connection is a new stream: whatever half-event the last one left is gone.
        self._parser = EventParser(
            last_event_id=self._parser.last_event_id,
            reconnection_time=self._parser.reconnection_time,
        )
        options = self._options
        # What EventSource sends: no-cache keeps any cache from answering for the server.
        headers = httpx.Headers({"Accept": "text/event-stream", "Cache-Control": "no-cache"})
        headers.update(options.headers or {})
        resume = resume_header(self._parser.last_event_id)
        if resume:
            headers.update({b"Last-Event-ID": resume})
        request = self._client.build_request(
            options.method,
            self.url,
            headers=headers,
            json=options.json,
            data=options.data,
            timeout=options.timeout,
        )
        # A Cookie header of the caller's (or of the client's headers) stood for the
        # client's jar on this request; httpx rebuilds each hop's from the jar.
        given = "cookie" in headers or "cookie" in self._client.headers
        self._cookie = request.headers.get("cookie") if given else None
        return Hop(request)

    def _auth(self, hop: Hop) -> httpx.Auth | None:
        """What to send ``hop`` with: the client's ``auth`` goes only where the caller's
        credentials go (None still lets a URL's own user and password apply)."""
        return self._client.auth if hop.credentials else None

    def _dropped(self) -> bool:
        """Whether restart() or close() came during this connection: an answer that
        arrives afterwards is not read (both clients leave a send that waits for the
        headers, unless the answer came first), and a read they cut ends the connection
        as they asked, not in error."""
        return self._restarting or self._closed

    @contextlib.contextmanager
    def _reading_refusal(self) -> Iterator[None]:
        """Around reading the start of a refusal's body, which is read only for the
        error: the status or the type said no, and a body that breaks off or goes silent
        does not make that a network failure. A read cut by close() or restart() ends
        as before."""
        try:
            yield
        except httpx.TransportError:
            if self._dropped():
                raise

    def _failure(self, exc: Exception) -> Exception:
        """``exc`` if the stream may go on after it (the loop then asks ``_delay()``);
        raised again if not."""
        if isinstance(exc, SSEResponseError):
            if exc.retry_after is None:
                raise exc
            return exc
        if self._dropped() and isinstance(exc, CUT):
            # restart() and close() cut the connection under the read. Anything else
            # (a callback's own error) is not theirs: it surfaces as it does otherwise.
            return exc
        if isinstance(exc, UNSENDABLE) or not isinstance(exc, httpx.TransportError):
            raise exc
        return exc

    def _follows(self, response: httpx.Response) -> bool:
        return self._options.follow_redirects and response.has_redirect_location

    def _redirect(self, response: httpx.Response, chain: list[httpx.Request]) -> Hop:
        options = self._options
        return next_hop(
            response,
            chain,
            options.max_redirects,
            options.redirect_credentials,
            self._client.cookies,
            self._cookie,
        )

    def _events(self, chunk: bytes) -> Iterator[MessageEvent]:
        """The events ``chunk`` completes. Its comments go to ``on_comment`` as the
        caller reaches them: after the events before them, before those after."""
        on_comment = self._options.on_comment
        if on_comment is None:
            yield from self._parser.feed(chunk)
            return
        for item in self._parser.feed_all(chunk):
            if isinstance(item, Comment):
                on_comment(item.text)
            else:
                yield item

    def _is_event_stream(self, response: httpx.Response) -> bool:
        # The media type alone, before any parameter; its case does not matter (RFC 9110).
        media_type = response.headers.get("content-type", "").split(";", 1)[0]
        return response.status_code == 204 or (
            response.status_code == 200 and media_type.strip().lower() == "text/event-stream"
        )

    def _refusal(self, response: httpx.Response, body: bytes) -> SSEResponseError:
        content_type = response.headers.get("content-type", "")
        retry_after = None
        if response.status_code in RETRY_LATER:
            retry_after = seconds_until(response.headers.get("retry-after", ""))
        return SSEResponseError(
            response.status_code, content_type, body[:ERROR_BODY_BYTES], retry_after
        )

    def _opened(self, response: httpx.Response) -> bool:
        """Whether to read events from this response; False after 204, which ends it all."""
        if response.status_code == 204:
            self._finished = True
            self._policy.report(self._status("closed"))
            return False
        self._policy.connected()
        self._policy.report(self._status("connected"))
        return True

    def _delay(self, error: BaseException | None) -> float | None:
        """Seconds until the next connection, or None when the stream is over.

        Re-raises a network error, or a refusal, when the stream may not be reopened.
        """
        if self._closed or self._finished:
            return None
        if self._restarting:
            self._policy.report(self._status("restarting", delay=0.0))
            return 0.0
        retry_after = error.retry_after if isinstance(error, SSEResponseError) else None
        # A refusal with Retry-After started nothing: even a POST may be sent again.
        allowed = self._policy.reconnect if retry_after is not None else self._policy.may_reconnect
        if not allowed:
            self._policy.report(self._status("closed", error=error))
            if error is not None:
                raise error
            return None
        try:
            delay = self._policy.next_delay(self._parser.reconnection_time, error)
        except Exception as given_up:
            self._policy.report(self._status("gave_up", error=given_up))
            raise
        if retry_after:
            # When the server said; a Retry-After of 0 gets the backoff, not a tight loop.
            delay = retry_after
        self._policy.report(self._status("reconnecting", delay=delay, error=error))
        return delay

    def _status(self, state: str, **details: Any) -> ClientStatus:
        return ClientStatus(
            state,
            self.url,
            attempt=self._policy.failures,
            last_event_id=self._parser.last_event_id,
            **details,
        )
