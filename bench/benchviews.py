"""Views and URLs of the benchmark project (``bench/benchsite.py``).

Each scenario exists twice: as our ``SSEView`` and as the bare Django
``StreamingHttpResponse`` over an async generator that people write by hand, which is
the baseline. Both put exactly the same bytes on the wire.

* ``/sse/idle/`` and ``/bare/idle/`` send one ``ready`` event, then wait forever: an
  idle subscription. The wait ends only when the client disconnects.
  ``/bare/idle-released/`` is the bare view that also lets the request's sync thread go,
  as SSEResponse does: Django's own cost of an idle stream, without the thread.
* ``/sse/flood/?n=N`` yields N ``Event(data=str(i), id=str(i))``, encoded by our engine
  as it goes; ``/sse/flood-bytes/?n=N`` yields the same events pre-encoded, which
  separates the engine's cost from encoding; ``/bare/flood/?n=N`` yields the
  pre-encoded bytes through a bare StreamingHttpResponse.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import SyncToAsync
from django.db import connections
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path

from django_sse import Event, SSEView
from django_sse.protocol import KEEP_ALIVE

READY = Event(event="ready", data="open")
DEFAULT_EVENTS = 200_000
MAX_EVENTS = 10_000_000


def flood_event(i: int) -> Event:
    """The small event every throughput variant sends (same as ``bench/rawasgi.py``)."""
    return Event(data=str(i), id=str(i))


@functools.cache
def encoded_flood(n: int) -> tuple[bytes, ...]:
    """The N events pre-encoded, built once per process (the warm-up run builds it)."""
    return tuple(flood_event(i).encode() for i in range(n))


def event_count(request: HttpRequest) -> int:
    return max(0, min(int(request.GET.get("n", DEFAULT_EVENTS)), MAX_EVENTS))


async def wait_forever() -> None:
    """Suspend until cancelled, i.e. until the client goes away."""
    await asyncio.Event().wait()


class IdleStream(SSEView):
    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        yield READY
        await wait_forever()


async def bare_idle(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield READY.encode()
        await wait_forever()

    return StreamingHttpResponse(chunks(), content_type="text/event-stream")


async def bare_idle_released(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        release_request_thread()
        yield READY.encode()
        await wait_forever()

    return StreamingHttpResponse(chunks(), content_type="text/event-stream")


def release_request_thread() -> None:
    """Shut down this request's thread-sensitive executor, as SSEResponse does.

    Django starts it for the ``request_started`` receivers and would keep its thread
    until the response ends. Written out here (not imported) so the reference does not
    change when the engine does.
    """
    context = SyncToAsync.thread_sensitive_context.get(None)
    executor = SyncToAsync.context_to_thread_executor.pop(context, None) if context else None
    if executor is not None:
        executor.submit(connections.close_all)
        executor.shutdown(wait=False)


class FloodEvents(SSEView):
    # Keep-alives are off so that a stalled run cannot add bytes: all variants must
    # send identical bodies (the client checks).
    keep_alive = 0

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        for i in range(event_count(request)):
            yield flood_event(i)


class FloodBytes(SSEView):
    keep_alive = 0

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        for chunk in encoded_flood(event_count(request)):
            yield chunk


async def bare_flood(request: HttpRequest) -> StreamingHttpResponse:
    events = encoded_flood(event_count(request))

    async def chunks() -> AsyncIterator[bytes]:
        # SSEView opens every stream with a comment line; send the same bytes.
        yield KEEP_ALIVE
        for chunk in events:
            yield chunk

    return StreamingHttpResponse(chunks(), content_type="text/event-stream")


urlpatterns = [
    path("sse/idle/", IdleStream.as_view()),
    path("bare/idle/", bare_idle),
    path("bare/idle-released/", bare_idle_released),
    path("sse/flood/", FloodEvents.as_view()),
    path("sse/flood-bytes/", FloodBytes.as_view()),
    path("bare/flood/", bare_flood),
]
