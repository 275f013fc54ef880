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

from django_sse import conf
from django_sse._lifecycle import Lifecycle
from django_sse.broadcast import ChannelView, _history
from django_sse.broadcast._view import user_key
from django_sse.llm import _records
from django_sse.llm._generation import (
    ENDINGS,
    RunningGeneration,
    astop,
    channel_for,
    following,
    is_generation_id,
    last_event,
)
from django_sse.llm._types import ProviderError
from django_sse.llm._view import ChatView, error_response
from django_sse.llm.models import GenerationOutcome
from django_sse.protocol import Event
from django_sse.tracking import client_address, server_id
from django_sse.views import last_event_id

__all__ = ["GenerationView", "ResumableChatView", "StopGenerationView"]

# Seconds a client refused for having too many answers running is told to wait: answers
# usually end within that, and it is long enough not to be a busy loop.
RETRY_AFTER = 5


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

    Answers go on when nobody reads them, so they are limited: the answers one user
    (or one anonymous client address) may have running at once, and the tokens of each
    (``max_tokens``, LLM_GENERATION_MAX_TOKENS when None).
    """

    output_format = "native"
    stream_view: type[GenerationView]
    stop_view: type[StopGenerationView]
    # None: the LLM_GENERATIONS_PER_USER and LLM_GENERATIONS_PER_ADDRESS settings.
    generations_per_user: int | None = None
    generations_per_address: int | None = None

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
        max_tokens = self.max_tokens or conf.get("LLM_GENERATION_MAX_TOKENS")
        generation = RunningGeneration(self._provider, self.messages, max_tokens=max_tokens)
        admission = _records.Admission(
            user_id=await user_key(request),
            client_address=client_address(request),
            per_user=conf.limit("LLM_GENERATIONS_PER_USER", self.generations_per_user),
            per_address=conf.limit("LLM_GENERATIONS_PER_ADDRESS", self.generations_per_address),
        )
        try:
            await _history.in_worker(
                _records.admit, generation.id, admission, self._provider.model, server_id()
            )
        except _records.Refused as refused:
            return _too_many(refused.limit)
        try:
            await generation.start()
        except BaseException:
            await _history.in_worker(_records.finish, generation.id, GenerationOutcome.ERROR)
            raise
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

    def _serves(self, channel: str) -> bool:
        # Its own answer's channel, once _check_access() found the request its owner's.
        return True

    async def _check_access(self, request: HttpRequest) -> HttpResponseBase | None:
        generation = self.kwargs["generation"]
        if not is_generation_id(generation):
            return _not_found()
        denied = await super()._check_access(request)
        if denied is not None:
            return denied
        refused = await _refusal(generation, self._user)
        if refused is not None:
            return refused
        last = await last_event(generation)
        if last is None:
            return _not_found()
        position = _position(last_event_id(request))
        if last.event in ENDINGS and position is not None and position >= last.seq:
            return HttpResponse(status=204)
        return None

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        # A new viewer reads the answer from its beginning; so does one whose
        # Last-Event-ID names no position in it, which would otherwise get a reset and
        # then only what comes next (and, after the end, nothing at all).
        if _position(self.last_event_id) is None:
            self.last_event_id = "0"
        life = self._life
        async with following(self.kwargs["generation"]):
            async for event in super().stream(request, *args, **kwargs):
                yield event
                if life is not None:
                    _record(life, event)
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
        refused = await _refusal(generation, await user_key(request))
        if refused is not None:
            return refused
        last = await last_event(generation)
        if last is None or last.event in ENDINGS:
            return JsonResponse({"id": generation, "stopping": False, "ended": True})
        await astop(generation)
        return JsonResponse({"id": generation, "stopping": True, "ended": False}, status=202)


ResumableChatView.stream_view = GenerationView
ResumableChatView.stop_view = StopGenerationView


async def _refusal(generation: str, user: str | None) -> HttpResponseBase | None:
    """A 404 for an unknown generation, a 403 for an answer that is someone else's.

    The owner comes from the generation's row, which lives as long as the answer can
    be read: not from its events, whose history is pruned.
    """
    exists, owner = await _history.in_worker(_records.owner_of, generation)
    if not exists:
        return _not_found()
    if owner is not None and owner != user:
        return _forbidden()
    return None


def _too_many(limit: int) -> JsonResponse:
    response = error_response(
        429,
        "too_many_generations",
        f"You have {limit} answers running, the most allowed at once: wait for one to end, "
        "or stop one.",
    )
    response["Retry-After"] = str(RETRY_AFTER)
    return response


def _record(life: Lifecycle, event: Event) -> None:
    """What the stream log of a follower shows: the model, the usage, a failure."""
    stats = life.stats
    if event.event == "start":
        stats.model = json.loads(event.data)["model"]
    elif event.event == "done":
        usage = json.loads(event.data)["usage"]
        if usage is not None:
            stats.prompt_tokens = usage["prompt_tokens"]
            stats.completion_tokens = usage["completion_tokens"]
    elif event.event == "error":
        failure = json.loads(event.data)
        life.record_error(ProviderError(failure["code"], failure["message"]))


def _not_found() -> JsonResponse:
    return error_response(404, "not_found", "There is no such generation.")


def _forbidden() -> JsonResponse:
    return error_response(403, "permission_denied", "This answer belongs to someone else.")


def _position(last_event_id: str | None) -> int | None:
    """The sequence number a Last-Event-ID names, if it names one."""
    value = last_event_id or ""
    return int(value) if value.isascii() and value.isdigit() else None
