"""Streams and pages for the browser tests: each page wires its stream with the template tags."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.urls import path
from django.views.decorators.csrf import ensure_csrf_cookie

from django_sse import Event, SSEView
from tests.views import ProbedView, ResumableView

app_name = "browser"

# Data that must arrive intact and never run: non-ASCII, several lines, markup.
TRICKY = [
    "héllo wörld ✓ 日本語 🎉",
    "first line\nsecond line\r\nthird line",
    "</script><script>window.pwned = 'script'</script>",
    "<img src=x onerror=\"window.pwned = 'img'\">",
]


class KindsView(ProbedView):
    """A tick, a note and a plain message, all JSON, then "done"; it never ends by itself."""

    async def items(self, request: HttpRequest) -> AsyncIterator[Any]:
        yield Event(event="tick", data={"n": 1, "label": "one"}, id="1")
        yield Event(event="note", data={"text": "a note"}, id="2")
        yield Event(data={"n": 2}, id="3")
        yield Event(event="done", data={"total": 3}, id="4")
        await asyncio.Event().wait()


class NumbersView(ResumableView):
    """ResumableView's numbers up to ?n=, then "done": the page closes instead of resuming."""

    retry = 100

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for event in super().stream(request, *args, **kwargs):
            yield event
        yield Event(event="done", data="")


class TrickyView(SSEView):
    http_method_names = ["get", "post"]

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        for data in TRICKY:
            yield data
        yield Event(event="done", data="")


class EchoView(SSEView):
    """POST only: echoes the form or JSON body back as one "echo" event, then "done"."""

    http_method_names = ["post"]

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        if request.content_type == "application/json":
            body = json.loads(request.body)
        else:
            body = {
                key: value for key, value in request.POST.items() if key != "csrfmiddlewaretoken"
            }
        yield Event(event="echo", data=body)
        yield Event(event="done", data="")


# Requests seen per ?key=, for FlakyView; one server process serves each test.
_flaky_attempts: dict[str, int] = {}


class FlakyView(NumbersView):
    """503 (or ?status=) for the first ?failures= requests of each ?key=, with a
    Retry-After of ?retry_after= if given, then the numbers stream."""

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        key = request.GET.get("key", "")
        _flaky_attempts[key] = attempt = _flaky_attempts.get(key, 0) + 1
        if attempt <= int(request.GET.get("failures", "2")):
            refusal = HttpResponse("try again later", status=int(request.GET.get("status", "503")))
            if "retry_after" in request.GET:
                refusal["Retry-After"] = request.GET["retry_after"]
            return refusal
        return await super().get(request, *args, **kwargs)


def no_content(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=204)


def page(request: HttpRequest, name: str) -> HttpResponse:
    """A test page; the test picks its stream with ?stream= and any hostile input with ?hostile=."""
    hostile = request.GET.get("hostile", "")
    context = {
        "stream_url": request.GET.get("stream", ""),
        "pause": "pause" in request.GET,
        "transport": request.GET.get("transport"),
        "retry": request.GET.get("retry"),
        "hostile": hostile,
        "hostile_path": f"/counter/?q={hostile}",
        # Also through the helper's <script nonce="...">.
        "csp_nonce": hostile,
    }
    return render(request, f"browser/{name}.html", context)


@ensure_csrf_cookie
def form_page(request: HttpRequest) -> HttpResponse:
    return render(request, "browser/post.html", {"payload": {"text": "json body ✓", "n": 7}})


def csp_page(request: HttpRequest) -> HttpResponse:
    """Scripts run only with the nonce: the helper's tag must carry it."""
    nonce = "bm9uY2UtZm9yLXRlc3Rz"
    response = render(request, "browser/csp.html", {"csp_nonce": nonce})
    response["Content-Security-Policy"] = f"script-src 'nonce-{nonce}'"
    return response


urlpatterns = [
    path("numbers/", NumbersView.as_view(), name="numbers"),
    path("kinds/", KindsView.as_view(), name="kinds"),
    path("tricky/", TrickyView.as_view(), name="tricky"),
    path("echo/", EchoView.as_view(), name="echo"),
    path("flaky/", FlakyView.as_view(), name="flaky"),
    path("no-content/", no_content, name="no-content"),
    path("page/post/", form_page, name="post"),
    path("page/csp/", csp_page, name="csp"),
    path("page/<slug:name>/", page, name="page"),
]
