"""The StreamLog and Generation admins: read-only, filterable, and flat in queries as rows
grow."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_sse import _admin_lists
from django_sse._admin_lists import search
from django_sse.admin import GenerationAdmin, StreamLogAdmin, short_duration, short_number
from django_sse.models import Generation, StreamLog

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/django_sse/streamlog/"


def make_logs(count: int, start: datetime | None = None, **fields: Any) -> None:
    user = User.objects.create(username=f"user{StreamLog.objects.count()}")
    now = start or timezone.now()
    StreamLog.objects.bulk_create(
        StreamLog(
            view_name=f"view{n % 3}",
            path=f"/stream/{n}/",
            user=user,
            client_address="192.0.2.7",
            started_at=now - timedelta(minutes=n),
            outcome=fields.get("outcome", "completed"),
            duration=timedelta(seconds=n),
        )
        for n in range(count)
    )


@pytest.fixture
def admin_client_(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def changelist_queries(client: Client, query: str = "") -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(CHANGELIST + query)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize(
    "query", ["", "?outcome__exact=error", "?view_name=view1", "?q=stream", "?q=192.0.2.7"]
)
def test_changelist_queries_do_not_grow_with_rows(admin_client_: Client, query: str) -> None:
    make_logs(3)
    few = changelist_queries(admin_client_, query)
    make_logs(60)
    assert changelist_queries(admin_client_, query) == few


def test_changelist_shows_columns_filters_and_open_count(admin_client_: Client) -> None:
    make_logs(2)
    make_logs(1, outcome="open")
    page = admin_client_.get(CHANGELIST).content.decode()
    for heading in ["Started", "Stream", "User", "Outcome", "Duration", "Sent"]:
        assert f">{heading}<" in page
    assert "1 stream is open right now." in page
    assert "?outcome__exact=open" in page
    for title in ["By outcome", "By view", "By started"]:
        assert title in page


def test_search_finds_by_path_user_and_address(admin_client_: Client) -> None:
    make_logs(3)
    for term, rows in [("/stream/1/", 1), ("user0", 3), ("192.0.2.7", 3), ("nothing", 0)]:
        response = admin_client_.get(CHANGELIST, {"q": term})
        assert len(response.context["cl"].result_list) == rows


def test_newest_first(admin_client_: Client) -> None:
    make_logs(5)
    result = admin_client_.get(CHANGELIST).context["cl"].result_list
    assert [log.path for log in result] == [f"/stream/{n}/" for n in range(5)]


def test_rows_cannot_be_added_or_changed(admin_client_: Client) -> None:
    make_logs(1)
    log = StreamLog.objects.get()
    assert admin_client_.get(CHANGELIST + "add/").status_code == 403
    detail = admin_client_.get(f"{CHANGELIST}{log.pk}/change/")
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    admin_client_.post(f"{CHANGELIST}{log.pk}/change/", {"path": "/hacked/"})
    log.refresh_from_db()
    assert log.path == "/stream/0/"


@pytest.mark.skipif(
    connection.vendor == "postgresql",
    reason="PostgreSQL's planner rightly scans a near-empty table instead of its index",
)
@pytest.mark.parametrize(
    ("queryset", "index"),
    [
        (lambda: StreamLog.objects.all()[:100], "django_sse_started_id_idx"),
        (
            lambda: StreamLog.objects.filter(outcome="open")[:100],
            "django_sse_outcome_id_idx",
        ),
        (
            lambda: StreamLog.objects.filter(view_name="v")[:100],
            "django_sse_view_id_idx",
        ),
    ],
)
def test_list_queries_use_an_index(queryset: Any, index: str) -> None:
    """With a million rows a full scan and sort would be the changelist's cost."""
    assert index in queryset().explain()


def test_generations_are_listed_and_read_only(admin_client_: Client, admin_user: User) -> None:
    started = timezone.now()
    Generation.objects.create(
        id="g" * 22, user=admin_user, model="gpt-test", started_at=started, outcome="abandoned"
    )
    listed = admin_client_.get("/admin/django_sse/generation/")
    assert listed.status_code == 200
    assert b"g" * 22 in listed.content
    assert b"abandoned" in listed.content.lower()
    assert admin_client_.get("/admin/django_sse/generation/add/").status_code == 403
    page = admin_client_.get(f"/admin/django_sse/generation/{'g' * 22}/change/")
    assert page.status_code == 200
    assert b'name="outcome"' not in page.content  # shown, not editable
    changed = admin_client_.post(
        f"/admin/django_sse/generation/{'g' * 22}/change/", {"outcome": "running"}
    )
    assert changed.status_code == 403
    assert Generation.objects.get().outcome == "abandoned"


