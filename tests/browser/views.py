"""Streams and pages for the browser tests: each page wires its stream with the template tags."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
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
        "preserve": "preserve" in request.GET,
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


# --- Scripted streams for tests/browser/test_helper_fixes.py ---------------------------
#
# Raw bytes, so that a test can send what SSEView never writes (an id-only event, an
# empty id, an upper-case content type), and a log of the requests each stream got, per
# test (?key), that a test awaits instead of sleeping.


@dataclass(frozen=True)
class Reply:
    """What one request to a scripted stream gets: ``chunks`` (a body, or events), then
    ``after_release`` once the test opens the key's gate, then the end of the response
    unless ``hold``; ``lasts`` seconds after the chunks, if given, it ends."""

    chunks: tuple[str, ...] = ()
    after_release: tuple[str, ...] | None = None
    hold: bool = False
    lasts: float = 0.0
    status: int = 200
    content_type: str = "text/event-stream"
    retry_after: str | None = None


HELD = Reply(chunks=(": resumed\n\n",), hold=True)


def _first_then_held(first: Reply) -> Callable[[int], Reply]:
    return lambda attempt: first if attempt == 1 else HELD


def _always(reply: Reply) -> Callable[[int], Reply]:
    return lambda attempt: reply


# By name: the reply to the n-th request of a key (1-based).
SCRIPTS: dict[str, Callable[[int], Reply]] = {
    # An event, then an event with only an id; then the stream ends.
    "id-only": _first_then_held(Reply(("retry: 50\n\n", "data: a\nid: 1\n\n", "id: 2\n\n"))),
    # An event, then one whose empty id resets the last event id; then the stream ends.
    "empty-id": _first_then_held(
        Reply(("retry: 50\n\n", "data: a\nid: 1\n\n", "data: b\nid:\n\n"))
    ),
    # An id no HTTP header can carry (not Latin-1).
    "unicode-id": _first_then_held(Reply(("retry: 50\n\n", "data: a\nid: café-日\n\n"))),
    # "Not now, ask again in a second", then an answer.
    "refuse-once": lambda attempt: (
        Reply(("busy",), status=503, content_type="text/plain", retry_after="1")
        if attempt == 1
        else Reply(("event: done\ndata: x\n\n",))
    ),
    "fail-once": _first_then_held(Reply(("not now",), status=500, content_type="text/plain")),
    "done": _always(Reply(("event: done\ndata: x\n\n",))),
    "idle": _always(Reply((": open\n\n",), hold=True)),
    "outer": _always(Reply(("data: OUTER\n\n",), hold=True)),
    "plain": _always(Reply(("data: PLAIN\n\n",), hold=True)),
    "empty-json": _always(Reply(("data: {}\n\n",), hold=True)),
    # "done" whose data is not JSON, then an event that comes only if it did not close.
    "done-not-json": _always(
        Reply(
            (
                'data: {"n": 1}\n\n',
                "event: done\ndata: all finished\n\n",
                'event: after\ndata: {"n": 2}\n\n',
            ),
            hold=True,
        )
    ),
    # A named event once the test has added its listener, then an unnamed one.
    "late": _always(
        Reply(
            (": open\n\n",),
            after_release=("event: late\ndata: LATE\n\n", "data: sentinel\n\n"),
            hold=True,
        )
    ),
    # Events named "open": EventSource's own open event has that name too.
    "named-open": _always(Reply(('event: open\ndata: {"n": 1}\n\n',), hold=True)),
    "upper-case-type": _always(
        Reply(("data: hi\n\n",), hold=True, content_type="TEXT/Event-Stream; charset=utf-8")
    ),
    # An error page that starts with more than the 200 characters sse:error keeps, and
    # never ends: reading it whole would never finish.
    "endless-error": _always(
        Reply(("é" + "x" * 199 + "<tail>" * 100,), hold=True, status=500, content_type="text/html")
    ),
}


def _refused_once(retry_after: Callable[[], str]) -> Callable[[int], Reply]:
    """A 503 with the Retry-After that ``retry_after()`` gives at the time, then "done"."""

    def reply(attempt: int) -> Reply:
        if attempt > 1:
            return Reply(("event: done\ndata: x\n\n",))
        return Reply(("busy",), status=503, content_type="text/plain", retry_after=retry_after())

    return reply


def _in_two_seconds(form: str) -> Callable[[], str]:
    """An HTTP-date two seconds from now, in one of its three forms (RFC 9110, 5.6.7)."""
    return lambda: time.strftime(form, time.gmtime(time.time() + 2))


SCRIPTS.update(
    {
        # "Reconnect at once", and the stream ends before any event: again and again.
        "empty-retry-0": _always(Reply(("retry: 0\n\n",))),
        # A quiet stream that a proxy or max_duration ends after a while: no event, ever.
        "quiet-while": _always(Reply(("retry: 50\n\n", ": quiet\n\n"), lasts=1.2)),
        "retry-after-0": _refused_once(lambda: "0"),
        "retry-after-imf-date": _refused_once(_in_two_seconds("%a, %d %b %Y %H:%M:%S GMT")),
        "retry-after-rfc850-date": _refused_once(_in_two_seconds("%A, %d-%b-%y %H:%M:%S GMT")),
        # No zone: GMT, whatever the browser's own.
        "retry-after-asctime-date": _refused_once(_in_two_seconds("%a %b %e %H:%M:%S %Y")),
        # What no server means as a delay or a date.
        "retry-after-fraction": _refused_once(lambda: "1.5"),
        "retry-after-negative": _refused_once(lambda: "-1"),
        # Two Retry-After headers, as the browser joins them.
        "retry-after-twice": _refused_once(lambda: "5, 6"),
        # An event; then, asked again, 204: the server says the stream is over.
        "then-no-content": lambda attempt: (
            Reply(("retry: 50\n\n", "data: one\n\n")) if attempt == 1 else Reply(status=204)
        ),
    }
)


_fixes_log: dict[str, list[dict[str, Any]]] = {}
_fixes_logged: dict[str, asyncio.Condition] = {}
_fixes_gates: dict[str, asyncio.Event] = {}


def _logged(key: str) -> asyncio.Condition:
    return _fixes_logged.setdefault(key, asyncio.Condition())


async def scripted_stream(request: HttpRequest, key: str, script: str) -> HttpResponseBase:
    """The script's reply to this request; the request goes in the key's log first."""
    log = _fixes_log.setdefault(key, [])
    attempt = 1 + sum(1 for entry in log if entry["script"] == script)
    async with _logged(key):
        entry: dict[str, Any] = {
            "script": script,
            "attempt": attempt,
            "method": request.method,
            "last_event_id_header": request.headers.get("Last-Event-ID"),
            "last_event_id_query": request.GET.get("lastEventId"),
            "content_type": request.headers.get("Content-Type"),
            "accept": request.headers.get("Accept"),
            "body": request.body.decode("utf-8", "replace"),
            # Whether the response's body is over: sent whole, or the client left.
            "ended": False,
        }
        log.append(entry)
        _logged(key).notify_all()
    reply = SCRIPTS[script](attempt)
    if reply.status != 200 and not reply.hold:
        entry["ended"] = True
        refusal = HttpResponse(
            "".join(reply.chunks), status=reply.status, content_type=reply.content_type
        )
        if reply.retry_after is not None:
            refusal["Retry-After"] = reply.retry_after
        return refusal

    async def body() -> AsyncIterator[bytes]:
        try:
            for chunk in reply.chunks:
                yield chunk.encode()
            if reply.after_release is not None:
                await _fixes_gates.setdefault(key, asyncio.Event()).wait()
                for chunk in reply.after_release:
                    yield chunk.encode()
            if reply.lasts:
                await asyncio.sleep(reply.lasts)
            if reply.hold:
                await asyncio.Event().wait()
        finally:
            async with _logged(key):
                entry["ended"] = True
                _logged(key).notify_all()

    response = StreamingHttpResponse(body(), status=reply.status, content_type=reply.content_type)
    response["Cache-Control"] = "no-cache"
    # Not for GZipMiddleware, which would hold the events back.
    response["Content-Encoding"] = "identity"
    return response


# What @csrf_exempt sets: the decorator cannot wrap an async view on Django 4.2.
scripted_stream.csrf_exempt = True  # type: ignore[attr-defined]


async def scripted_requests(request: HttpRequest, key: str) -> JsonResponse:
    """The key's logged requests, once there are ?count= of them (with ?ended=1: whose
    responses have all ended) or ?wait= seconds passed."""
    count = int(request.GET.get("count", "0"))
    ended = "ended" in request.GET
    logged = _logged(key)

    def ready() -> bool:
        log = _fixes_log.get(key, [])
        return len(log) >= count and (not ended or all(entry["ended"] for entry in log))

    async with logged:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                logged.wait_for(ready),
                float(request.GET.get("wait", "10")),
            )
    return JsonResponse(_fixes_log.get(key, []), safe=False)


async def release_scripted(request: HttpRequest, key: str) -> JsonResponse:
    """Lets the key's streams waiting at ``after_release`` go on."""
    _fixes_gates.setdefault(key, asyncio.Event()).set()
    return JsonResponse({"released": key})


