"""Write a stream's StreamLog row as it opens and when it closes, off the loop.

Both writes run in a worker thread (never the request's thread, which the engine has
released) and close their database connection straight after, so an open stream holds
no connection. The insert starts as the stream does (or, while other streams' inserts
run, right after them and together with the rows that waited: _log_writes.py): a
stream that dies at once, even with its process, leaves its row (bench/llm_relay.py
measured no cost to the first token; see docs/stream-logs.md). A failed write is
logged and never disturbs the stream; a failed insert is tried again, with the whole
row, at the close, and a close's write the database refused for a moment (locked,
restarting) a few times more, in the background (_log_writes.RETRY_DELAYS).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest
from django.http.request import HttpHeaders

from django_sse import conf
from django_sse._background import in_background
from django_sse._log_writes import finish, insert
from django_sse._redaction import redact_path, redact_query, redact_text
from django_sse._text import safe_text
from django_sse.stats import StreamStats

__all__ = [
    "StreamTracker",
    "client_address",
    "describe_error",
    "redact",
    "server_id",
    "tracker_for",
    "view_name",
]

if TYPE_CHECKING:
    from django_sse.models import StreamLog

# Characters of an exception's message that are redacted and kept: the row stores
# 1000, and a huge message must not be scanned on the event loop, where a stream's
# close describes its error.
_ERROR_SCAN = 4000


def server_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def client_address(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or the address the configured trusted proxy header names.

    With a header such as X-Forwarded-For, the last entry is the one our own proxy
    added; anything left of it came from the client and cannot be trusted. An entry
    that is no address leaves the client unknown (None): REMOTE_ADDR is then the
    proxy's, and whatever trusts the proxy's network must not trust every client.
    """
    header = conf.get("CLIENT_ADDRESS_HEADER")
    # META, not request.headers, which would be built for this and kept for the stream.
    value = request.META.get(HttpHeaders.to_wsgi_name(header), "") if header else ""
    entries = [entry for entry in value.split(",") if entry.strip()]
    if entries:
        return _address(entries[-1])
    remote = request.META.get("REMOTE_ADDR")
    return _address(remote) if remote else None


def _address(entry: str) -> str | None:
    """The address in a proxy's entry: bare, with a port (``203.0.113.9:4711``,
    ``[2001:db8::1]:443``), or RFC 7239's ``for=`` (``for="[2001:db8::1]"``); None for
    what is none (``unknown``, an obfuscated ``_hidden``)."""
    for parameter in entry.split(";"):
        name, equals, value = parameter.partition("=")
        if equals and name.strip().lower() == "for":
            entry = value
            break
    text = entry.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def redact(text: str) -> str:
    """``text`` with credential-looking values replaced by ``***``.

    A safety net for what ends up in StreamLog rows, not a guarantee; see
    docs/stream-logs.md, "What is hidden".
    """
    return redact_text(text)


def describe_error(exc: BaseException | None) -> str:
    """The exception's type and message, with credential-looking parts removed.

    An exception whose class says its message is shown to clients anyway
    (``message_is_public = True``, as ProviderError does) is described as it is.
    """
    if exc is None:
        return ""
    message = str(exc)[:_ERROR_SCAN]
    if getattr(type(exc), "message_is_public", False) is not True:
        message = redact_text(message)
    return f"{type(exc).__name__}: {message}"[:1000]


def _as_datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def tracker_for(request: HttpRequest, log: bool | None, fallback_name: str) -> StreamTracker | None:
    """A tracker for this request's stream, unless logging is off for it.

    ``log`` is the view's own choice; None follows the LOG_STREAMS setting. The row is
    named after the URL pattern, or ``fallback_name`` for an unnamed route.
    """
    if not (conf.get("LOG_STREAMS") if log is None else log):
        return None
    return StreamTracker(request, view_name(request, fallback_name))


