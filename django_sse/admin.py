"""Read-only admin for stream logs and resumable generations, built to stay fast with
millions of rows."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db import DatabaseError, router, transaction
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_sse._admin_lists import (
    DistinctValuesFilter,
    RecordChangeList,
    RecordPaginator,
    RecordQuerySet,
    search,
)
from django_sse._dashboard.views import dashboard_urls
from django_sse.models import OPEN, Generation, StreamLog

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:  # ModelAdmin is generic only in django-stubs
    _ModelAdmin = admin.ModelAdmin


class _RecordAdmin(_ModelAdmin):
    """Rows that django_sse writes as things happen: shown, never added or changed.

    Their tables grow by a row per stream or answer, so every page of the list is
    answered from indexes (see _admin_lists.py): no query reads every row.
    """

    list_select_related = ["user"]
    date_hierarchy = "started_at"
    # The admin's second count, of the whole table, on every page view: not wanted.
    show_full_result_count = False
    paginator = RecordPaginator

    def get_queryset(self, request: HttpRequest) -> RecordQuerySet:
        queryset = super().get_queryset(request)
        return RecordQuerySet(queryset.model, queryset.query.chain(), queryset.db)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[RecordChangeList]:
        return RecordChangeList

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        """The list, or Django's "invalid lookup" redirect (``?e=1``) for a value the
        database refuses: a NUL character on PostgreSQL, a regular expression it cannot
        compile (``?path__regex=(``). RecordChangeList checks what Python can; these
        show only when the count runs, here, and would otherwise be a 500. The savepoint
        leaves PostgreSQL's transaction usable for what the response does next.
        """
        try:
            with transaction.atomic(using=router.db_for_read(self.model)):
                changelist = super().get_changelist_instance(request)
        except DatabaseError as error:
            raise IncorrectLookupParameters(error) from error
        return changelist

    def get_search_results(
        self, request: HttpRequest, queryset: Any, search_term: str
    ) -> tuple[Any, bool]:
        return search(queryset, self.get_search_fields(request), search_term), False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StreamLog)
class StreamLogAdmin(_RecordAdmin):
    # Narrow enough for the list beside both sidebars in a 1280 px window (about 630
    # px): two lines a cell, long text cut short with its full value in a tooltip, the
    # language model's figures on the detail page.
    list_display = ["started", "stream", "user_name", "outcome", "duration_short", "sent"]
    list_filter = ["outcome", ("view_name", DistinctValuesFilter), "started_at"]
    search_fields = ["path", "user__username", "client_address"]
    ordering = ["-started_at", "-pk"]

    @admin.display(description=_("started"), ordering="started_at")
    def started(self, log: StreamLog) -> str:
        local = timezone.localtime(log.started_at)
        return format_html(
            '<span title="{}">{}<br>{}</span>',
            date_format(local, "DATETIME_FORMAT"),
            date_format(local, "M j"),
            date_format(local, "H:i"),
        )

    @admin.display(description=_("stream"), ordering="view_name")
    def stream(self, log: StreamLog) -> str:
        return format_html(
            '<span class="sse-cut" title="{}">{}</span><br>'
            '<span class="sse-cut sse-path" title="{}">{}</span>',
            log.view_name,
            log.view_name,
            log.path,
            log.path,
        )

    @admin.display(description=_("user"), ordering="user__username")
    def user_name(self, log: StreamLog) -> str:
        name = str(log.user) if log.user else ""
        return format_html('<span class="sse-cut" title="{}">{}</span>', name, name or "-")

    @admin.display(description=_("duration"), ordering="duration")
    def duration_short(self, log: StreamLog) -> str:
        return short_duration(log.duration) if log.duration is not None else "-"

    @admin.display(description=_("sent"), ordering="events_sent")
    def sent(self, log: StreamLog) -> str:
        return format_html(
            '<span title="{} events, {} bytes">{} ev<br>{}</span>',
            log.events_sent,
            log.bytes_sent,
            short_number(log.events_sent),
            filesizeformat(log.bytes_sent),
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data is not None:
            response.context_data["open_streams"] = StreamLog.objects.filter(outcome=OPEN).count()
            response.context_data["open_filter"] = f"?outcome__exact={OPEN}"
        return response

    def get_urls(self) -> list[URLPattern]:
        # Before the model's own patterns, whose "<path:object_id>/" would take "dashboard/".
        return [*dashboard_urls(self), *super().get_urls()]


@admin.register(Generation)
class GenerationAdmin(_RecordAdmin):
    list_display = ["started_at", "id", "user", "client_address", "model", "outcome", "ended_at"]
    list_filter = ["outcome", "model", "started_at"]
    search_fields = ["id", "user__username", "client_address"]


def short_duration(duration: timedelta) -> str:
    """At most two units (``26h 07m``, ``2m 05s``, ``0.4s``): a column of a few
    characters rather than Django's ``1 day, 2:07:07.123456``."""
    seconds = duration.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minute:02d}m"
    return f"{minute}m {second:02d}s" if minute else f"{second}s"


def short_number(number: int) -> str:
    """``987``, ``12.3k``, ``45.6M``: the exact count is in the cell's tooltip."""
    for size, unit in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if number >= max(size, 10_000):
            return f"{number / size:.1f}{unit}"
    return str(number)
