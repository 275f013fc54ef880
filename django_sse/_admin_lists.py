"""What keeps the admin's lists of stream logs and generations fast at a million rows.

Django's changelist asks the database five costly things on every page view: an exact
COUNT of the selection, the page itself at an OFFSET, the distinct values of each
"all values" filter, the distinct days (or months, or years) of the date hierarchy, and
a search that ORs across a join to the users table. Each reads every matching row, so
each grows with the table. Here each is answered from an index instead, and where only
reading every row gives the exact answer (a count) PostgreSQL's estimate stands in for
it past a bound. Django's own code is used wherever it is already cheap (small tables,
small selections, other databases).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import EmptyResultSet, ImproperlyConfigured, SuspiciousOperation
from django.core.paginator import EmptyPage, Page, Paginator
from django.db import connections, models
from django.db.models import Max, Min, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.text import smart_split, unescape_string_literal

if TYPE_CHECKING:
    _QuerySet = QuerySet[Any, Any]
    _Paginator = Paginator[Any]
    _Page = Page[Any]
else:  # generic only in django-stubs
    _QuerySet = QuerySet
    _Paginator = Paginator
    _Page = Page

# Up to this many rows a selection is counted exactly and its dates are listed by
# Django's own DISTINCT: both cost little. Past it, a count stops and estimates, and
# the dates are probed for.
EXACT_UP_TO = 10_000
# Pages from this offset on are fetched keys first (see RecordPaginator.page).
KEYS_FIRST_FROM = 1_000
# More matching users than this and the search joins the users table after all.
USER_IDS_UP_TO = 10_000
# The date hierarchy probes at most this many periods (a month has 31 days).
MAX_PROBES = 62
# No table holds more rows than a signed 64-bit integer counts, and no database takes a
# larger OFFSET (PostgreSQL refuses one as out of range).
MAX_OFFSET = 2**63 - 1


def is_postgresql(using: str) -> bool:
    return connections[using].vendor == "postgresql"


class RecordPaginator(_Paginator):
    """Counts without reading every row, and pages deep without fetching every row.

    On PostgreSQL an unfiltered list is counted from the table's statistics
    (``pg_class.reltuples``, kept by ANALYZE and autovacuum) once the table is past
    EXACT_UP_TO rows; a filtered list is counted exactly up to EXACT_UP_TO rows, and past
    that takes the planner's estimate of the selection. ``estimated`` says when a count
    is not exact. The price: the total and the number of pages are approximate on big
    lists, so the last page may come up short or empty, or end before the last rows.
    Other databases count exactly, as Django does.
    """

    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet) or not is_postgresql(queryset.db):
            return int(super().count)
        if not queryset.query.where:
            rows = table_estimate(queryset)
            if rows > EXACT_UP_TO:
                self.estimated = True
                return rows
            return int(queryset.count())
        counted: int = queryset.order_by()[: EXACT_UP_TO + 1].count()
        if counted <= EXACT_UP_TO:
            return counted
        self.estimated = True
        return max(counted, planner_estimate(queryset))

    def validate_number(self, number: int | float | str) -> int:
        """Any page of an estimated list may be asked for, up to the last a table could
        have: the estimate may be short of the rows there are, and a page past the last
        row is merely empty. Past MAX_OFFSET it is Django's invalid page."""
        try:
            return super().validate_number(number)
        except EmptyPage:
            # Django's validation got as far as an int.
            page = int(number)
            if not self.estimated or page < 1 or (page - 1) * self.per_page > MAX_OFFSET:
                raise
            return page

    def page(self, number: int | str) -> _Page:
        """Past KEYS_FIRST_FROM rows, the page's keys first, then its rows by key.

        An OFFSET of half a million rows makes the database fetch and skip every row
        before the page, with its user joined. The keys alone come from an index on the
        list's order (an index-only scan), and the hundred rows are then fetched by
        primary key.
        """
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        queryset = self.object_list
        shallow = bottom < KEYS_FIRST_FROM and not self.estimated
        if shallow or not isinstance(queryset, QuerySet):
            return super().page(number)
        keys = list(queryset.values_list("pk", flat=True)[bottom : bottom + self.per_page])
        return Page(queryset.filter(pk__in=keys), number, self)


