"""The dashboard's two panels as HTML: the page renders them, and its stream sends them again
when they change, so the page and the live updates can never disagree on the markup.

Both are Django templates (autoescaped), and the charts' SVG escapes what it draws, so
the stream's HTML events carry no unescaped data; sse.js inserts them with ``swap="html"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from django_sse._dashboard.activity import BUCKET, OTHER_MODELS, Activity
from django_sse._dashboard.open_streams import OpenStreams
from django_sse._dashboard.svg import Series, format_count, line_chart, stacked_bar_chart
from django_sse.models import OUTCOME_CHOICES

__all__ = ["CHARTS_TEMPLATE", "OPEN_TEMPLATE", "render_charts", "render_open"]

OPEN_TEMPLATE = "admin/django_sse/streamlog/dashboard_open.html"
CHARTS_TEMPLATE = "admin/django_sse/streamlog/dashboard_charts.html"
OUTCOME_LABELS = {value: str(label) for value, label in OUTCOME_CHOICES}
# Colours for series without a meaning of their own (models), in dashboard.css.
PALETTE_SIZE = 6


@dataclass(frozen=True)
class LegendEntry:
    label: str
    css_class: str
    total: str


@dataclass(frozen=True)
class Chart:
    title: str
    svg: SafeString
    legend: list[LegendEntry]


def render_open(snapshot: OpenStreams) -> str:
    return render_to_string(OPEN_TEMPLATE, {"open": snapshot})


def render_charts(activity: Activity) -> str:
    return render_to_string(CHARTS_TEMPLATE, charts_context(activity))


def charts_context(activity: Activity) -> dict[str, Any]:
    starts = activity.window.starts()
    outcomes = [
        Series(OUTCOME_LABELS.get(outcome, outcome), outcome_class(outcome), counts)
        for outcome, counts in activity.started.items()
    ]
    durations = [
        Series(_("p50"), "sse-p50", activity.p50),
        Series(_("p95"), "sse-p95", activity.p95),
    ]
    models = [
        Series(model, model_class(index, model), tokens)
        for index, (model, tokens) in enumerate(activity.tokens.items())
    ]
    minutes = int(BUCKET.total_seconds() // 60)
    charts = [
        Chart(
            _("Streams started per %(minutes)s minutes, by outcome") % {"minutes": minutes},
            stacked_bar_chart(_("Streams started"), starts, BUCKET, outcomes),
            _legend(outcomes),
        ),
        Chart(
            _("Duration of the streams started, p50 and p95"),
            line_chart(_("Stream duration"), starts, BUCKET, durations),
            [LegendEntry(s.label, s.css_class, "") for s in durations],
        ),
        Chart(
            _("LLM tokens (prompt and completion) per %(minutes)s minutes, by model")
            % {"minutes": minutes},
            stacked_bar_chart(_("LLM tokens"), starts, BUCKET, models),
            _legend(models),
        ),
    ]
    return {"charts": charts, "token_totals": activity.token_totals}


def outcome_class(outcome: str) -> str:
    return f"sse-outcome-{outcome}" if outcome in OUTCOME_LABELS else "sse-outcome-other"


def model_class(index: int, model: str) -> str:
    return "sse-series-other" if model == OTHER_MODELS else f"sse-series-{index % PALETTE_SIZE}"


def _legend(series: list[Series]) -> list[LegendEntry]:
    return [
        LegendEntry(s.label, s.css_class, format_count(sum(v or 0 for v in s.values)))
        for s in series
    ]
