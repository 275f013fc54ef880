"""Example 6: live pages with htmx 4, as django-htmx ships it. A table of builds whose
rows the server re-renders from a template as they progress, and a chat answer streamed
into the page as escaped HTML by an htmx form, with no JavaScript of our own.

Offline, the chat is answered by django_sse's local text source, as on the other chat
pages.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from django_sse import FINISHED, SSEView
from django_sse.htmx import render_partial
from django_sse.llm import ChatView, get_provider

app_name = "htmx"

ROW = "demo/htmx_row.html"


@dataclass
class Build:
    pk: int
    name: str
    progress: int = 0


def builds() -> list[Build]:
    return [Build(1, "docs"), Build(2, "wheel"), Build(3, "tests"), Build(4, "image")]


class BuildsView(SSEView):
    """Each build moves on at random; its row is rendered again and htmx puts it in place.
    When all are done, FINISHED: htmx closes the stream instead of reconnecting."""

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        running = builds()
        while running:
            await asyncio.sleep(0.5)
            build = random.choice(running)
            build.progress = min(100, build.progress + random.randint(10, 30))
            if build.progress == 100:
                running.remove(build)
            yield await render_partial(ROW, {"build": build}, target=f"#build-{build.pk}")
        yield FINISHED


class AnswerView(ChatView):
    """The answer as escaped HTML pieces, which the form's hx-swap appends."""

    output_format = "html"
    system_prompt = "You are a helpful assistant on a Django demo site. Answer concisely."
    max_tokens = 800


def page(request: HttpRequest) -> HttpResponse:
    if not settings.HTMX:
        return render(request, "demo/htmx_missing.html")
    context = {"builds": builds(), "row": ROW, "provider": get_provider().label}
    return render(request, "demo/htmx.html", context)


urlpatterns = [
    path("", page, name="page"),
    path("builds/", BuildsView.as_view(), name="builds"),
    path("answer/", AnswerView.as_view(), name="answer"),
]
