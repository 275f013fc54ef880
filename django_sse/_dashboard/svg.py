"""Charts drawn as SVG in Python: no JavaScript library, no CDN, no build step.

The markup carries classes, not colours: the dashboard's stylesheet fills them from the
admin's CSS variables, so the charts follow its light and dark themes. Every text that
comes from data (outcomes, model names) is escaped. Each bar and point has a ``<title>``,
which browsers show on hover, so exact numbers are a pointer away.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

__all__ = ["Series", "format_count", "format_seconds", "line_chart", "stacked_bar_chart"]

WIDTH, HEIGHT = 720, 180
LEFT, RIGHT, TOP, BOTTOM = 58, 6, 8, 22
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
# Hours between labels on the time axis.
LABEL_EVERY = 3
# Gridlines of a duration axis, where a reader expects them.
DURATION_TICKS = (0.01, 0.1, 1, 10, 60, 600, 3600, 86400)


@dataclass(frozen=True)
class Series:
    """One stack of bars or one line: a label, the class that colours it, a value per bucket."""

    label: str
    css_class: str
    values: Sequence[float | None]


def stacked_bar_chart(
    title: str, starts: Sequence[datetime], width: timedelta, series: Sequence[Series]
) -> SafeString:
    """Bars per bucket, the series stacked in the order given; a message when all are 0."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(starts))]
    if not any(totals):
        return _empty(title, starts)
    step = _nice_step(max(totals))
    top = math.ceil(max(totals) / step) * step
    parts = [_time_axis(starts)]
    for tick in range(0, int(top) + 1, int(step)):
        parts.append(_gridline(_y(tick / top), format_count(tick)))
    slot = PLOT_WIDTH / len(starts)
    for index, start in enumerate(starts):
        base = 0.0
        for s in series:
            value = s.values[index] or 0
            if not value:
                continue
            y0, y1 = _y(base / top), _y((base + value) / top)
            base += value
            parts.append(
                f'<rect class="sse-bar {escape(s.css_class)}" x="{LEFT + index * slot + 0.5:.2f}" '
                f'y="{y1:.2f}" width="{max(slot - 1, 1):.2f}" height="{y0 - y1:.2f}">'
                f"<title>{_span(start, width)} · {escape(s.label)}: {format_count(value)}</title>"
                "</rect>"
            )
    return _svg(title, parts)


def line_chart(
    title: str, starts: Sequence[datetime], width: timedelta, series: Sequence[Series]
) -> SafeString:
    """Durations on a logarithmic axis, one line per series, broken where a bucket is empty."""
    values = [v for s in series for v in s.values if v is not None]
    if not values:
        return _empty(title, starts)
    low, high = _duration_range(min(values), max(values))

    def y(seconds: float) -> float:
        return _y(math.log(max(seconds, low) / low) / math.log(high / low))

    parts = [_time_axis(starts)]
    parts += [_gridline(y(t), format_seconds(t)) for t in DURATION_TICKS if low <= t <= high]
    slot = PLOT_WIDTH / len(starts)
    for s in series:
        runs: list[list[str]] = [[]]
        for index, value in enumerate(s.values):
            if value is None:
                runs.append([])
                continue
            x, point_y = LEFT + (index + 0.5) * slot, y(value)
            runs[-1].append(f"{x:.2f},{point_y:.2f}")
            parts.append(
                f'<circle class="sse-point {escape(s.css_class)}" cx="{x:.2f}" cy="{point_y:.2f}" '
                f'r="2"><title>{_span(starts[index], width)} · {escape(s.label)}: '
                f"{format_seconds(value)}</title></circle>"
            )
        parts += [
            f'<path class="sse-line {escape(s.css_class)}" d="M{" L".join(run)}"/>'
            for run in runs
            if len(run) > 1
        ]
    return _svg(title, parts)


def format_count(value: float) -> str:
    """12, 3.4k, 5.6M: short enough for an axis label."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}" if value != int(value) else str(int(value))


def format_seconds(seconds: float) -> str:
    """10 ms, 2.5 s, 3 min, 1.5 h, 1 d."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1000:.3g} ms"


def _nice_step(maximum: float) -> int:
    """A gridline step of 1, 2 or 5 times a power of ten, giving at most four lines."""
    for power in itertools.count():
        for multiple in (1, 2, 5):
            step: int = multiple * 10**power
            if maximum / step <= 4:
                return step
    raise AssertionError("unreachable: itertools.count() never ends")


def _duration_range(smallest: float, largest: float) -> tuple[float, float]:
    """The axis' ends: the ticks around the values, a decade apart at least."""
    low = max((t for t in DURATION_TICKS if t <= smallest), default=DURATION_TICKS[0])
    high = min((t for t in DURATION_TICKS if t >= largest), default=largest)
    return low, max(high, low * 10)


def _y(fraction: float) -> float:
    return TOP + PLOT_HEIGHT * (1 - fraction)


def _gridline(y: float, label: str) -> str:
    return (
        f'<line class="sse-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.2f}" y2="{y:.2f}"/>'
        f'<text class="sse-tick" x="{LEFT - 6}" y="{y + 4:.2f}" text-anchor="end">'
        f"{escape(label)}</text>"
    )


def _time_axis(starts: Sequence[datetime]) -> str:
    """The baseline, with the local time every LABEL_EVERY hours.

    Buckets are cut in UTC, so in a zone whose offset is not a multiple of 10 minutes
    (Nepal's +5:45, Chatham's +12:45) no bucket starts on a local hour: each label is
    placed where its hour falls inside its bucket, not only at a bucket's start.
    """
    slot = PLOT_WIDTH / len(starts)
    width = (starts[1] - starts[0]) if len(starts) > 1 else timedelta(minutes=10)
    labels = []
    for index, start in enumerate(starts):
        local = timezone.localtime(start)
        # From the bucket's start to the next local hour (offsets in use today are
        # whole minutes); 0 when the bucket starts on one.
        to_hour = timedelta(minutes=-local.minute % 60)
        mark = timezone.localtime(start + to_hour)
        if to_hour < width and mark.minute == 0 and mark.hour % LABEL_EVERY == 0:
            x = LEFT + (index + to_hour / width) * slot
            labels.append(
                f'<line class="sse-grid" x1="{x:.2f}" x2="{x:.2f}" y1="{TOP + PLOT_HEIGHT}" '
                f'y2="{TOP + PLOT_HEIGHT + 4}"/>'
                f'<text class="sse-tick" x="{x:.2f}" y="{HEIGHT - 6}" text-anchor="middle">'
                f"{mark:%H:%M}</text>"
            )
    baseline = (
        f'<line class="sse-axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
        f'y1="{TOP + PLOT_HEIGHT}" y2="{TOP + PLOT_HEIGHT}"/>'
    )
    return baseline + "".join(labels)


def _span(start: datetime, width: timedelta) -> str:
    return f"{timezone.localtime(start):%H:%M}\u2013{timezone.localtime(start + width):%H:%M}"


def _empty(title: str, starts: Sequence[datetime]) -> SafeString:
    message = (
        f'<text class="sse-empty" x="{LEFT + PLOT_WIDTH / 2:.2f}" y="{TOP + PLOT_HEIGHT / 2:.2f}" '
        f'text-anchor="middle">No data in these 24 hours</text>'
    )
    return _svg(title, [_time_axis(starts), message])


def _svg(title: str, parts: Sequence[str]) -> SafeString:
    # Safe: every value above went through escape() or a number format.
    return mark_safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sse-chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        + "".join(parts)
        + "</svg>"
    )
