"""A raw ASGI app, no Django on the request path: the yardstick for both benchmarks.

``uvicorn bench.rawasgi:app`` answers

* ``GET /flood/?n=N`` with exactly the bytes the Django flood views send: the opening
  comment line, then N ``Event(data=str(i), id=str(i))``, pre-encoded with
  ``django_sse.protocol`` before the first request is timed, one ``http.response.body``
  message per event. It does nothing else, so it is as fast as the server lets an app
  stream.
* ``GET /flood-batched/?n=N`` with the same bytes, 64 events per message: the batch
  size SSEResponse's engine reaches with a fast source, so its ideal to compare with.
* ``GET /idle/`` with the idle views' ``ready`` event, then waits for the disconnect:
  the server's own cost of an idle connection, the floor under any framework.
* ``GET /sub/`` and ``GET /pub/?data=...`` for the fan-out benchmark: a publish writes
  ``data: ...`` to every open ``/sub/`` connection, one ``send`` after another in the
  publishing request, and answers with the monotonic time it started. No task wakes
  per subscriber and nothing is stored: the server's own cost of a broadcast.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from django_sse.protocol import KEEP_ALIVE, Event

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_EVENTS = 200_000
BATCH = 64  # django_sse._engine._BUFFER_ITEMS
MAX_EVENTS = 10_000_000
READY = Event(event="ready", data="open").encode()
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
]


# The send of every open /sub/ connection.
_subscribers: set[Send] = set()


@functools.cache
def encoded_flood(n: int) -> tuple[bytes, ...]:
    """The same events as ``bench/benchviews.py``, built once per process."""
    return tuple(Event(data=str(i), id=str(i)).encode() for i in range(n))


def event_count(scope: Scope) -> int:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return max(0, min(int(query.get("n", [DEFAULT_EVENTS])[0]), MAX_EVENTS))


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/pub/":
        await publish(scope, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    if scope["path"] == "/sub/":
        await send({"type": "http.response.body", "body": KEEP_ALIVE, "more_body": True})
        _subscribers.add(send)
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            _subscribers.discard(send)
        return
    if scope["path"] == "/idle/":
        await send({"type": "http.response.body", "body": READY, "more_body": True})
        while (await receive())["type"] != "http.disconnect":  # at most the request body
            pass
        return
    events = encoded_flood(event_count(scope))
    await send({"type": "http.response.body", "body": KEEP_ALIVE, "more_body": True})
    if scope["path"] == "/flood-batched/":
        for start in range(0, len(events), BATCH):
            body = b"".join(events[start : start + BATCH])
            await send({"type": "http.response.body", "body": body, "more_body": True})
    else:
        for chunk in events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def publish(scope: Scope, send: Send) -> None:
    started = time.monotonic()
    data = parse_qs(scope["query_string"].decode("latin-1"))["data"][0]
    message = {
        "type": "http.response.body",
        "body": f"data: {data}\n\n".encode(),
        "more_body": True,
    }
    for subscriber in list(_subscribers):
        await subscriber(message)
    body = json.dumps({"started": started}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown (uvicorn asks; daphne does not)."""
    if (await receive())["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.complete"})
    if (await receive())["type"] == "lifespan.shutdown":
        await send({"type": "lifespan.shutdown.complete"})
