"""The last 24 hours of StreamLog, counted by the database in 10-minute buckets.

Every query filters on ``started_at`` over the window, which the ``-started_at`` index
answers, and groups on the database: what comes back is bounded by the buckets times
the outcomes (or duration buckets, or models), never by the rows in the table.

Why 10 minutes: 144 bars fill a chart the width of the admin's content area at about
five pixels each, while 1,440 one-minute bars would be thinner than a pixel and ten
times the rows to send. A bucket is an hour truncated by the database plus the minute
divided by ten, both in UTC, so MariaDB needs no time zone tables and every backend
groups the same way; the charts' labels are shown in the current time zone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from django.db.models import Count, QuerySet, Sum, Value
from django.db.models.functions import ExtractMinute, Floor, TruncHour

from django_sse._dashboard.durations import BOUNDS, bucket_expression, quantile
from django_sse.models import StreamLog

__all__ = ["Activity", "ModelTotal", "Window", "activity"]

BUCKET = timedelta(minutes=10)
BUCKETS = 144  # 24 hours
# Models charted by name; the rest are added up as one.
TOP_MODELS = 6
OTHER_MODELS = "other models"


@dataclass(frozen=True)
class Window:
    """Consecutive buckets of BUCKET, the last one holding ``now``."""

    start: datetime
    buckets: int = BUCKETS

    @classmethod
    def ending_at(cls, now: datetime) -> Window:
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        current = epoch + (now - epoch) // BUCKET * BUCKET
        return cls(current - (BUCKETS - 1) * BUCKET)

    @property
    def end(self) -> datetime:
        return self.start + self.buckets * BUCKET

    def starts(self) -> list[datetime]:
        return [self.start + index * BUCKET for index in range(self.buckets)]

    def index(self, hour: datetime, slot: Any) -> int | None:
        """The bucket of a row the database put at ``hour`` and 10-minute ``slot``."""
        position = (hour + int(slot) * BUCKET - self.start) // BUCKET
        return position if 0 <= position < self.buckets else None


@dataclass(frozen=True)
class ModelTotal:
    """One model's tokens and streams over the window."""

    model: str
    prompt: int = 0
    completion: int = 0
    streams: int = 0


@dataclass
class Activity:
    """Per bucket of a Window: streams started by outcome, p50/p95 durations, tokens."""

    window: Window
    started: dict[str, list[int]] = field(default_factory=dict)
    p50: list[float | None] = field(default_factory=list)
    p95: list[float | None] = field(default_factory=list)
    # Prompt plus completion tokens per bucket, by model.
    tokens: dict[str, list[int]] = field(default_factory=dict)
    # Over the whole window, most tokens first.
    token_totals: list[ModelTotal] = field(default_factory=list)


def activity(now: datetime) -> Activity:
    """The window ending at ``now``, in three grouped queries."""
    window = Window.ending_at(now)
    result = Activity(window)
    result.started = _started_by_outcome(window)
    result.p50, result.p95 = _duration_percentiles(window)
    result.tokens, result.token_totals = _tokens_by_model(window)
    return result


def _in_window(window: Window) -> QuerySet[StreamLog]:
    rows: QuerySet[StreamLog] = (
        StreamLog.objects.filter(started_at__gte=window.start, started_at__lt=window.end)
        .annotate(
            bucket_hour=TruncHour("started_at", tzinfo=timezone.utc),
            bucket_slot=Floor(ExtractMinute("started_at", tzinfo=timezone.utc) / Value(10)),
        )
        .order_by()
    )
    return rows


def _per_bucket(
    window: Window, rows: QuerySet[StreamLog], *fields: str, **aggregates: Any
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The aggregates of ``rows`` grouped by bucket and ``fields``, with their bucket."""
    grouped = rows.values("bucket_hour", "bucket_slot", *fields).annotate(**aggregates)
    for row in grouped:
        index = window.index(row["bucket_hour"], row["bucket_slot"])
        if index is not None:
            yield index, row


def _started_by_outcome(window: Window) -> dict[str, list[int]]:
    started: dict[str, list[int]] = {}
    for index, row in _per_bucket(window, _in_window(window), "outcome", n=Count("pk")):
        started.setdefault(row["outcome"], [0] * window.buckets)[index] += row["n"]
    return dict(sorted(started.items(), key=lambda item: (-sum(item[1]), item[0])))


def _duration_percentiles(window: Window) -> tuple[list[float | None], list[float | None]]:
    counts = [[0] * (len(BOUNDS) + 1) for _ in range(window.buckets)]
    finished = (
        _in_window(window)
        .filter(duration__isnull=False)
        .annotate(duration_bucket=bucket_expression())
    )
    for index, row in _per_bucket(window, finished, "duration_bucket", n=Count("pk")):
        counts[index][row["duration_bucket"]] += row["n"]
    return [quantile(c, 0.5) for c in counts], [quantile(c, 0.95) for c in counts]


def _tokens_by_model(window: Window) -> tuple[dict[str, list[int]], list[ModelTotal]]:
    per_model: dict[str, list[int]] = defaultdict(lambda: [0] * window.buckets)
    totals: dict[str, ModelTotal] = {}
    relayed = _in_window(window).exclude(model="")
    aggregates = {
        "prompt": Sum("prompt_tokens"),
        "completion": Sum("completion_tokens"),
        "streams": Count("pk"),
    }
    for index, row in _per_bucket(window, relayed, "model", **aggregates):
        prompt, completion = row["prompt"] or 0, row["completion"] or 0
        per_model[row["model"]][index] += prompt + completion
        total = totals.get(row["model"], ModelTotal(row["model"]))
        totals[row["model"]] = ModelTotal(
            total.model,
            total.prompt + prompt,
            total.completion + completion,
            total.streams + row["streams"],
        )
    ranked = sorted(totals.values(), key=lambda t: (-(t.prompt + t.completion), t.model))
    charted = {total.model: per_model[total.model] for total in ranked[:TOP_MODELS]}
    if len(ranked) > TOP_MODELS:
        rest = [per_model[total.model] for total in ranked[TOP_MODELS:]]
        charted[OTHER_MODELS] = [sum(column) for column in zip(*rest, strict=True)]
    return charted, ranked
