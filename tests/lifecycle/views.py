"""One stream view whose behaviour the query string chooses, and the endpoints that steer it.

``/races/stream/?t=<token>&...`` options (all optional but ``t``):

- ``n``, ``size``: yield ``n`` events (default 1) of ``size`` characters of data;
- ``sync_gate``: then wait in a sync call (``sync_to_async``) blocked on a
  ``threading.Event`` until ``/races/open/?gate=sync`` opens it, and yield ``after``;
- ``hold``: then wait, for ``gate`` (``/races/open/?gate=hold``) or ``forever``;
- ``raise``: then fail: ``surrogate`` raises a ValueError whose message holds a lone
  surrogate, ``cancelled`` awaits a future that gets cancelled (a CancelledError raised
  by the source itself, not a cancellation of the stream);
- ``done``: then yield a final ``done`` event and return;
- ``finally_gate``, ``close_gate``, ``perm_gate``: the generator's ``finally``,
  ``on_close`` or ``has_permission`` waits for that gate (``finally``, ``close``,
  ``perm``) to open;
- ``keep_alive``, ``max_duration``: the view's options.

The generator's ``finally`` and ``on_close`` each await (``asyncio.sleep(0)`` and a
``sync_to_async`` call) between their first mark and their last, so a cancellation
landing in them shows as a mark without its ``_done`` twin.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from django_sse import Event, Outcome, SSEView
from tests.lifecycle import journal

# How long a sync gate waits at most, so that a forgotten gate cannot wedge a thread.
SYNC_GATE_LIMIT = 60.0

_gates: dict[tuple[str, str], asyncio.Event] = {}
_sync_gates: dict[str, threading.Event] = {}
_sync_lock = threading.Lock()


def gate(token: str, name: str) -> asyncio.Event:
    return _gates.setdefault((token, name), asyncio.Event())


def sync_gate(token: str) -> threading.Event:
    with _sync_lock:
        return _sync_gates.setdefault(token, threading.Event())


def surrogate_text() -> str:
    """Text with a lone surrogate, as bytes that are not UTF-8 decode with surrogateescape."""
    return "bad " + b"\xff".decode("utf-8", "surrogateescape")


def _blocked_in_sync(token: str) -> None:
    journal.record(token, "sync_entered")
    opened = sync_gate(token).wait(SYNC_GATE_LIMIT)
    journal.record(token, "sync_left" if opened else "sync_gave_up")


class RaceView(SSEView):
    token = ""

    def setup(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().setup(request, *args, **kwargs)
        self.token = request.GET.get("t", "")
        self.query = request.GET
        if "keep_alive" in request.GET:
            self.keep_alive = float(request.GET["keep_alive"])
        if "max_duration" in request.GET:
            self.max_duration = float(request.GET["max_duration"])

    async def has_permission(self, request: HttpRequest) -> bool:
        if "perm_gate" in self.query:
            journal.record(self.token, "permission_entered")
            await gate(self.token, "perm").wait()
        return True

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        token, options = self.token, self.query
        journal.record(token, "started")
        try:
            payload = "x" * int(options.get("size", "8"))
            for i in range(int(options.get("n", "1"))):
                yield Event(data=payload, id=str(i))
            if "sync_gate" in options:
                await sync_to_async(_blocked_in_sync)(token)
                yield Event(event="after", data="after")
            hold = options.get("hold")
            if hold == "gate":
                await gate(token, "hold").wait()
            elif hold == "forever":
                await asyncio.Event().wait()
            failure = options.get("raise")
            if failure == "surrogate":
                raise ValueError(surrogate_text())
            if failure == "cancelled":
                loop = asyncio.get_running_loop()
                future = loop.create_future()
                loop.call_soon(future.cancel, f"source-cancelled {token}")
                await future
            if "done" in options:
                yield Event(event="done", data="done")
        finally:
            journal.record(token, "finally_entered")
            await asyncio.sleep(0)
            if "finally_gate" in options:
                await gate(token, "finally").wait()
            await sync_to_async(journal.record)(token, "finally_thread")
            journal.record(token, "finally_done")

    async def on_close(self, reason: Outcome) -> None:
        journal.record(self.token, "on_close", str(reason))
        await asyncio.sleep(0)
        if "close_gate" in self.query:
            await gate(self.token, "close").wait()
        await sync_to_async(journal.record)(self.token, "on_close_thread", str(reason))
        journal.record(self.token, "on_close_done", str(reason))


async def open_gates(request: HttpRequest) -> JsonResponse:
    """``?gate=<name>&t=<token>&t=...``: open that gate of each stream."""
    name = request.GET["gate"]
    tokens = request.GET.getlist("t")
    for token in tokens:
        if name == "sync":
            sync_gate(token).set()
        else:
            gate(token, name).set()
    return JsonResponse({"opened": tokens})


async def wait_for(request: HttpRequest) -> JsonResponse:
    """``?mark=a,b&t=...&timeout=s``: wait (bounded) until each stream has one of the marks.

    Answers with the tokens that still have none when the time is up.
    """
    marks = request.GET["mark"].split(",")
    timeout = float(request.GET.get("timeout", "15"))
    missing = await journal.wait_for(request.GET.getlist("t"), marks, timeout)
    return JsonResponse({"missing": missing})


def plain(request: HttpRequest) -> HttpResponse:
    """A sync view: it runs on the request's thread."""
    return HttpResponse("plain", content_type="text/plain")
