"""The dashboard page and its event stream, mounted by ``StreamLogAdmin.get_urls()``.

Both ask the model admin: a user must be active staff (the admin site's own check) and
may view stream logs (``has_view_permission``), or gets no data. The page goes through
``admin_site.admin_view`` like every admin page (login redirect, no caching, CSRF); the
stream cannot, as that wrapper is sync, so it runs the same checks itself and answers
403 before any byte. It is GET only, and what it sends does not depend on
Last-Event-ID: every connection starts with a fresh snapshot. Each poll checks again,
with the session and the user as they are now, and a stream whose user has lost access
(logged out, deactivated, no longer staff or allowed to view stream logs) ends.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from django.contrib import auth
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from django_sse._dashboard.activity import activity
from django_sse._dashboard.open_streams import OpenStreams, open_streams
from django_sse._dashboard.panels import charts_context, render_charts, render_open
from django_sse._workers import in_worker
from django_sse.protocol import Event
from django_sse.views import SSEView, load_user

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

__all__ = ["DashboardStream", "dashboard_urls"]

TEMPLATE = "admin/django_sse/streamlog/dashboard.html"


def dashboard_urls(model_admin: ModelAdmin[Any]) -> list[URLPattern]:
    """The page at ``dashboard/`` and its stream at ``dashboard/stream/``."""
    info = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}"
    return [
        path(
            "dashboard/",
            model_admin.admin_site.admin_view(_page_view(model_admin)),
            name=f"{info}_dashboard",
        ),
        path(
            "dashboard/stream/",
            DashboardStream.as_view(model_admin=model_admin),
            name=f"{info}_dashboard_stream",
        ),
    ]


def _page_view(model_admin: ModelAdmin[Any]) -> Callable[[HttpRequest], HttpResponse]:
    def dashboard(request: HttpRequest) -> HttpResponse:
        if not model_admin.has_view_permission(request):
            raise PermissionDenied
        site = model_admin.admin_site
        info = f"{site.name}:{model_admin.opts.app_label}_{model_admin.opts.model_name}"
        request.current_app = site.name
        context = {
            **site.each_context(request),
            **charts_context(activity(timezone.now())),
            "title": _("Stream dashboard"),
            "opts": model_admin.opts,
            "open": open_streams(),
            "changelist_url": reverse(f"{info}_changelist", current_app=site.name),
            "stream_url": reverse(f"{info}_dashboard_stream", current_app=site.name),
        }
        return TemplateResponse(request, TEMPLATE, context)

    return dashboard


class DashboardStream(SSEView):
    """Sends the open-streams panel when it changed, and the charts when they changed.

    Each poll is the two grouped queries of ``open_streams()``, after the access checks
    again, in a worker thread that closes its connection afterwards: an open dashboard
    holds no database connection.
    """

    model_admin: ModelAdmin[Any] | None = None
    # Seconds between polls of what is open, and between recomputations of the charts.
    poll_interval = 2.0
    chart_interval = 60.0
    # Watching must not change what is watched: the dashboard's own stream is not logged.
    log_streams = False

    async def has_permission(self, request: HttpRequest) -> bool:
        if self.model_admin is None or await load_user(request) is None:
            return False
        return await in_worker(self._allowed, request)

    def _allowed(self, request: HttpRequest) -> bool:
        model_admin = self.model_admin
        return bool(
            model_admin is not None
            and model_admin.admin_site.has_permission(request)
            and model_admin.has_view_permission(request)
        )

    def _still_allowed(self, request: HttpRequest) -> bool:
        """The same checks on the user as the session and the database hold them now.

        The request's user was read when the stream opened, hours ago perhaps: a user
        since logged out, deactivated, demoted from staff or stripped of the permission
        must stop receiving the site's live data. Reading the session again (by its key)
        and the user with it, through auth's get_user(), sees all of these, a password
        change included (the session's hash no longer matches).
        """
        session = getattr(request, "session", None)
        if session is None:
            return False
        current = copy.copy(request)
        current.session = session.__class__(session.session_key)
        current.user = auth.get_user(current)
        return self._allowed(current)

    def _poll(self, request: HttpRequest, with_charts: bool) -> tuple[OpenStreams, str] | None:
        """What is open now, and the charts if asked for ("" if not); None once the user
        may no longer see them. Read first and checked after: whatever is sent was read
        before a check that passed, so nothing read after access was lost goes out."""
        snapshot = open_streams()
        charts = render_charts(activity(timezone.now())) if with_charts else ""
        return (snapshot, charts) if self._still_allowed(request) else None

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        shown_open: object = None
        shown_charts = ""
        # The page was rendered with fresh charts a moment ago.
        charts_due = loop.time() + self.chart_interval
        while True:
            with_charts = loop.time() >= charts_due
            if with_charts:
                charts_due = loop.time() + self.chart_interval
            polled = await in_worker(self._poll, request, with_charts)
            if polled is None:
                # Access is gone: the stream ends, and the browser's reconnection gets
                # the 403 that has_permission() now answers.
                return
            snapshot, charts = polled
            if snapshot != shown_open:
                shown_open = snapshot
                yield Event(await in_worker(render_open, snapshot), event="open")
            if charts and charts != shown_charts:
                shown_charts = charts
                yield Event(charts, event="charts")
            await asyncio.sleep(self.poll_interval)
