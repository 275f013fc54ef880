"""Views the tests stream from, in-process and through real ASGI servers.

Streams that take a ``probe`` query parameter report their cleanup to a probe, which
``/status/<token>/`` awaits: a test learns that a server-side ``finally`` ran without
sleeping, even across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from django_sse import FINISHED, Event, Outcome, SSEView, render_event, sse_response


@dataclass
class Probe:
    finally_ran: bool = False
    outcome: str | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)


_probes: dict[str, Probe] = {}


def probe(token: str) -> Probe:
    return _probes.setdefault(token, Probe())


def _record_outcome(token: str, outcome: str) -> None:
    path = os.environ.get("SSE_TEST_OUTCOMES")
    if path:
        with open(path, "a") as log:
            log.write(f"{token} {outcome}\n")


class ProbedView(SSEView):
    """Reports its generator's cleanup and its outcome to the request's probe."""

    token = ""

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        self.token = request.GET.get("probe", "")
        try:
            async for item in self.items(request):
                yield item
        finally:
            probe(self.token).finally_ran = True

    def items(self, request: HttpRequest) -> AsyncIterator[Any]:
        raise NotImplementedError

    async def on_close(self, reason: Outcome) -> None:
        state = probe(self.token)
        state.outcome = str(reason)
        state.closed.set()
        _record_outcome(self.token, str(reason))


class CounterView(ProbedView):
    async def items(self, request: HttpRequest) -> AsyncIterator[Any]:
        for i in range(int(request.GET.get("n", "3"))):
            yield Event(data=str(i), id=str(i))


class ResumableView(SSEView):
    """Numbered events, continuing after Last-Event-ID: a restart loses and repeats nothing."""

    retry = 50

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        start = int(self.last_event_id) + 1 if self.last_event_id else 0
        for n in range(start, int(request.GET.get("n", "1000"))):
            yield Event(data=str(n), id=str(n))
            await asyncio.sleep(0.01)


class GateView(ProbedView):
    """Sends one event, then blocks until /release/<token>/ opens the gate."""

    async def items(self, request: HttpRequest) -> AsyncIterator[Any]:
        yield Event(data="first", id="1")
        await probe(self.token).gate.wait()
        yield Event(data="second", id="2")


class LimitedGateView(GateView):
    """GateView with limits of its own, whatever the settings say."""

    stream_limit_per_user = 1
    stream_limit_per_address = 2


class FinishingView(ProbedView):
    """Two events, then FINISHED: reconnecting after it gets a 204."""

    async def items(self, request: HttpRequest) -> AsyncIterator[Any]:
        yield Event(data="a", id="1")
        yield Event(data="b", id="2")
        yield FINISHED


async def finishing_function(request: HttpRequest) -> HttpResponse:
    async def events() -> AsyncIterator[Any]:
        yield Event(data="a", id="1")
        yield FINISHED

    return sse_response(events(), request=request)  # type: ignore[return-value]


class RenderedView(ProbedView):
    """Users rendered from a template with a queryset in its context, then from a
    Django 6 partial (?partial=1), or from a template that does not exist (?missing=1)."""

    async def items(self, request: HttpRequest) -> AsyncIterator[Any]:
        from django.contrib.auth.models import User

        users = User.objects.order_by("username")
        if "missing" in request.GET:
            yield await render_event("render/no-such-template.html", {})
        template = "render/partials.html#row" if "partial" in request.GET else "render/users.html"
        context = {"users": users, "user": await users.afirst(), "note": "<b>&</b>"}
        yield await render_event(template, context, request=request, event="users", id="1")


class IdleView(ProbedView):
    keep_alive = 0.2

    async def items(self, request: HttpRequest) -> AsyncIterator[Any]:
        yield "hello"
        await asyncio.Event().wait()
        yield "never"


class FloodView(ProbedView):
    """Yields as fast as it can, so it spends its life suspended at a yield."""

    keep_alive = 0

    async def items(self, request: HttpRequest) -> AsyncIterator[Any]:
        payload = "x" * 1000
        while True:
            yield payload


class ErrorView(ProbedView):
    async def items(self, request: HttpRequest) -> AsyncIterator[Any]:
        yield "before"
        raise ValueError("secret detail")


class UrlInErrorView(ProbedView):
    """Fails quoting its own URL, as code that reports a refused request often does:
    whatever credentials the URL carries end up in the exception's message."""

    async def items(self, request: HttpRequest) -> AsyncIterator[Any]:
        yield "before"
        raise PermissionError(f"upstream refused {request.get_full_path()}")


class TimeoutView(ProbedView):
    max_duration = 0.3
    keep_alive = 0

    async def items(self, request: HttpRequest) -> AsyncIterator[Any]:
        yield "started"
        await asyncio.Event().wait()
        yield "never"


class ForbiddenView(CounterView):
    async def has_permission(self, request: HttpRequest) -> bool:
        return False


class LoginRequiredView(CounterView):
    """Its has_permission() reads request.user as docs/views.md says it may."""

    login_required = True

    async def has_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.get_username())


class LastEventIdView(SSEView):
    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        yield {"last_event_id": self.last_event_id}


class PostEchoView(SSEView):
    http_method_names = ["post"]

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        yield Event(event="echo", data=json.loads(request.body))


class RetryView(CounterView):
    retry = 2500


async def function_stream(request: HttpRequest) -> HttpResponse:
    async def numbers() -> AsyncIterator[Any]:
        for n in range(3):
            yield {"n": n}

    return sse_response(numbers(), retry=1000, request=request)  # type: ignore[return-value]


async def release(request: HttpRequest, token: str) -> JsonResponse:
    probe(token).gate.set()
    return JsonResponse({"released": token})


async def status(request: HttpRequest, token: str) -> JsonResponse:
    state = probe(token)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(state.closed.wait(), float(request.GET.get("wait", "2")))
    return JsonResponse({"finally_ran": state.finally_ran, "outcome": state.outcome})
