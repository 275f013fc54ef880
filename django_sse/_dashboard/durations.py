"""Percentiles of stream durations from bucket counts, the same on every database.

The database counts rows per duration bucket (a CASE over fixed bounds, which SQLite,
PostgreSQL and MariaDB all run the same way) and Python reads p50/p95 off those counts,
so no database needs ``percentile_cont`` and no query returns one row per stream. The
price is resolution: a percentile is exact only to within the bucket it falls in, and
it is read by linear interpolation inside that bucket, as Prometheus'
``histogram_quantile()`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.db.models import Case, IntegerField, Value, When

__all__ = ["BOUNDS", "bucket_expression", "quantile"]

# Upper bounds in seconds, two or three times apart: streams last from a tenth of a second
# (a refused or instant answer) to a day (a dashboard left open). The last bucket holds
# everything from a day up and has no upper bound.
BOUNDS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400,
)  # fmt: skip


def bucket_expression() -> Case:
    """The index into BOUNDS of a row's duration bucket (len(BOUNDS) for the open one)."""
    return Case(
        *(
            When(duration__lt=timedelta(seconds=bound), then=Value(index))
            for index, bound in enumerate(BOUNDS)
        ),
        default=Value(len(BOUNDS)),
        output_field=IntegerField(),
    )


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q < 1) in seconds of the durations counted per bucket.

    ``counts[i]`` is the number of durations in bucket i: from BOUNDS[i - 1] (0 for the
    first) up to BOUNDS[i]. None when nothing was counted. A quantile in the last,
    unbounded bucket is given as that bucket's lower bound.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    below = 0
    for index, count in enumerate(counts):
        if count and below + count >= rank:
            lower = BOUNDS[index - 1] if index else 0.0
            if index == len(BOUNDS):
                return lower
            return lower + (BOUNDS[index] - lower) * (rank - below) / count
        below += count
    raise AssertionError("unreachable: the ranks add up to the total")
