"""Example 4: production patterns.

Heartbeats, a reconnection delay, an id on every event with resume from Last-Event-ID,
ending a stream from the server, an error in the generator, and cleanup on disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.views import View

from django_sse import Event, Outcome, SSEView

logger = logging.getLogger(__name__)

app_name = "production"

# Each page load gets a random client id (see page()); the stream and the drop endpoint
# ignore anything that does not look like one.
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# The "Drop connection" signal of each open stream, by client id. It lives in this
# process, so a drop must reach the process serving the stream: fine for one server
# process; with several, send the signal through a shared channel (e.g. Redis pub/sub).
# Only the event loop touches it (the stream and the async drop view), so no lock.
_drop_signals: dict[str, asyncio.Event] = {}
# Bounds the registry: streams beyond this many still run, but cannot be dropped.
MAX_DROP_SIGNALS = 1000

# ?interval=N (seconds between events) exists so that heartbeats can be seen: at one
# event a second the stream is never idle long enough for one.
MAX_INTERVAL = 30
_SECONDS = re.compile(r"[0-9]{1,2}")


class ProductionStream(SSEView):
    """Numbered events once a second that survive reconnects with no gap and no duplicate."""

    # After 5 s without an event, send a comment line: proxies and load balancers close
    # connections they think idle, and only a write reveals a client that vanished.
    keep_alive = 5
    # Browsers wait about 3 s before reconnecting unless told; this tells them 2 s.
    retry = 2000
    # End each connection after 10 minutes (outcome "timeout"). The browser reconnects
    # and resumes, so long-lived connections move to new servers after a deploy.
    max_duration = 600

    client_id = ""
    interval = 1.0

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # Checked before the stream starts, so that a bad value gets a 400 that says why:
        # once the response has begun, an error could only end it with an "error" event.
        interval = _interval(request.GET.get("interval", "1"))
        if interval is None:
            message = f"interval takes a whole number of seconds from 1 to {MAX_INTERVAL}."
            return JsonResponse({"error": message}, status=400)
        self.interval = interval
        return await super().get(request, *args, **kwargs)

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        self.client_id = request.GET.get("client", "")
        first = _resume_after(self.last_event_id)
        drop = asyncio.Event()
        _register(self.client_id, drop)
        logger.info("client %s: streaming from id %d", self.client_id or "-", first)
        try:
            for n in itertools.count(first):
                # The id is what the browser sends back as Last-Event-ID on reconnect.
                yield Event(data={"n": n, "time": timezone.now().isoformat()}, id=str(n))
                # Wait for the next tick, or less if the page asks to drop the connection.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(drop.wait(), timeout=self.interval)
                if drop.is_set():
                    logger.info("client %s: dropped by the server after id %d", self.client_id, n)
                    return
        finally:
            # Runs however the stream ends: returned, client gone, error or shutdown.
            if _drop_signals.get(self.client_id) is drop:
                del _drop_signals[self.client_id]
            logger.info("client %s: generator cleanup ran", self.client_id or "-")

    async def on_close(self, reason: Outcome) -> None:
        """Runs once, after the generator's finally, with why the stream ended."""
        logger.info("client %s: stream closed, outcome %s", self.client_id or "-", reason)


def _interval(value: str) -> float | None:
    """The seconds between events that ?interval= asks for, or None for anything but a
    whole number from 1 to MAX_INTERVAL. The length is checked first: int() raises for
    a number of more than 4300 digits."""
    if _SECONDS.fullmatch(value) and 1 <= int(value) <= MAX_INTERVAL:
        return float(value)
    return None


def _resume_after(last_event_id: str | None) -> int:
    """The first id to send: one past the client's last, or 0 for a new or unknown client."""
    if last_event_id and last_event_id.isascii() and last_event_id.isdigit():
        return int(last_event_id) + 1
    return 0


def _register(client_id: str, drop: asyncio.Event) -> None:
    if not _CLIENT_ID.fullmatch(client_id):
        return
    if client_id not in _drop_signals and len(_drop_signals) >= MAX_DROP_SIGNALS:
        logger.warning("client %s: too many open streams to offer a drop", client_id)
        return
    # A reconnect may arrive before the server noticed the old connection is gone: the
    # newest stream wins, and the old one's cleanup leaves this entry alone.
    _drop_signals[client_id] = drop


class DropView(View):
    """POST client=<id>: end that page's stream on the server, as a deploy or a proxy would."""

    http_method_names = ["post"]

    async def post(self, request: HttpRequest) -> JsonResponse:
        drop = _drop_signals.get(request.POST.get("client", ""))
        if drop is None:
            return JsonResponse({"dropped": False}, status=404)
        drop.set()
        return JsonResponse({"dropped": True})


class FailingStream(SSEView):
    """Three events, then an exception: the client gets an "error" event, not a traceback."""

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        for n in range(3):
            yield Event(data={"n": n}, id=str(n))
            await asyncio.sleep(0.5)
        raise RuntimeError("the upstream feed went away")


def page(request: HttpRequest) -> HttpResponse:
    """A fresh client id per page load, so "Drop connection" ends only this page's stream."""
    client_id = secrets.token_urlsafe(12)
    stream_url = reverse("production:stream")
    context = {
        "keep_alive": ProductionStream.keep_alive,
        "retry": ProductionStream.retry,
        "max_duration": ProductionStream.max_duration,
        "client_id": client_id,
        "heartbeat_command": f"curl -N '{request.build_absolute_uri(stream_url)}?interval=8'",
        "stream_url": f"{stream_url}?client={client_id}",
    }
    return render(request, "demo/production.html", context)


urlpatterns = [
    path("", page, name="page"),
    path("stream/", ProductionStream.as_view(), name="stream"),
    path("drop/", DropView.as_view(), name="drop"),
    path("failing/", FailingStream.as_view(), name="failing"),
]
