"""The dashboard's numbers: what is open, the 24 hours' buckets and percentiles, and the
SVG drawn from them. Every expected number here is counted by hand from the rows made."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_sse._dashboard import activity as activity_module
from django_sse._dashboard.activity import OTHER_MODELS, ModelTotal, Window, activity
from django_sse._dashboard.durations import BOUNDS, per_bucket, quantile
from django_sse._dashboard.open_streams import TOP_USERS, open_streams
from django_sse._dashboard.svg import (
    Series,
    format_count,
    format_seconds,
    line_chart,
    stacked_bar_chart,
)
from django_sse.models import StreamLog

NOW = datetime(2025, 1, 2, 12, 34, 56, tzinfo=timezone.utc)
# The window ending at NOW: 144 buckets from 2025-01-01 12:40 up to 2025-01-02 12:40.
FIRST = datetime(2025, 1, 1, 12, 40, tzinfo=timezone.utc)
LAST = 143
SVG = "{http://www.w3.org/2000/svg}"


def log(started_at: datetime, outcome: str = "completed", **fields: Any) -> StreamLog:
    fields.setdefault("view_name", "clock")
    return StreamLog(path="/s/", started_at=started_at, outcome=outcome, **fields)


def at(hour: int, minute: int, second: int = 0, day: int = 2) -> datetime:
    return datetime(2025, 1, day, hour, minute, second, tzinfo=timezone.utc)


def test_the_window_is_144_ten_minute_buckets_ending_with_the_current_one() -> None:
    window = Window.ending_at(NOW)
    assert window.start == FIRST
    assert window.end == at(12, 40)
    assert len(window.starts()) == 144
    assert window.starts()[LAST] == at(12, 30)


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu", "America/St_Johns"])
def test_streams_started_are_counted_per_bucket_and_outcome(zone: str) -> None:
    """Buckets are in UTC whatever TIME_ZONE says: +5:45 and -3:30 move no row."""
    StreamLog.objects.bulk_create(
        [
            log(at(12, 31)),
            log(at(12, 32)),
            log(at(12, 39, 59)),
            log(at(12, 30), "error"),
            log(at(12, 29, 59)),
            log(at(0, 1)),  # 685 minutes after FIRST... minus four: bucket 68
            log(FIRST, "client_disconnected"),
            log(FIRST + timedelta(seconds=1), "client_disconnected"),
            log(FIRST - timedelta(seconds=1)),  # before the window
            log(at(12, 40)),  # after it
            log(at(12, 35), "open"),
        ]
    )
    with override_settings(TIME_ZONE=zone):
        started = activity(NOW).started

    assert set(started) == {"completed", "client_disconnected", "error", "open"}
    assert all(len(counts) == 144 for counts in started.values())
    nonzero = {
        outcome: {i: n for i, n in enumerate(counts) if n} for outcome, counts in started.items()
    }
    assert nonzero == {
        "completed": {LAST: 3, LAST - 1: 1, 68: 1},
        "client_disconnected": {0: 2},
        "error": {LAST: 1},
        "open": {LAST: 1},
    }
    # Most streams first: that is the stacking order, from the axis up.
    assert list(started) == ["completed", "client_disconnected", "error", "open"]


@pytest.mark.django_db
def test_p50_and_p95_come_from_the_duration_buckets() -> None:
    # Bucket LAST: ten 0.2 s streams ([0.1, 0.25) s) and ten of 45 s ([30, 60) s).
    rows = [log(at(12, 31), duration=timedelta(seconds=0.2)) for _ in range(10)]
    rows += [log(at(12, 32), duration=timedelta(seconds=45)) for _ in range(10)]
    # Bucket 0: one stream of three hours, which is in [2 h, 4 h).
    rows.append(log(FIRST, duration=timedelta(hours=3)))
    # Bucket 1: still open, no duration; it must not count.
    rows.append(log(FIRST + timedelta(minutes=10), "open"))
    StreamLog.objects.bulk_create(rows)

    result = activity(NOW)

    # p50: rank 10 of 20 is the last of the first bucket, its upper bound.
    assert result.p50[LAST] == pytest.approx(0.25)
    # p95: rank 19 is the 9th of the 10 in [30, 60): 30 + 30 * 9/10.
    assert result.p95[LAST] == pytest.approx(57.0)
    # One stream: rank 0.5 and 0.95 of one, inside [7200, 14400).
    assert result.p50[0] == pytest.approx(7200 + 7200 * 0.5)
    assert result.p95[0] == pytest.approx(7200 + 7200 * 0.95)
    assert result.p50[1] is None
    assert result.p95[1] is None
    assert sum(p is not None for p in result.p50) == 2


def test_quantile_reads_bucket_counts_like_histogram_quantile() -> None:
    empty = [0] * (len(BOUNDS) + 1)
    assert quantile(empty, 0.5) is None
    counts = list(empty)
    counts[3] = 4  # [0.5, 1) s
    assert quantile(counts, 0.5) == pytest.approx(0.75)
    assert quantile(counts, 0.25) == pytest.approx(0.625)
    counts[0] = 4  # [0, 0.1) s: the first bucket starts at zero
    assert quantile(counts, 0.25) == pytest.approx(0.05)
    beyond = list(empty)
    beyond[-1] = 3  # a day and more: no upper bound, so its lower one
    assert quantile(beyond, 0.95) == BOUNDS[-1]


@pytest.mark.django_db
def test_tokens_are_summed_per_model_and_bucket() -> None:
    StreamLog.objects.bulk_create(
        [
            log(at(12, 31), model="gpt-a", prompt_tokens=10, completion_tokens=5),
            log(at(12, 33), model="gpt-a", prompt_tokens=10, completion_tokens=5),
            log(FIRST, model="gpt-b", prompt_tokens=1),  # completion unknown: counts 0
            log(FIRST, model="gpt-b", completion_tokens=7, outcome="error"),
            log(at(12, 31), prompt_tokens=99),  # no model: not an LLM stream
            log(FIRST - timedelta(minutes=1), model="gpt-a", prompt_tokens=1000),
        ]
    )

    result = activity(NOW)

    assert {m: {i: n for i, n in enumerate(v) if n} for m, v in result.tokens.items()} == {
        "gpt-a": {LAST: 30},
        "gpt-b": {0: 8},
    }
    assert result.token_totals == [ModelTotal("gpt-a", 20, 10, 2), ModelTotal("gpt-b", 1, 7, 2)]


@pytest.mark.django_db
def test_models_beyond_the_top_six_are_charted_as_one() -> None:
    StreamLog.objects.bulk_create(
        [log(at(12, 31), model=f"m{n}", completion_tokens=100 - n) for n in range(8)]
    )
    tokens = activity(NOW).tokens
    assert list(tokens) == ["m0", "m1", "m2", "m3", "m4", "m5", OTHER_MODELS]
    assert tokens[OTHER_MODELS][LAST] == 94 + 93


@pytest.mark.django_db
def test_activity_is_one_query_however_many_rows() -> None:
    StreamLog.objects.bulk_create([log(at(12, 31), model="m", duration=timedelta(1))])
    with CaptureQueriesContext(connection) as few:
        activity(NOW)
    StreamLog.objects.bulk_create(
        log(NOW - timedelta(minutes=n), model=f"m{n % 9}", duration=timedelta(seconds=n))
        for n in range(500)
    )
    with CaptureQueriesContext(connection) as many:
        activity(NOW)
    assert len(few) == len(many) == 1
    assert "started_at" in many.captured_queries[0]["sql"]


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="only SQLite's plan is checked: PostgreSQL's and MariaDB's planners rightly scan "
    "a near-empty table instead of its index",
)
@pytest.mark.django_db
def test_the_chart_query_reads_the_window_through_the_started_at_index() -> None:
    assert "django_sse_started_id_idx" in activity_module._groups(Window.ending_at(NOW)).explain()


def test_duration_counts_become_counts_per_bucket() -> None:
    row = {f"under_{i}": 0 for i in range(len(BOUNDS))}
    row.update({"under_3": 2, "under_4": 2, "under_5": 7, "finished": 9})
    for i in range(6, len(BOUNDS)):
        row[f"under_{i}"] = 7
    assert per_bucket(row) == [0, 0, 0, 2, 0, 5] + [0] * (len(BOUNDS) - 6) + [2]


@pytest.mark.django_db
def test_open_streams_by_view_and_by_user() -> None:
    ada = User.objects.create(username="ada")
    bob = User.objects.create(username="bob")
    StreamLog.objects.bulk_create(
        [
            log(NOW, "open", view_name="chat", user=ada),
            log(NOW, "open", view_name="chat", user=ada),
            log(NOW, "open", view_name="clock", user=bob),
            log(NOW, "open", view_name="clock"),
            log(NOW, "completed", view_name="clock", user=bob),
            log(NOW - timedelta(days=40), "open", view_name="chat"),  # open is open
        ]
    )
    with CaptureQueriesContext(connection) as captured:
        snapshot = open_streams()
    assert len(captured) == 2
    assert snapshot.total == 5
    assert snapshot.by_view == (("chat", 3), ("clock", 2))
    assert dict(snapshot.by_user) == {"ada": 2, None: 2, "bob": 1}
    assert snapshot.other_users == 0
    assert snapshot == open_streams()  # compared to decide whether to send


@pytest.mark.django_db
def test_users_past_the_top_ten_are_added_up() -> None:
    users = User.objects.bulk_create(User(username=f"u{n:02}") for n in range(TOP_USERS + 3))
    StreamLog.objects.bulk_create(
        log(NOW, "open", user=user) for user in users for _ in range(2 if user.pk % 2 else 1)
    )
    snapshot = open_streams()
    assert len(snapshot.by_user) == TOP_USERS
    assert snapshot.other_users == snapshot.total - sum(n for _, n in snapshot.by_user)
    assert snapshot.other_users == 3
    assert snapshot.total == StreamLog.objects.count()


def svg_elements(svg: str, tag: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall(f".//{SVG}{tag}")


@override_settings(TIME_ZONE="UTC")
def test_bars_are_drawn_one_per_nonzero_value_and_stacked() -> None:
    starts = Window.ending_at(NOW).starts()
    values_a = [0] * 144
    values_b = [0] * 144
    values_a[0], values_a[10], values_b[10] = 4, 2, 6
    svg = stacked_bar_chart(
        "Streams",
        starts,
        timedelta(minutes=10),
        [Series("a", "ca", values_a), Series("b", "cb", values_b)],
    )
    bars = svg_elements(svg, "rect")
    assert [bar.get("class") for bar in bars] == ["sse-bar ca", "sse-bar ca", "sse-bar cb"]
    heights = [float(bar.get("height", 0)) for bar in bars]
    # The tallest stack (8) reaches the top gridline (step 2, top 8); 4 is half of that.
    assert heights[1] + heights[2] == pytest.approx(2 * heights[0], abs=0.02)
    # b sits on a: its bottom edge is a's top edge.
    assert float(bars[2].get("y", 0)) + heights[2] == pytest.approx(float(bars[1].get("y", 0)))
    titles = [bar.findtext(f"{SVG}title") for bar in bars]
    assert titles[0] == "12:40\u201312:50 · a: 4"
    assert "8" in [t.text for t in svg_elements(svg, "text")]


def axis_labels(svg: str) -> dict[str, float]:
    """The time axis' labels, each with its x position."""
    return {
        str(label.text): float(label.get("x", 0))
        for label in svg_elements(svg, "text")
        if label.get("text-anchor") == "middle" and ":" in str(label.text)
    }


