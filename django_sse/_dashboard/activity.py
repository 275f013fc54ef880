"""The last 24 hours of StreamLog, counted by the database in 10-minute buckets.

The query filters on ``started_at`` over the window, which the ``-started_at`` index
answers, and groups on the database: what comes back is bounded by the buckets times
the outcomes and models, never by the rows in the table.

Why 10 minutes: 144 bars fill a chart the width of the admin's content area at about
five pixels each, while 1,440 one-minute bars would be thinner than a pixel and ten
times the rows to send. A bucket is an hour truncated by the database plus the minute
divided by ten, both in UTC, so MariaDB needs no time zone tables and every backend
groups the same way; the charts' labels are shown in the current time zone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from django.db.models import Count, IntegerField, QuerySet, Sum, Value
from django.db.models.functions import Cast, ExtractMinute, Floor, TruncHour

from django_sse._dashboard.durations import BOUNDS, duration_counts, per_bucket, quantile
from django_sse.models import StreamLog

__all__ = ["Activity", "ModelTotal", "Window", "activity"]

BUCKET_MINUTES = 10
BUCKET = timedelta(minutes=BUCKET_MINUTES)
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


@dataclass(frozen=True)
class Activity:
    """Per bucket of a Window: streams started by outcome, p50/p95 durations, tokens."""

    window: Window
    # Most streams first: the stacking order, from the axis up.
    started: dict[str, list[int]]
    p50: list[float | None]
    p95: list[float | None]
    # Prompt plus completion tokens per bucket, by model (the top ones, then the rest).
    tokens: dict[str, list[int]]
    # Over the whole window, most tokens first.
    token_totals: list[ModelTotal]


def activity(now: datetime) -> Activity:
    """The window ending at ``now``, from one grouped query: one read of the window's rows.

    Grouped by bucket, outcome and model, each group counts its streams, its finished
    streams under each duration bound, and its tokens; the three charts are sums of
    those groups. Three queries of one aggregate each would read the rows three times,
    which is what costs when a day holds a million streams.
    """
    window = Window.ending_at(now)
    started: dict[str, list[int]] = {}
    histograms = [[0] * (len(BOUNDS) + 1) for _ in range(window.buckets)]
    tokens: dict[str, list[int]] = defaultdict(lambda: [0] * window.buckets)
    totals: dict[str, ModelTotal] = {}
    for row in _groups(window):
        index = window.index(row["bucket_hour"], row["bucket_slot"])
        if index is None:
            continue
        started.setdefault(row["outcome"], [0] * window.buckets)[index] += row["streams"]
        for bucket, count in enumerate(per_bucket(row)):
            histograms[index][bucket] += count
        if row["model"]:
            prompt, completion = row["prompt"] or 0, row["completion"] or 0
            tokens[row["model"]][index] += prompt + completion
            total = totals.get(row["model"], ModelTotal(row["model"]))
            totals[row["model"]] = ModelTotal(
                total.model,
                total.prompt + prompt,
                total.completion + completion,
                total.streams + row["streams"],
            )
    ranked = sorted(totals.values(), key=lambda t: (-(t.prompt + t.completion), t.model))
    return Activity(
        window,
        started=dict(sorted(started.items(), key=lambda item: (-sum(item[1]), item[0]))),
        p50=[quantile(counts, 0.5) for counts in histograms],
        p95=[quantile(counts, 0.95) for counts in histograms],
        tokens=_top_models(tokens, ranked),
        token_totals=ranked,
    )


def _groups(window: Window) -> QuerySet[StreamLog, dict[str, Any]]:
    in_window = StreamLog.objects.filter(started_at__gte=window.start, started_at__lt=window.end)
    # The minute as an integer before dividing it: PostgreSQL's EXTRACT gives a numeric,
    # and numeric arithmetic on every row of a busy day is what this query would spend.
    minute = Cast(ExtractMinute("started_at", tzinfo=timezone.utc), IntegerField())
    groups: QuerySet[StreamLog, dict[str, Any]] = (
        in_window.annotate(
            bucket_hour=TruncHour("started_at", tzinfo=timezone.utc),
            bucket_slot=Floor(minute / Value(BUCKET_MINUTES)),
        )
        .order_by()
        .values("bucket_hour", "bucket_slot", "outcome", "model")
        .annotate(
            streams=Count("pk"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            **duration_counts(),
        )
    )
    return groups


def _top_models(tokens: dict[str, list[int]], ranked: list[ModelTotal]) -> dict[str, list[int]]:
    charted = {total.model: tokens[total.model] for total in ranked[:TOP_MODELS]}
    if len(ranked) > TOP_MODELS:
        rest = [tokens[total.model] for total in ranked[TOP_MODELS:]]
        charted[OTHER_MODELS] = [sum(column) for column in zip(*rest, strict=True)]
    return charted