def fixes_page(request: HttpRequest, name: str) -> HttpResponse:
    """browser/fixes_<name>.html; its streams are the test's ?key= with ?script=."""
    context = {
        "key": request.GET["key"],
        "script": request.GET.get("script", ""),
        "transport": request.GET.get("transport"),
        "retry": request.GET.get("retry"),
    }
    return render(request, f"browser/fixes_{name}.html", context)


urlpatterns += [
    path("fixes/<slug:key>/requests/", scripted_requests, name="fixes-requests"),
    path("fixes/<slug:key>/release/", release_scripted, name="fixes-release"),
    path("fixes/<slug:key>/<slug:script>/", scripted_stream, name="fixes-stream"),
    path("page/fixes/<slug:name>/", fixes_page, name="fixes-page"),
]


# --- Raw byte streams for tests/browser/test_helper_edges.py ---------------------------
#
# Bytes no SSEView writes, each chunk flushed on its own: both transports must read them
# alike, as the HTML standard says (UTF-8 whatever the charset, a BOM dropped, CR, LF and
# CRLF line ends). The last event is "done", which the page closes on.

RAW: dict[str, tuple[bytes, ...]] = {
    "bytes": (
        b"\xef\xbb\xbfdata: after a BOM\n\n",
        b"data: caf\xe9 and \xff\xfe in no UTF-8\n\n",
        # A character split between chunks, and a CRLF too.
        b"data: \xe6\x97",
        b"\xa5\r",
        b"\n\r\n",
        b"data: a\rdata: b\r\ndata: c\n\r",
        b"data\n\ndata: \x00nul\n\n",
        b"event: done\ndata: x\n\n",
    ),
}


async def raw_stream(request: HttpRequest, name: str) -> StreamingHttpResponse:
    async def body() -> AsyncIterator[bytes]:
        for chunk in RAW[name]:
            yield chunk
            # A turn of the event loop: the server writes each chunk on its own.
            await asyncio.sleep(0)

    # A charset the stream does not have: the standard decodes UTF-8 regardless.
    response = StreamingHttpResponse(body(), content_type="text/event-stream; charset=iso-8859-1")
    response["Cache-Control"] = "no-cache"
    response["Content-Encoding"] = "identity"
    return response


urlpatterns += [path("raw/<slug:name>/", raw_stream, name="raw-stream")]
