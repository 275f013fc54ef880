"""Exercise: a progress bar for a long-running task, with its solution.

Submitting the form starts a simulated job on a POST stream. Every finished step sends a
``progress`` event with the percentage and an ETA that the server estimates from the
time taken so far; a final ``done`` event makes the page close the stream.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from django_sse import Event, SSEView

app_name = "progress"

# The simulated job: (stage, steps, average seconds per step). The stages go at
# different paces, as real ones do, so the estimate has to correct itself as it goes.
STAGES = (
    ("Downloading the photos", 20, 0.05),
    ("Resizing the photos", 25, 0.16),
    ("Writing the archive", 10, 0.3),
)


class JobStream(SSEView):
    """Runs the job inside the stream and reports each step; about 8 seconds in all."""

    # POST: submitting starts a job, and a broken POST stream is never re-sent on its
    # own, so a network blip cannot start the job twice.
    http_method_names = ["post"]

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        total = sum(steps for _, steps, _ in STAGES)
        started = time.monotonic()
        done = 0
        yield _progress(STAGES[0][0], done, total, elapsed=0.0)
        for stage, steps, seconds in STAGES:
            for _ in range(steps):
                await asyncio.sleep(seconds * random.uniform(0.5, 1.5))  # the "work"
                done += 1
                yield _progress(stage, done, total, time.monotonic() - started)
        elapsed = round(time.monotonic() - started, 1)
        yield Event(event="done", data={"steps": total, "elapsed": elapsed})


def _progress(stage: str, done: int, total: int, elapsed: float) -> Event:
    fraction = done / total
    # What is left, if it goes at the average pace so far; None before the first step.
    eta = elapsed * (1 - fraction) / fraction if done else None
    return Event(
        event="progress",
        data={
            "stage": stage,
            "done": done,
            "total": total,
            "percent": done * 100 // total,
            "eta_seconds": None if eta is None else round(eta, 1),
            "eta": "estimating" if eta is None else f"about {math.ceil(eta)} s left",
        },
    )


def page(request: HttpRequest) -> HttpResponse:
    """The page shows the view's real source, so what you read is exactly what runs."""
    source = "\n\n".join(inspect.getsource(code) for code in (JobStream, _progress))
    return render(request, "demo/progress.html", {"source": source})


urlpatterns = [
    path("", page, name="page"),
    path("stream/", JobStream.as_view(), name="stream"),
]
