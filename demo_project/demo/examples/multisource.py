"""Exercise: one stream from several sources, with its solution.

Three local, simulated sources with different paces (a clock, a build log and a share
price) go out on one stream, merged with ``django_sse.merge()``. Each source yields its
own named event, and the page shows each in a panel of its own.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from django_sse import Event, SSEView, merge

app_name = "multisource"

# (seconds before the line, line): uneven, as a real build's output is.
BUILD_LOG = (
    (0.3, "$ make build"),
    (0.6, "Resolving 42 dependencies"),
    (1.8, "Compiling core (1/3)"),
    (1.2, "Compiling api (2/3)"),
    (2.5, "Compiling web (3/3)"),
    (0.2, "warning: web/forms.py:12: unused import"),
    (1.5, "Running 318 tests"),
    (3.0, "318 passed"),
    (0.5, "Build finished with 1 warning"),
)


async def clock() -> AsyncIterator[Event]:
    """The server's time, once a second."""
    while True:
        yield Event(event="clock", data={"time": timezone.localtime().strftime("%H:%M:%S")})
        await asyncio.sleep(1)


async def build_log() -> AsyncIterator[Event]:
    """A simulated build's output. It ends after its last line; the other sources go on."""
    for delay, line in BUILD_LOG:
        await asyncio.sleep(delay)
        yield Event(event="build", data={"line": line})


async def ticker(symbol: str, price: float) -> AsyncIterator[Event]:
    """A made-up share price: a random walk, at random intervals."""
    while True:
        await asyncio.sleep(random.uniform(0.2, 0.8))
        # In whole cents, so that the changes shown add up to the prices shown.
        moved = round(price * (1 + random.gauss(0, 0.004)), 2)
        change, price = moved - price, moved
        yield Event(
            event="ticker",
            data={"symbol": symbol, "price": f"{price:.2f}", "change": f"{change:+.2f}"},
        )


class DashboardStream(SSEView):
    """The three sources on one stream, each item as soon as its source produced it."""

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        # aclosing(): when the client leaves, the merge and its three sources close at once.
        async with aclosing(merge(clock(), build_log(), ticker("ACME", 100.0))) as events:
            async for event in events:
                yield event


def page(request: HttpRequest) -> HttpResponse:
    """The page shows the real source, so what you read is exactly what runs."""
    code = (clock, build_log, ticker, DashboardStream)
    source = "\n\n".join(inspect.getsource(item) for item in code)
    return render(request, "demo/multisource.html", {"source": source})


urlpatterns = [
    path("", page, name="page"),
    path("stream/", DashboardStream.as_view(), name="stream"),
]
