"""Read-only admin for stream logs and resumable generations, built to stay fast with
millions of rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from django_sse._admin_lists import (
    DistinctValuesFilter,
    RecordChangeList,
    RecordPaginator,
    RecordQuerySet,
    search,
)
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
    list_display = [
        "started_at",
        "view_name",
        "path",
        "user",
        "outcome",
        "duration",
        "events_sent",
        "bytes_sent",
        "model",
        "completion_tokens",
        "time_to_first_token",
    ]
    list_filter = ["outcome", ("view_name", DistinctValuesFilter), "started_at"]
    search_fields = ["path", "user__username", "client_address"]
    ordering = ["-started_at", "-pk"]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data is not None:
            response.context_data["open_streams"] = StreamLog.objects.filter(outcome=OPEN).count()
            response.context_data["open_filter"] = f"?outcome__exact={OPEN}"
        return response


@admin.register(Generation)
class GenerationAdmin(_RecordAdmin):
    list_display = ["started_at", "id", "user", "client_address", "model", "outcome", "ended_at"]
    list_filter = ["outcome", "model", "started_at"]
    search_fields = ["id", "user__username", "client_address"]
