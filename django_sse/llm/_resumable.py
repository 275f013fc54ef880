"""Resumable chat: POST starts a generation, GET follows it, POST .../stop/ stops it.

Built on broadcast (a generation publishes into a channel), so it needs Django
Channels like the rest of django_sse.broadcast.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import URLPattern, path
from django.views import View

from django_sse.broadcast import ChannelView
from django_sse.llm._generation import (
    ENDINGS,
    Generation,
    astop,
    channel_for,
    is_generation_id,
    last_event,
)
from django_sse.llm._view import ChatView
from django_sse.response import StreamStats

__all__ = ["GenerationView", "ResumableChatView", "StopGenerationView"]


class ResumableChatView(ChatView):
    """A chat whose answers survive dropped connections: opt in by using this view.

    POST starts a generation (see _generation.py) and answers 201 with JSON:
    ``{"id", "stream_url", "stop_url"}``. GET ``stream_url`` streams the answer as
    native events (``start``, ``token``..., then ``done`` or ``error``), resuming
    after Last-Event-ID, so a browser's EventSource continues mid-answer by itself;
    any number of streams may follow one answer. POST ``stop_url`` stops it.

    Route all three with ``path("chat/", include(ResumableChatView.urls()))``. The
    generation's id is the only key to its answer: share its URLs only with whoever
    may read it, or check more in ``GenerationView.has_channel_permission()``.
    """

    output_format = "native"
    stream_view: type[GenerationView]
    stop_view: type[StopGenerationView]

    @classmethod
    def urls(cls, **initkwargs: Any) -> list[URLPattern]:
        return [
            path("", cls.as_view(**initkwargs)),
            path("<str:generation>/", cls.stream_view.as_view()),
            path("<str:generation>/stop/", cls.stop_view.as_view()),
        ]

    async def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        denied = await self._check_access(request)
        if denied is not None:
            return denied
        generation = Generation(self._provider, self.messages, max_tokens=self.max_tokens)
        await generation.start()
        stream_url = f"{request.path}{generation.id}/"
        return JsonResponse(
            {"id": generation.id, "stream_url": stream_url, "stop_url": f"{stream_url}stop/"},
            status=201,
        )


class GenerationView(ChannelView):
    """Streams one generation's answer; ends after its last event.

    A client that reconnects after the end (EventSource does) gets 204, which tells
    it to stop reconnecting.
    """

    def get_channels(self, request: HttpRequest, *args: Any, **kwargs: Any) -> list[str]:
        return [channel_for(self.kwargs["generation"])]

    async def _check_access(self, request: HttpRequest) -> HttpResponseBase | None:
        generation = self.kwargs["generation"]
        if not is_generation_id(generation):
            return _not_found()
        denied = await super()._check_access(request)
        if denied is not None:
            return denied
        last = await last_event(generation)
        if last is None:
            return _not_found()
        position = _last_event_id(request)
        if last.event in ENDINGS and position is not None and position >= last.seq:
            return HttpResponse(status=204)
        return None

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        # A new viewer reads the answer from its beginning.
        self.last_event_id = self.last_event_id or "0"
        stats = self._response.stats if self._response is not None else None
        async for event in super().stream(request, *args, **kwargs):
            yield event
            if stats is not None and event.event == "start":
                stats.model = json.loads(event.data)["model"]
            if event.event in ENDINGS:
                if stats is not None and event.event == "done":
                    _record_usage(stats, json.loads(event.data)["usage"])
                return


class StopGenerationView(View):
    """POST: stop a generation; 202 once asked, wherever it runs."""

    http_method_names = ["post"]

    async def post(self, request: HttpRequest, generation: str) -> HttpResponseBase:
        if not is_generation_id(generation) or await last_event(generation) is None:
            return _not_found()
        await astop(generation)
        return JsonResponse({"id": generation, "stopping": True}, status=202)


ResumableChatView.stream_view = GenerationView
ResumableChatView.stop_view = StopGenerationView


def _not_found() -> JsonResponse:
    return JsonResponse(
        {"error": {"code": "not_found", "message": "There is no such generation."}}, status=404
    )


def _last_event_id(request: HttpRequest) -> int | None:
    value = request.headers.get("Last-Event-ID") or request.GET.get("lastEventId") or ""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 20 else None


def _record_usage(stats: StreamStats, usage: dict[str, int] | None) -> None:
    if usage is not None:
        stats.prompt_tokens = usage["prompt_tokens"]
        stats.completion_tokens = usage["completion_tokens"]
