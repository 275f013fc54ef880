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
from django_sse.broadcast._history import StoredEvent
from django_sse.broadcast._view import user_key
from django_sse.llm._generation import (
    ENDINGS,
    Generation,
    astop,
    channel_for,
    edges,
    is_generation_id,
)
from django_sse.llm._types import ProviderError
from django_sse.llm._view import ChatView, error_response
from django_sse.protocol import Event
from django_sse.response import SSEResponse
from django_sse.views import last_event_id

__all__ = ["GenerationView", "ResumableChatView", "StopGenerationView"]


class ResumableChatView(ChatView):
    """A chat whose answers survive dropped connections: opt in by using this view.

    POST starts a generation (see _generation.py) and answers 201 with JSON:
    ``{"id", "stream_url", "stop_url"}``. GET ``stream_url`` streams the answer as
    native events (``start``, ``token``..., then ``done`` or ``error``), resuming
    after Last-Event-ID, so a browser's EventSource continues mid-answer by itself;
    any number of streams may follow one answer. POST ``stop_url`` stops it.

    Route all three with ``path("chat/", include(ResumableChatView.urls()))``. An
    answer started by a logged-in user can only be followed and stopped by that user;
    one started anonymously by whoever has its URLs (its id is the key).
    """

    output_format = "native"
    stream_view: type[GenerationView]
    stop_view: type[StopGenerationView]

    @classmethod
    def urls(cls, name: str | None = None, **initkwargs: Any) -> list[URLPattern]:
        """The three routes; with ``name``, named ``name``, ``name-stream``, ``name-stop``."""
        names = (name, f"{name}-stream", f"{name}-stop") if name else (None, None, None)
        return [
            path("", cls.as_view(**initkwargs), name=names[0]),
            path("<str:generation>/", cls.stream_view.as_view(), name=names[1]),
            path("<str:generation>/stop/", cls.stop_view.as_view(), name=names[2]),
        ]

    async def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        denied = await self._check_access(request)
        if denied is not None:
            return denied
        generation = Generation(
            self._provider,
            self.messages,
            max_tokens=self.max_tokens,
            owner=await user_key(request),
        )
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
        first, last = await edges(generation)
        if first is None or last is None:
            return _not_found()
        if not _may_use(first, self._user):
            return _forbidden()
        position = _position(request)
        if last.event in ENDINGS and position is not None and position >= last.seq:
            return HttpResponse(status=204)
        return None

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        # A new viewer reads the answer from its beginning.
        self.last_event_id = self.last_event_id or "0"
        response = self._response
        async for event in super().stream(request, *args, **kwargs):
            yield event
            if response is not None:
                _record(response, event)
            if event.event in ENDINGS:
                return


class StopGenerationView(View):
    """POST: stop a generation, wherever it runs: 202, or 200 if it had ended."""

    http_method_names = ["post"]

    async def post(
        self, request: HttpRequest, *args: Any, generation: str, **kwargs: Any
    ) -> HttpResponseBase:
        if not is_generation_id(generation):
            return _not_found()
        first, last = await edges(generation)
        if first is None or last is None:
            return _not_found()
        if not _may_use(first, await user_key(request)):
            return _forbidden()
        if last.event in ENDINGS:
            return JsonResponse({"id": generation, "stopping": False, "ended": True})
        await astop(generation)
        return JsonResponse({"id": generation, "stopping": True, "ended": False}, status=202)


ResumableChatView.stream_view = GenerationView
ResumableChatView.stop_view = StopGenerationView


def _may_use(start: StoredEvent, user: str | None) -> bool:
    """Whether ``user`` may follow or stop the generation that ``start`` opened."""
    owner = json.loads(start.data).get("owner") if start.event == "start" else None
    return owner is None or owner == user


def _record(response: SSEResponse, event: Event) -> None:
    """What the stream log of a follower shows: the model, the usage, a failure."""
    stats = response.stats
    if event.event == "start":
        stats.model = json.loads(event.data)["model"]
    elif event.event == "done":
        usage = json.loads(event.data)["usage"]
        if usage is not None:
            stats.prompt_tokens = usage["prompt_tokens"]
            stats.completion_tokens = usage["completion_tokens"]
    elif event.event == "error":
        failure = json.loads(event.data)
        response.record_error(ProviderError(failure["code"], failure["message"]))


def _not_found() -> JsonResponse:
    return error_response(404, "not_found", "There is no such generation.")


def _forbidden() -> JsonResponse:
    return error_response(403, "permission_denied", "This answer belongs to someone else.")


def _position(request: HttpRequest) -> int | None:
    """The sequence number the client's Last-Event-ID names, if it names one."""
    value = last_event_id(request) or ""
    return int(value) if value.isascii() and value.isdigit() else None
