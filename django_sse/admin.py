"""Read-only admin for StreamLog, built to stay fast with millions of rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from django_sse.models import OPEN, StreamLog

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[StreamLog]
else:  # ModelAdmin is generic only in django-stubs
    _ModelAdmin = admin.ModelAdmin


@admin.register(StreamLog)
class StreamLogAdmin(_ModelAdmin):
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
    date_hierarchy = "started_at"
    ordering = ["-started_at", "-pk"]
    list_select_related = ["user"]
    # Counting a million rows on every page view is the slowest query the changelist
    # would run; the paginator's own count is enough.
    show_full_result_count = False
    readonly_fields = [field.name for field in StreamLog._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data is not None:
            response.context_data["open_streams"] = StreamLog.objects.filter(outcome=OPEN).count()
            response.context_data["open_filter"] = f"?outcome__exact={OPEN}"
        return response