def view_name(request: HttpRequest, fallback: str) -> str:
    """The URL pattern's name (or its view's dotted path); ``fallback`` when the
    request was not resolved (e.g. built by RequestFactory)."""
    match = request.resolver_match
    return match.view_name if match else fallback


class StreamTracker:
    """Observes one stream for its StreamLog row; see SSEResponse(observer=...)."""

    description = "The stream log"

    def __init__(self, request: HttpRequest, view_name: str) -> None:
        match = request.resolver_match
        self._request = request
        self._row: dict[str, Any] = {
            "view_name": view_name[:200],
            "route": (match.route if match else "")[:255],
            "path": redact_path(request.path)[:2048],
            "query_string": redact_query(request.META.get("QUERY_STRING", "")),
            "client_address": client_address(request),
            # Redacted as an error's text is: some clients put their key in it.
            "user_agent": redact_text(request.META.get("HTTP_USER_AGENT", ""))[:255],
            "server": server_id()[:255],
        }
        self._opening: asyncio.Future[int | None] | None = None
        self._pk: int | None = None

    def opened(self, stats: StreamStats) -> None:
        self._opening = insert(partial(self._as_row, stats.started_at))
        self._opening.add_done_callback(self._inserted)

    def _inserted(self, opening: asyncio.Future[int | None]) -> None:
        """Keep the row's key, and let go of what an open stream no longer needs: the
        insert's future and the row's fields (the close only updates the row)."""
        self._opening = None
        if not opening.cancelled() and opening.exception() is None:
            self._pk = opening.result()
        if self._pk is not None:
            self._row = {}

    async def closed(self, stats: StreamStats) -> None:
        """Finish the row; insert it whole if it was never opened (a stream Pushpin
        holds) or its insert failed.

        In a task the close's own cancellation does not reach: a close that stops
        waiting (CLEANUP_TIMEOUT) for an insert the database holds up would otherwise
        cancel the insert's key, and the row, once in, would stay open.
        """
        await asyncio.shield(in_background(self._finish(stats.started_at, _ending(stats))))

    async def _finish(self, started_at: float, ending: dict[str, Any]) -> None:
        pk = self._pk if self._opening is None else await self._opening
        if pk is None:
            await finish(self._insert, started_at, ending)
        else:
            await finish(self._update, pk, ending)

    def _as_row(self, started_at: float, ending: dict[str, Any] | None = None) -> StreamLog:
        """The row as the stream opened, or with ``ending`` as it closed; not saved."""
        from django_sse.models import StreamLog

        user = getattr(self._request, "user", None)
        user_id = user.pk if user is not None and user.is_authenticated else None
        return StreamLog(
            **_storable({**self._row, **(ending or {})}),
            user_id=user_id,
            started_at=_as_datetime(started_at),
        )

    def _insert(self, started_at: float, ending: dict[str, Any]) -> None:
        self._as_row(started_at, ending).save(force_insert=True)

    def _update(self, pk: int, ending: dict[str, Any]) -> None:
        from django_sse.models import StreamLog

        StreamLog.objects.filter(pk=pk).update(**_storable(ending))


def _storable(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with text no database would refuse: a lone surrogate in an exception's
    message must not leave the row unwritten, or open."""
    return {name: safe_text(v) if isinstance(v, str) else v for name, v in fields.items()}


def _ending(stats: StreamStats) -> dict[str, Any]:
    """The fields a stream's close fills in."""
    ended_at = stats.ended_at or stats.started_at
    return {
        "ended_at": _as_datetime(ended_at),
        "duration": timedelta(seconds=max(ended_at - stats.started_at, 0)),
        "events_sent": stats.events,
        "bytes_sent": stats.bytes,
        "last_event_id": (stats.last_event_id or "")[:1024],
        "outcome": str(stats.outcome or "error"),
        "error": describe_error(stats.error),
        "model": stats.model[:200],
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "time_to_first_token": (
            None
            if stats.time_to_first_token is None
            else timedelta(seconds=stats.time_to_first_token)
        ),
    }
