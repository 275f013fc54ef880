"""django_sse._metrics in-process: each stream, publish and answer counted as it happened."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, override_settings
from prometheus_client import REGISTRY

from django_sse import _metrics
from django_sse.stats import Outcome, StreamStats
from tests.prometheus import value
from tests.sse import collect

pytestmark = pytest.mark.django_db

COUNTER = {"view": "counter"}


class Before:
    """The samples as a test began, so that it checks only what it caused."""

    def __init__(self, *names: str, **labels: str) -> None:
        self._labels = labels
        self._start = {name: value(name, **labels) for name in names}

    def change(self, name: str) -> float:
        return value(name, **self._labels) - self._start[name]


async def test_a_completed_stream_counts_its_events_bytes_outcome_and_duration() -> None:
    names = [
        "django_sse_events_sent_total",
        "django_sse_bytes_sent_total",
        "django_sse_stream_duration_seconds_count",
        "django_sse_streams_open",
    ]
    before = Before(*names, **COUNTER)
    completed = Before("django_sse_streams_total", view="counter", outcome="completed")
    response = await AsyncClient().get("/counter/", {"n": "4"})
    raw, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert len(events) == 4
    assert before.change("django_sse_events_sent_total") == 4
    assert before.change("django_sse_bytes_sent_total") == len(raw)
    assert before.change("django_sse_stream_duration_seconds_count") == 1
    assert before.change("django_sse_streams_open") == 0
    assert completed.change("django_sse_streams_total") == 1


async def test_an_open_stream_is_counted_while_it_is_open() -> None:
    labels = {"view": "tests.views.GateView"}
    before = Before("django_sse_streams_open", "django_sse_events_sent_total", **labels)
    response = await AsyncClient().get("/gate/", {"probe": uuid.uuid4().hex})
    # The engine itself: closing it is what Django's ASGI handler does when the client
    # leaves (the test client's wrapper would not pass the close on).
    chunks = response._engine  # type: ignore[attr-defined]
    assert await anext(chunks) == b":\n"
    assert b"first" in await anext(chunks)
    # Collecting the registry flushes the open stream's counts: no need for it to end.
    assert before.change("django_sse_streams_open") == 1
    assert before.change("django_sse_events_sent_total") == 1
    await chunks.aclose()
    assert before.change("django_sse_streams_open") == 0
    assert value("django_sse_streams_total", outcome="client_disconnected", **labels) >= 1


async def test_a_stream_of_a_function_view_is_named_by_its_route() -> None:
    labels = {"view": "tests.views.function_stream"}
    before = Before("django_sse_events_sent_total", **labels)
    response = await AsyncClient().get("/function/")
    await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert before.change("django_sse_events_sent_total") == 3


def test_flushing_twice_counts_nothing_twice() -> None:
    stats = StreamStats(events=5, bytes=50)
    before = Before("django_sse_events_sent_total", "django_sse_bytes_sent_total", view="twice")
    meter = _metrics.meter("twice", stats)
    assert meter is not None
    _metrics.flush()
    _metrics.flush()
    stats.events, stats.bytes = 7, 90
    _metrics.flush()
    stats.outcome = Outcome.COMPLETED
    meter.closed()
    _metrics.flush()
    assert before.change("django_sse_events_sent_total") == 7
    assert before.change("django_sse_bytes_sent_total") == 90


def test_a_stream_without_a_name_is_unnamed() -> None:
    before = Before("django_sse_streams_total", view=_metrics.UNNAMED, outcome="error")
    meter = _metrics.meter(None, StreamStats())
    assert meter is not None
    meter.closed()  # no outcome recorded: counted as an error, never lost
    assert before.change("django_sse_streams_total") == 1


@pytest.fixture
def metrics_off() -> Iterator[None]:
    # LOG_STREAMS stays off, as the suite has it: rows written from a worker thread would
    # outlive this test's transaction.
    with override_settings(DJANGO_SSE={"METRICS": False, "LOG_STREAMS": False}):
        yield


@pytest.mark.usefixtures("metrics_off")
async def test_nothing_is_counted_while_metrics_are_off() -> None:
    before = Before("django_sse_events_sent_total", "django_sse_streams_open", **COUNTER)
    assert _metrics.meter("counter", StreamStats()) is None
    response = await AsyncClient().get("/counter/")
    await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert before.change("django_sse_events_sent_total") == 0


def test_metrics_required_without_prometheus_client_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_metrics, "_families", None)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    required = override_settings(DJANGO_SSE={"METRICS": True})
    with required, pytest.raises(ImproperlyConfigured, match=r"django-sse-kit\[metrics\]"):
        _metrics.meter("x", StreamStats())
    with override_settings(DJANGO_SSE={"METRICS": None}):
        assert _metrics.meter("x", StreamStats()) is None


def test_the_families_are_registered_once() -> None:
    assert _metrics.enabled()
    families = _metrics._families
    assert _metrics._create(required=True) is families
    names = [name for name in REGISTRY._names_to_collectors if name.startswith("django_sse_")]
    assert len(names) == len(set(names))
    assert "django_sse_streams_open" in names


@pytest.mark.parametrize(
    ("path", "view", "outcome"),
    [
        ("/error/", "tests.views.ErrorView", "error"),
        ("/timeout/", "tests.views.TimeoutView", "timeout"),
    ],
)
async def test_every_ending_is_counted_and_leaves_nothing_open(
    path: str, view: str, outcome: str
) -> None:
    before = Before("django_sse_streams_total", view=view, outcome=outcome)
    opened = Before("django_sse_streams_open", view=view)
    response = await AsyncClient().get(path)
    await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert before.change("django_sse_streams_total") == 1
    assert opened.change("django_sse_streams_open") == 0


async def test_clients_leaving_at_every_step_leave_nothing_open() -> None:
    """Left before the first event, right after it, and after the second: twenty times
    each, the open gauge comes back to where it was and every stream is counted."""
    labels = {"view": "tests.views.GateView"}
    opened = Before("django_sse_streams_open", **labels)
    ended = Before("django_sse_streams_total", outcome="client_disconnected", **labels)
    for reads in [0, 1, 2] * 20:
        response = await AsyncClient().get("/gate/", {"probe": uuid.uuid4().hex})
        chunks = response._engine  # type: ignore[attr-defined]
        for _ in range(reads):
            await anext(chunks)
        await chunks.aclose()
    assert opened.change("django_sse_streams_open") == 0
    # A stream closed before it was first read never started: nothing to count.
    assert ended.change("django_sse_streams_total") == 40


def test_a_scrape_forgets_the_open_streams_of_processes_that_died(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live gauges' files of a dead process go, as mark_process_dead would remove
    them; a live process's files and every process's counters stay."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    dead, alive = process.pid, os.getppid()
    names = [
        f"gauge_livesum_{dead}.db",
        f"gauge_liveall_{dead}.db",
        f"counter_{dead}.db",
        f"gauge_livesum_{alive}.db",
        f"gauge_livesum_{os.getpid()}.db",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    _metrics.flush()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(names[2:])