def table_estimate(queryset: _QuerySet) -> int:
    """The row count PostgreSQL's statistics hold for the model's table; -1 if never
    analyzed."""
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connections[queryset.db].ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else -1


def planner_estimate(queryset: _QuerySet) -> int:
    """How many rows PostgreSQL's planner expects ``queryset`` to return."""
    sql, params = queryset.order_by().query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class RecordQuerySet(_QuerySet):
    """The admin's querysets: Django's, with the date hierarchy's query made cheap for a
    big selection (RecordChangeList says which is big)."""

    probe_periods = False

    def datetimes(
        self,
        field_name: str,
        kind: Literal["year", "month", "week", "day", "hour", "minute", "second"],
        order: Literal["ASC", "DESC"] = "ASC",
        tzinfo: datetime.tzinfo | None = None,
    ) -> _QuerySet:
        """The periods that have rows, found with one index probe per period.

        Django's own query truncates every selected row's date and keeps the distinct
        values: at a million rows, the slowest query of the changelist. Here each period
        between the first and the last row is asked for one row, and Django's query
        then runs over those few rows: the same answer, a QuerySet as before.
        """
        firsts = self._first_of_each_period(field_name, kind, tzinfo)
        chosen: RecordQuerySet = self if firsts is None else self.filter(pk__in=firsts)
        return super(RecordQuerySet, chosen).datetimes(field_name, kind, order, tzinfo)

    def _first_of_each_period(
        self, field_name: str, kind: str, tzinfo: datetime.tzinfo | None
    ) -> list[Any] | None:
        if not self.probe_periods or kind not in ("year", "month", "day"):
            return None
        span = self.aggregate(first=Min(field_name), last=Max(field_name))
        if span["first"] is None:
            return None
        starts = period_starts(span["first"], span["last"], kind, tzinfo)
        if len(starts) > MAX_PROBES:
            return None
        unordered = self.order_by()
        bounds = [{f"{field_name}__gte": start} for start in starts]
        for bound, end in zip(bounds[:-1], starts[1:], strict=True):
            bound[f"{field_name}__lt"] = end
        probes = [unordered.filter(**bound).values_list("pk", flat=True)[:1] for bound in bounds]
        if connections[self.db].features.supports_slicing_ordering_in_compound:
            return list(probes[0].union(*probes[1:], all=True))
        return [key for probe in probes for key in probe]


class RecordChangeList(ChangeList):
    """Tells the date hierarchy's queryset when the selection is big, from the count the
    paginator has already made, so that small selections keep Django's query; and turns
    lookup values that cannot become SQL into Django's "invalid lookup" redirect."""

    def get_queryset(self, request: HttpRequest, *args: Any, **kwargs: Any) -> _QuerySet:
        """Django's queryset, compiled once to check the values of its lookups.

        Django catches any error while it builds the filter from the query string, but a
        value is converted only when the query is compiled, and a year of 9999 in the
        date hierarchy fails before either: ``?duration__gt=abc``, a date that leaves
        datetime's range once converted from TIME_ZONE to UTC (``0001-01-01`` east of
        UTC), ``?started_at__year=9999`` would each be a 500.
        """
        try:
            queryset: _QuerySet = super().get_queryset(request, *args, **kwargs)
            queryset.query.sql_with_params()
        except EmptyResultSet:  # a lookup that matches nothing, such as pk__in=[]
            pass
        except (SuspiciousOperation, ImproperlyConfigured, IncorrectLookupParameters):
            raise  # a disallowed lookup stays a 400, as in Django
        except Exception as error:  # Django's own catch-all for lookup parameters
            raise IncorrectLookupParameters(error) from error
        return queryset

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if self.result_count > EXACT_UP_TO and isinstance(self.queryset, RecordQuerySet):
            self.queryset.probe_periods = True


