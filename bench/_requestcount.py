"""Counts the HTTP requests a benchmark site serves, by kind, for pushpin_fanout.py.

With Pushpin in front, a subscriber costs Django one request when it connects and one
more each time Pushpin recovers its stream (a missed event, or the recovery interval).
Those requests are what Django still pays for held streams, so the benchmark reads the
counts at ``/bench/requests/`` (answered here, before Django) between its phases.

Only wrapped around a site when ``BENCH_COUNT_REQUESTS`` is set: one dict update per
request, nothing per event.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATS_PATH = "/bench/requests/"


def kind(scope: Scope) -> str:
    """``subscribe``, ``recover`` (Pushpin fetching a held stream's link), ``publish``
    or ``other``."""
    path: str = scope["path"]
    query: bytes = scope.get("query_string", b"")
    if path.startswith("/sse/pushpin/"):  # django_sse's recovery link
        return "recover"
    if path.startswith("/sub/"):
        # django-eventstream's link is its own URL with link=next.
        return "recover" if b"link=next" in query else "subscribe"
    if path.startswith("/pub/"):
        return "publish"
    return "other"


def counting(application: ASGIApp) -> ASGIApp:
    counts: Counter[str] = Counter()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] == STATS_PATH:
                body = json.dumps(counts).encode()
                headers = [(b"content-type", b"application/json"),
                           (b"content-length", str(len(body)).encode())]  # fmt: skip
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            counts[kind(scope)] += 1
        await application(scope, receive, send)

    return app
