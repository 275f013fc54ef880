"""Prometheus metrics of streams, broadcast and language models, with prometheus-client.

Nothing is counted per event. A stream already counts its events and bytes in its
StreamStats; the metrics take what is new from there when Prometheus asks (a collector
registered ahead of ours flushes every open stream first), when the stream closes, and,
in prometheus-client's multiprocess mode, where another worker may answer the scrape,
every METRICS_FLUSH_INTERVAL seconds from a thread. What happens once per stream, per
published event or per answer is counted as it happens: one uncontended lock, next to
the database write or the network round trip that comes with it.

A leaf of the package: the response, broadcast and llm call in; it imports only the
settings and the value types.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from django_sse import conf
from django_sse.stats import Outcome, StreamStats

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

logger = logging.getLogger("django_sse")

__all__ = [
    "StreamMeter",
    "answer_started",
    "answer_used",
    "count_finished",
    "enabled",
    "event_delivered",
    "event_published",
    "flush",
    "forget_dead_processes",
    "meter",
    "multiprocess",
]

# The label of a stream whose response was given no name (an SSEResponse built by
# hand, or sse_response() without its request).
UNNAMED = "unnamed"
# From a blink to a day: most streams either end at once (a refused resume, a short
# answer) or are held open for minutes to hours by a page.
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
# Publish to write: a millisecond on one machine, seconds when a layer drops an event
# and the history poll brings it.
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


def multiprocess() -> bool:
    """Whether prometheus-client keeps its values in files shared by worker processes."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class _Families:
    """The metric families, created once per process in the default registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        registry.register(_FlushFirst())
        self.streams_open = Gauge(
            "django_sse_streams_open",
            "Streams open now, by view.",
            ["view"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.streams = Counter(
            "django_sse_streams",
            "Streams ended, by view and outcome.",
            ["view", "outcome"],
            registry=registry,
        )
        self.events = Counter(
            "django_sse_events_sent", "Events sent, by view.", ["view"], registry=registry
        )
        self.bytes = Counter(
            "django_sse_bytes_sent",
            "Bytes of event stream sent, by view.",
            ["view"],
            registry=registry,
        )
        self.duration = Histogram(
            "django_sse_stream_duration_seconds",
            "How long streams stayed open, by view.",
            ["view"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.published = Counter(
            "django_sse_broadcast_published",
            "Events published to broadcast channels.",
            registry=registry,
        )
        self.delivery = Histogram(
            "django_sse_broadcast_delivery_seconds",
            "From publish() to the event written to this process's subscribers of its channel.",
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "django_sse_llm_tokens",
            "Tokens of language model answers, by model and kind (prompt or completion).",
            ["model", "kind"],
            registry=registry,
        )
        self.first_token = Histogram(
            "django_sse_llm_time_to_first_token_seconds",
            "From asking the model to its answer's first token, by model.",
            ["model"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=registry,
        )


class _FlushFirst:
    """Registered ahead of the families, so a scrape of the registry, ours or
    django-prometheus', reads open streams' counts as of now."""

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        flush()
        return []


_families: _Families | None = None
_creating = threading.Lock()


def enabled() -> bool:
    return _get() is not None


def _get() -> _Families | None:
    """The families, or None while metrics are off (METRICS, or no prometheus-client)."""
    setting = conf.get("METRICS")
    if setting is False:
        return None
    if _families is not None:
        return _families
    return _create(required=setting is True)


def _create(required: bool) -> _Families | None:
    global _families
    try:
        from prometheus_client import REGISTRY
    except ImportError:
        if required:
            raise ImproperlyConfigured(
                "DJANGO_SSE['METRICS'] is True but prometheus-client is not installed: "
                "pip install 'django-sse-kit[metrics]'"
            ) from None
        return None
    with _creating:
        if _families is None:
            _families = _Families(REGISTRY)
    return _families


class StreamMeter:
    """One open stream's share of the metrics: what it has sent that is not yet counted."""

    __slots__ = ("_bytes", "_events", "_families", "_stats", "view")

    def __init__(self, families: _Families, view: str, stats: StreamStats) -> None:
        self._families = families
        self.view = view
        self._stats = stats
        self._events = 0
        self._bytes = 0

    def take(self) -> tuple[int, int]:
        """Events and bytes sent since the last take. Only ever called under _lock."""
        events, sent = self._stats.events, self._stats.bytes
        taken = (events - self._events, sent - self._bytes)
        self._events, self._bytes = events, sent
        return taken

    def closed(self) -> None:
        """Count the stream's end; its stats are final by now."""
        families, stats = self._families, self._stats
        with _lock:
            _open.pop(self, None)
            _count_sent(families, {self.view: self.take()})
        families.streams_open.labels(self.view).dec()
        outcome = str(stats.outcome or Outcome.ERROR)
        families.streams.labels(self.view, outcome).inc()
        ended_at = stats.ended_at or time.time()
        families.duration.labels(self.view).observe(max(ended_at - stats.started_at, 0.0))