def period_starts(
    first: datetime.datetime, last: datetime.datetime, kind: str, tzinfo: datetime.tzinfo | None
) -> list[datetime.datetime]:
    """The start of each year, month or day from ``first`` to ``last``, in the time zone
    Django's date hierarchy uses (the current one); the last period is open-ended."""
    aware = timezone.is_aware(first)
    zone = tzinfo or timezone.get_current_timezone()
    if aware:
        first, last = timezone.localtime(first, zone), timezone.localtime(last, zone)
    day = first.date().replace(month=1, day=1) if kind == "year" else first.date()
    if kind == "month":
        day = day.replace(day=1)
    starts: list[datetime.datetime] = []
    while day <= last.date() and len(starts) <= MAX_PROBES:
        start = datetime.datetime.combine(day, datetime.time.min)
        starts.append(timezone.make_aware(start, zone) if aware else start)
        day = next_period(day, kind)
    starts[0] = first  # the first period begins at the first row
    return starts


def next_period(day: datetime.date, kind: str) -> datetime.date:
    if kind == "day":
        return day + datetime.timedelta(days=1)
    if kind == "month":
        return day.replace(year=day.year + day.month // 12, month=day.month % 12 + 1)
    return day.replace(year=day.year + 1)


class DistinctValuesFilter(admin.AllValuesFieldListFilter):
    """The "By view" filter's choices, read from an index instead of from every row.

    Django lists a field's values with ``SELECT DISTINCT`` over the whole table. On
    PostgreSQL a recursive query walks an index whose first column is the field
    instead, one step per distinct value (a "loose index scan"), so tens of views cost
    tens of index probes however many rows there are. Elsewhere Django's query stays.
    """

    def __init__(
        self,
        field: models.Field[Any, Any],
        request: Any,
        params: dict[str, Any],
        model: type[models.Model],
        model_admin: Any,
        field_path: str,
    ) -> None:
        super().__init__(field, request, params, model, model_admin, field_path)
        using = model_admin.get_queryset(request).db
        if field_path == field.name and not field.null and is_postgresql(using):
            choices: Any = distinct_values(model, str(field.column), using)
            self.lookup_choices = choices


def distinct_values(model: type[models.Model], column: str, using: str) -> list[Any]:
    quote = connections[using].ops.quote_name
    table, column = quote(model._meta.db_table), quote(column)
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"""
            WITH RECURSIVE found (value) AS (
                (SELECT {column} FROM {table} ORDER BY {column} LIMIT 1)
                UNION ALL
                SELECT (SELECT {column} FROM {table} WHERE {column} > found.value
                        ORDER BY {column} LIMIT 1)
                FROM found WHERE found.value IS NOT NULL
            )
            SELECT value FROM found WHERE value IS NOT NULL
            """
        )
        return [row[0] for row in cursor.fetchall()]


def search(queryset: _QuerySet, search_fields: Sequence[str], search_term: str) -> _QuerySet:
    """Django's admin search, each term in any field, with the user looked up first.

    Django ORs ``user__username`` into the same WHERE as the table's own fields, across
    a join: no index serves that, and PostgreSQL reads the whole table. Here the users
    whose name matches are found first (the users table is small), and the rows are
    matched by ``user_id``, which its foreign key index serves next to the trigram
    indexes on the other fields (migration 0006).
    """
    own = [f"{name}__icontains" for name in search_fields if not name.startswith("user__")]
    user_fields = [name[len("user__") :] for name in search_fields if name.startswith("user__")]
    users = get_user_model()._default_manager.using(queryset.db)
    for bit in smart_split(search_term):
        term = unescape_string_literal(bit) if bit[0] in "\"'" and bit[0] == bit[-1] else bit
        matches = Q.create([(lookup, term) for lookup in own], connector=Q.OR)
        for field in user_fields:
            named = users.filter(**{f"{field}__icontains": term}).values_list("pk", flat=True)
            ids = list(named[: USER_IDS_UP_TO + 1])
            matches |= Q(user__in=ids if len(ids) <= USER_IDS_UP_TO else named)
        queryset = queryset.filter(matches)
    return queryset