@pytest.mark.parametrize(
    ("zone", "first_label", "minutes_after_first"),
    [
        # +5:45: the buckets start at :05, :15 ... :55 local time, none on an hour.
        ("Asia/Kathmandu", "21:00", 155),  # 15:15 UTC, 2:35 after FIRST
        ("Pacific/Chatham", "03:00", 35),  # +13:45 in January: 13:15 UTC
        ("Asia/Kolkata", "21:00", 170),  # +5:30: 15:30 UTC
        ("UTC", "15:00", 140),
    ],
)
def test_the_time_axis_is_labelled_every_three_local_hours_in_any_zone(
    zone: str, first_label: str, minutes_after_first: int
) -> None:
    with override_settings(TIME_ZONE=zone):
        svg = stacked_bar_chart("S", Window.ending_at(NOW).starts(), timedelta(minutes=10), [])
    labels = axis_labels(svg)
    assert len(labels) == 8
    assert next(iter(labels)) == first_label
    # Each label stands where its local hour falls, between bucket starts if need be.
    per_minute = (720 - 58 - 6) / 144 / 10
    assert labels[first_label] == pytest.approx(58 + minutes_after_first * per_minute, abs=0.01)


def test_the_time_axis_spans_real_hours_across_a_dst_change() -> None:
    """New York springs forward at 02:00 on 2025-03-09: 00:00 to 03:00 is two hours."""
    window = Window.ending_at(datetime(2025, 3, 9, 12, 0, tzinfo=timezone.utc))
    with override_settings(TIME_ZONE="America/New_York"):
        labels = axis_labels(stacked_bar_chart("S", window.starts(), timedelta(minutes=10), []))
    hour = 6 * (720 - 58 - 6) / 144
    assert labels["03:00"] - labels["00:00"] == pytest.approx(2 * hour, abs=0.01)
    assert labels["06:00"] - labels["03:00"] == pytest.approx(3 * hour, abs=0.01)