# At a million rows (issue 18): counts, deep pages, filters, the date hierarchy and the
# search answered from indexes. The thresholds are lowered so that a few rows take the
# paths a big table takes.

MARCH = datetime(2026, 3, 10, 12, 0, tzinfo=dt_timezone.utc)
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only (make test-postgres)"
)


@pytest.fixture
def big(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every selection of more than 5 rows counts as big; pages past the first 5 rows
    are fetched keys first; 5 rows a page."""
    monkeypatch.setattr(_admin_lists, "EXACT_UP_TO", 5)
    monkeypatch.setattr(_admin_lists, "KEYS_FIRST_FROM", 5)
    monkeypatch.setattr(StreamLogAdmin, "list_per_page", 5)


def changelist(client: Client, query: str = "") -> Any:
    response = client.get(CHANGELIST + query)
    assert response.status_code == 200
    return response.context["cl"]


def test_filtered_counts_are_exact(admin_client_: Client) -> None:
    make_logs(7)
    make_logs(3, outcome="error")
    assert changelist(admin_client_, "?outcome__exact=error").result_count == 3
    assert changelist(admin_client_, "?view_name=view1").result_count == 3
    unfiltered = changelist(admin_client_)
    assert unfiltered.result_count == 10
    assert not unfiltered.paginator.estimated


@on_postgresql
def test_a_big_unfiltered_list_is_counted_from_postgresqls_statistics(
    admin_client_: Client, big: None
) -> None:
    make_logs(30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_sse_streamlog")
    make_logs(10)  # not yet in the statistics: the count is an estimate
    cl = changelist(admin_client_)
    assert (cl.result_count, cl.paginator.estimated) == (30, True)
    assert b"estimated from the database" in admin_client_.get(CHANGELIST).content


@on_postgresql
def test_a_big_filtered_list_is_counted_up_to_a_bound_then_estimated(
    admin_client_: Client, big: None
) -> None:
    make_logs(20, outcome="error")
    make_logs(4, outcome="timeout")
    assert changelist(admin_client_, "?outcome__exact=timeout").paginator.estimated is False
    errors = changelist(admin_client_, "?outcome__exact=error")
    assert errors.paginator.estimated
    assert errors.result_count > 5


@pytest.mark.parametrize("query", ["", "?outcome__exact=completed"])
def test_a_page_past_the_rows_any_table_holds_is_djangos_invalid_page(
    admin_client_: Client, big: None, query: str
) -> None:
    make_logs(30)
    on_postgresql = connection.vendor == "postgresql"
    if on_postgresql:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE django_sse_streamlog")
    assert changelist(admin_client_, query).paginator.estimated is on_postgresql
    last = (2**63 - 1) // 5 + 1  # the last page whose OFFSET a bigint holds, at 5 rows a page
    separator = "&" if query else "?"
    if on_postgresql:  # an estimate may be short: pages past it are empty, not errors
        assert not changelist(admin_client_, f"{query}{separator}p={last}").result_list
    response = admin_client_.get(f"{CHANGELIST}{query}{separator}p={last + 1}")
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


@pytest.mark.parametrize("query", ["", "?outcome__exact=completed", "?q=user"])
def test_a_deep_page_is_the_right_rows(admin_client_: Client, big: None, query: str) -> None:
    make_logs(40, start=MARCH)
    page = changelist(admin_client_, query + ("&" if query else "?") + "p=4").result_list
    assert [log.path for log in page] == [f"/stream/{n}/" for n in range(15, 20)]


@pytest.mark.parametrize(
    "query", ["", "?p=4", "?outcome__exact=completed&p=3", "?q=stream", "?started_at__year=2026"]
)
def test_big_list_queries_do_not_grow_with_rows(
    admin_client_: Client, big: None, query: str
) -> None:
    make_logs(30, start=MARCH)
    few = changelist_queries(admin_client_, query)
    make_logs(90, start=MARCH - timedelta(hours=2))
    assert changelist_queries(admin_client_, query) == few


# Lookup values no query can take: each fails in Python (the date hierarchy past year
# 9999, a duration that is none, a date that leaves datetime's range once converted from
# TIME_ZONE to UTC) or in the database (a regular expression it cannot compile).
IMPOSSIBLE_LOOKUPS = [
    (model, zone, query)
    for model in ("streamlog", "generation")
    for zone, query in [
        ("UTC", "?started_at__year=9999"),
        ("UTC", "?started_at__year=9999&started_at__month=12"),
        ("UTC", "?started_at__year=9999&started_at__month=12&started_at__day=31"),
        ("UTC", "?started_at__year=" + "9" * 25),
        ("Asia/Kolkata", "?started_at__year=1"),
        ("Asia/Kolkata", "?started_at__gte=0001-01-01"),
        ("America/New_York", "?started_at__lt=9999-12-31+23:59:59"),
    ]
] + [
    ("streamlog", "UTC", "?duration__gt=abc"),
    ("streamlog", "UTC", "?path__regex=("),
]


# Naive dates in the query string warn (and tests make warnings errors); the warning is
# not what is tested here.
@pytest.mark.filterwarnings("ignore:DateTimeField StreamLog.started_at received a naive")
@pytest.mark.filterwarnings("ignore:DateTimeField Generation.started_at received a naive")
@pytest.mark.parametrize(("model", "zone", "query"), IMPOSSIBLE_LOOKUPS)
def test_an_impossible_lookup_value_is_djangos_invalid_lookup_not_a_500(
    admin_client_: Client, model: str, zone: str, query: str
) -> None:
    make_logs(3)
    with override_settings(TIME_ZONE=zone):
        response = admin_client_.get(f"/admin/django_sse/{model}/{query}")
    if zone != "UTC" and connection.vendor == "postgresql":
        # PostgreSQL takes the date with its offset, not converted to UTC by Python:
        # a page of the rows the filter selects.
        assert response.status_code == 200
        return
    assert response.status_code == 302
    assert response["Location"] == f"/admin/django_sse/{model}/?e=1"
    assert StreamLog.objects.count() == 3  # PostgreSQL's transaction is still usable


@pytest.mark.parametrize("query", ["?view_name=%00", "?outcome__exact=%00", "?model=%00"])
def test_a_nul_character_in_a_filter_is_no_500(admin_client_: Client, query: str) -> None:
    """PostgreSQL refuses NUL in text: its invalid lookup there, no rows elsewhere."""
    make_logs(3)
    response = admin_client_.get(CHANGELIST + query)
    if connection.vendor == "postgresql":
        assert response.status_code == 302
        assert response["Location"] == f"{CHANGELIST}?e=1"
        assert StreamLog.objects.count() == 3
    else:
        assert response.status_code == 200
        assert not response.context["cl"].result_list


@pytest.mark.parametrize("address", ["notanip", "1.2.3.4.5"])
def test_an_address_filter_that_is_no_address_is_no_500(
    admin_client_: Client, address: str
) -> None:
    make_logs(3)
    response = admin_client_.get(CHANGELIST, {"client_address": address})
    assert response.status_code in {200, 302}  # PostgreSQL's inet refuses it: e=1
    if response.status_code == 200:
        assert not response.context["cl"].result_list
    else:
        assert response["Location"] == f"{CHANGELIST}?e=1"


def hierarchy_links(client: Client, query: str = "") -> list[str]:
    """The date hierarchy's choices (not its link back up)."""
    page = client.get(CHANGELIST + query).content.decode()
    # Django 6.1 gave the nav an aria-labelledby and a label of its own.
    hierarchy = re.split(r'<nav class="toplinks"[^>]*>', page)[1].split("</nav>")[0]
    return sorted(re.findall(r'<a href="\?([^"]*)">', hierarchy))


@pytest.mark.parametrize(("threshold"), [5, 10_000])
def test_the_date_hierarchy_lists_the_periods_with_rows(
    admin_client_: Client, monkeypatch: pytest.MonkeyPatch, threshold: int
) -> None:
    """The same links whether the periods are probed for (a big list) or Django's
    DISTINCT lists them."""
    monkeypatch.setattr(_admin_lists, "EXACT_UP_TO", threshold)
    for day in (1, 2, 28):
        make_logs(4, start=datetime(2026, 2, day, 12, tzinfo=dt_timezone.utc))
    assert hierarchy_links(admin_client_) == [
        f"started_at__day={day}&amp;started_at__month=2&amp;started_at__year=2026"
        for day in (1, 2, 28)
    ]
    make_logs(4, start=datetime(2025, 12, 31, 12, tzinfo=dt_timezone.utc))
    assert hierarchy_links(admin_client_) == ["started_at__year=2025", "started_at__year=2026"]
    assert hierarchy_links(admin_client_, "?started_at__year=2026") == [
        "started_at__month=2&amp;started_at__year=2026"
    ]


def test_period_starts_cross_months_and_years() -> None:
    starts = _admin_lists.period_starts(
        datetime(2025, 11, 20, tzinfo=dt_timezone.utc),
        datetime(2026, 2, 3, tzinfo=dt_timezone.utc),
        "month",
        dt_timezone.utc,
    )
    assert [(start.year, start.month, start.day) for start in starts] == [
        (2025, 11, 20),
        (2025, 12, 1),
        (2026, 1, 1),
        (2026, 2, 1),
    ]


def test_the_view_filter_lists_every_view_once(admin_client_: Client) -> None:
    make_logs(9)
    (view_filter,) = [f for f in changelist(admin_client_).filter_specs if f.title == "view"]
    assert list(view_filter.lookup_choices) == ["view0", "view1", "view2"]


@pytest.mark.parametrize("users_up_to", [10_000, 0])
def test_search_terms_each_match_some_field(
    admin_client_: Client, monkeypatch: pytest.MonkeyPatch, users_up_to: int
) -> None:
    """Also when more users match than are looked up first (the join is used then)."""
    monkeypatch.setattr(_admin_lists, "USER_IDS_UP_TO", users_up_to)
    make_logs(3)
    make_logs(2)
    for term, rows in [
        ("user3", 2),
        ("USER3 /stream/1/", 1),
        ('"/stream/1/" 192.0.2', 2),
        ("user0 /stream/2/", 1),
        ("user3 nothing", 0),
    ]:
        assert len(changelist(admin_client_, f"?q={term}").result_list) == rows, term


@on_postgresql
@pytest.mark.parametrize(
    ("queryset", "indexes"),
    [
        (
            lambda: search(StreamLog.objects.order_by(), StreamLogAdmin.search_fields, "abcd"),
            ["django_sse_path_trgm_idx", "django_sse_address_trgm_idx"],
        ),
        (
            lambda: search(Generation.objects.order_by(), GenerationAdmin.search_fields, "abcd"),
            ["django_sse_gen_id_trgm_idx", "django_sse_gen_address_trgm_idx"],
        ),
        (
            lambda: StreamLog.objects.values_list("pk", flat=True)[5000:5100],
            ["Index Only Scan using django_sse_started_id_idx"],
        ),
        (
            lambda: StreamLog.objects.filter(view_name="v").values_list("pk")[5000:5100],
            ["Index Only Scan using django_sse_view_id_idx"],
        ),
    ],
)
def test_postgresql_can_answer_from_the_new_indexes(queryset: Any, indexes: list[str]) -> None:
    """With the plans a million rows rule out (reading the table, sorting it) off: the
    indexes match the expressions and the order the admin's queries use."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
    plan = queryset().explain()
    for index in indexes:
        assert index in plan


@on_postgresql
def test_the_view_names_walk_the_view_index() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        StreamLog.objects.create(view_name="v", path="/", started_at=MARCH)
        with CaptureQueriesContext(connection) as captured:
            assert _admin_lists.distinct_values(StreamLog, "view_name", "default") == ["v"]
        cursor.execute("EXPLAIN " + captured.captured_queries[0]["sql"])
        plan = " ".join(row[0] for row in cursor.fetchall())
    assert "django_sse_view_id_idx" in plan
    assert "Seq Scan" not in plan


def index_names() -> set[str]:
    with connection.cursor() as cursor:
        return {
            name
            for table in ("django_sse_streamlog", "django_sse_generation")
            for name in connection.introspection.get_constraints(cursor, table)
        }


@pytest.mark.django_db(transaction=True)
def test_the_migration_applies_and_reverses() -> None:
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("django_sse")
    trigram = {"django_sse_path_trgm_idx", "django_sse_gen_address_trgm_idx"}
    try:
        executor.migrate([("django_sse", "0005_stream_log_held")])
        before = index_names()
        assert "django_sse_started_idx" in before
        assert not before & {"django_sse_started_id_idx", *trigram}
    finally:
        MigrationExecutor(connection).migrate(latest)
    after = index_names()
    assert {"django_sse_started_id_idx", "django_sse_view_id_idx"} <= after
    assert "django_sse_started_idx" not in after
    assert (trigram <= after) is (connection.vendor == "postgresql")


@pytest.mark.parametrize(
    ("duration", "shown"),
    [
        (timedelta(seconds=0.42), "0.4s"),
        (timedelta(seconds=42), "42s"),
        (timedelta(minutes=2, seconds=5), "2m 05s"),
        (timedelta(days=1, hours=2, minutes=7, seconds=7), "26h 07m"),
    ],
)
def test_durations_are_short(duration: timedelta, shown: str) -> None:
    assert short_duration(duration) == shown


@pytest.mark.parametrize(
    ("number", "shown"),
    [(987, "987"), (9_999, "9999"), (12_345, "12.3k"), (45_600_000, "45.6M"), (2 * 10**9, "2.0G")],
)
def test_counts_are_short(number: int, shown: str) -> None:
    assert short_number(number) == shown
