"""Read-only admin for stream logs and resumable generations, built to stay fast with
millions of rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern

from django_sse._dashboard.views import dashboard_urls
from django_sse.models import OPEN, Generation, StreamLog

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:  # ModelAdmin is generic only in django-stubs
    _ModelAdmin = admin.ModelAdmin


class _RecordAdmin(_ModelAdmin):
    """Rows that django_sse writes as things happen: shown, never added or changed."""

    list_select_related = ["user"]
    date_hierarchy = "started_at"
    # Counting a million rows on every page view is the slowest query the changelist
    # would run; the paginator's own count is enough.
    show_full_result_count = False

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
    list_filter = ["outcome", "view_name", "started_at"]
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

    def get_urls(self) -> list[URLPattern]:
        # Before the model's own patterns, whose "<path:object_id>/" would take "dashboard/".
        return [*dashboard_urls(self), *super().get_urls()]


@admin.register(Generation)
class GenerationAdmin(_RecordAdmin):
    list_display = ["started_at", "id", "user", "client_address", "model", "outcome", "ended_at"]
    list_filter = ["outcome", "model", "started_at"]
    search_fields = ["id", "user__username", "client_address"]