# The open streams of this process, and the lock that keeps two flushes (a scrape's,
# the flush thread's, a stream's close) from taking the same counts twice.
_open: dict[StreamMeter, None] = {}
_lock = threading.Lock()


def meter(view: str | None, stats: StreamStats) -> StreamMeter | None:
    """Count a stream that opens now; None while metrics are off."""
    families = _get()
    if families is None:
        return None
    stream = StreamMeter(families, view or UNNAMED, stats)
    families.streams_open.labels(stream.view).inc()
    with _lock:
        _open[stream] = None
    if multiprocess():
        _flusher.start()
    return stream


def count_finished(view: str | None, stats: StreamStats) -> None:
    """Count a stream that was answered whole at once (one Pushpin holds from here)."""
    stream = meter(view, stats)
    if stream is not None:
        stream.closed()


def flush() -> None:
    """Count what every open stream of this process has sent since the last flush; in
    multiprocess mode, first let go of the live gauges of processes that have died."""
    if multiprocess():
        forget_dead_processes()
    if _families is None:
        return
    with _lock:
        sent: dict[str, tuple[int, int]] = {}
        for stream in _open:
            events, sent_bytes = stream.take()
            before = sent.get(stream.view, (0, 0))
            sent[stream.view] = (before[0] + events, before[1] + sent_bytes)
        _count_sent(_families, sent)


def forget_dead_processes() -> None:
    """Remove the live gauges' files (``django_sse_streams_open``) of processes that no
    longer run from the multiprocess directory, as prometheus-client's
    ``mark_process_dead`` does.

    gunicorn can call that from ``child_exit``; uvicorn --workers, hypercorn and granian
    have no such hook, and a worker killed hard (the OOM killer) would leave its open
    streams counted for as long as the directory lives. The directory holds the files of
    one host's processes (their pids name them), so a pid that no process has is dead.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        # gauge_livesum_<pid>.db, and the other live modes'.
        pid = name[: -len(".db")].rpartition("_")[2]
        if not (name.startswith("gauge_live") and name.endswith(".db") and pid.isdigit()):
            continue
        if int(pid) != os.getpid() and not _running(int(pid)):
            # Another process may be removing it too.
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Someone else's process: alive.
        pass
    return True


def _count_sent(families: _Families, sent: dict[str, tuple[int, int]]) -> None:
    for view, (events, sent_bytes) in sent.items():
        if events:
            families.events.labels(view).inc(events)
        if sent_bytes:
            families.bytes.labels(view).inc(sent_bytes)


def event_published() -> None:
    families = _get()
    if families is not None:
        families.published.inc()


def event_delivered(published_at: float) -> None:
    """An event published at ``published_at`` (time.time()) has reached this process's
    subscribers: written to the idle ones, queued for the busy ones."""
    families = _get()
    if families is not None:
        families.delivery.observe(max(time.time() - published_at, 0.0))


def answer_started(model: str, seconds: float) -> None:
    """A model's answer brought its first token ``seconds`` after it was asked for."""
    families = _get()
    if families is not None:
        families.first_token.labels(model).observe(seconds)


def answer_used(model: str, prompt_tokens: int, completion_tokens: int) -> None:
    families = _get()
    if families is not None:
        families.tokens.labels(model, "prompt").inc(prompt_tokens)
        families.tokens.labels(model, "completion").inc(completion_tokens)


class _Flusher:
    """In multiprocess mode, flushes this process's open streams to its files now and
    then: the scrape may go to another worker, which cannot reach into this one."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def start(self) -> None:
        if self._thread is not None:
            return
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="django_sse metrics", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(float(conf.get("METRICS_FLUSH_INTERVAL")))
            try:
                flush()
            except Exception:
                # The thread must go on: it is the only one that flushes for scrapes
                # that other workers answer.
                logger.exception("Flushing the stream metrics failed")

    def forget(self) -> None:
        """In a forked child: the parent's thread is not there."""
        global _lock
        self._thread = None
        self._starting = threading.Lock()
        _lock = threading.Lock()
        _open.clear()


_flusher = _Flusher()
os.register_at_fork(after_in_child=_flusher.forget)
