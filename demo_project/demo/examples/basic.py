"""Example 1: the smallest useful SSEView, and a page that shows its source and its ticks."""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from django_sse import SSEView

app_name = "basic"


class ClockView(SSEView):
    """A counter and the server's clock, once a second, until the client goes away."""

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        for n in itertools.count():
            yield {"n": n, "time": timezone.now().isoformat(timespec="seconds")}
            await asyncio.sleep(1)


def page(request: HttpRequest) -> HttpResponse:
    """The page shows the view's real source, so what you read is exactly what runs."""
    return render(request, "demo/basic.html", {"source": inspect.getsource(ClockView)})


urlpatterns = [
    path("", page, name="page"),
    path("stream/", ClockView.as_view(), name="stream"),
]
