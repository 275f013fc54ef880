"""Percentiles of stream durations from bucket counts, the same on every database.

The database counts, per group, the rows under each of a fixed list of bounds (filtered
COUNTs, which SQLite, PostgreSQL and MariaDB all run), and Python turns those into
counts per bucket and reads p50/p95 off them: no database needs ``percentile_cont``,
and no query returns one row per stream. The price is resolution: a percentile is
exact only to within the bucket it falls in, and it is read by linear interpolation
inside that bucket, as Prometheus' ``histogram_quantile()`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.db.models import Count, Q

__all__ = ["BOUNDS", "duration_counts", "per_bucket", "quantile"]

# Upper bounds in seconds, two or three times apart: streams last from a tenth of a second
# (a refused or instant answer) to a day (a dashboard left open). The last bucket holds
# everything from a day up and has no upper bound.
BOUNDS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400,
)  # fmt: skip


def duration_counts() -> dict[str, Count]:
    """Aggregates for a grouped query: its finished streams, and those under each bound."""
    return {
        "finished": Count("duration"),
        **{
            f"under_{index}": Count("pk", filter=Q(duration__lt=timedelta(seconds=bound)))
            for index, bound in enumerate(BOUNDS)
        },
    }


def per_bucket(row: Mapping[str, Any]) -> list[int]:
    """A row's duration_counts() as counts per bucket: bucket i holds BOUNDS[i - 1] up to
    BOUNDS[i], and the last one everything from BOUNDS[-1] up."""
    under = [row[f"under_{index}"] for index in range(len(BOUNDS))] + [row["finished"]]
    return [count - below for count, below in zip(under, [0, *under[:-1]], strict=True)]


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