def test_lines_break_where_a_bucket_has_no_value() -> None:
    starts = Window.ending_at(NOW).starts()
    p50: list[float | None] = [None] * 144
    p50[3], p50[4], p50[5], p50[20] = 0.2, 1.5, 30.0, 4000.0
    svg = line_chart("Durations", starts, timedelta(minutes=10), [Series("p50", "c", p50)])
    assert len(svg_elements(svg, "circle")) == 4
    paths = svg_elements(svg, "path")
    # Buckets 3-5 make a line; bucket 20 stands alone, a point without a line.
    assert len(paths) == 1
    assert paths[0].get("d", "").count("L") == 2
    ticks = [t.text for t in svg_elements(svg, "text") if t.get("text-anchor") == "end"]
    assert ticks == ["100 ms", "1 s", "10 s", "1 min", "10 min", "1 h", "1 d"]


def test_durations_and_counts_read_as_people_write_them() -> None:
    assert [format_seconds(s) for s in (0.0125, 0.25, 2.5, 45, 90, 5400, 86400)] == [
        "12.5 ms",
        "250 ms",
        "2.5 s",
        "45 s",
        "1.5 min",
        "1.5 h",
        "1 d",
    ]
    assert [format_count(n) for n in (0, 7, 999, 1000, 12345, 3_400_000)] == [
        "0",
        "7",
        "999",
        "1k",
        "12.3k",
        "3.4M",
    ]


@pytest.mark.parametrize("chart", [stacked_bar_chart, line_chart])
def test_no_data_draws_an_axis_and_says_so(chart: Any) -> None:
    starts = Window.ending_at(NOW).starts()
    svg = chart("Empty", starts, timedelta(minutes=10), [Series("a", "c", [None] * 144)])
    root = ET.fromstring(svg)
    assert root.findall(f".//{SVG}rect") == root.findall(f".//{SVG}circle") == []
    assert "No data in these 24 hours" in "".join(root.itertext())


def test_text_from_data_is_escaped() -> None:
    starts = Window.ending_at(NOW).starts()
    hostile = '<script>alert("x")</script> & co'
    values = [1] + [0] * 143
    svg = stacked_bar_chart(
        hostile, starts, timedelta(minutes=10), [Series(hostile, '" x', values)]
    )
    root = ET.fromstring(svg)  # still well-formed XML
    assert root.get("aria-label") == hostile
    assert root.findall(f".//{SVG}script") == []
    assert hostile in "".join(root.itertext())
