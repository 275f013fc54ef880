"""The stream log changelist fits a 1280 px wide window in Chromium (issue 18: its columns
used to run off the right edge).

The rows are what a busy site logs: long paths with query-like segments, language model
chats with token counts, multi-megabyte streams. The admin's own CSS and JavaScript are
served from Django's package by the browser's router, as a static files server would.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

import django.contrib.admin
import pytest
from playwright.sync_api import Browser, Route

from tests.servers import LiveServer

ADMIN_STATIC = Path(django.contrib.admin.__file__).parent / "static" / "admin"
CHANGELIST = "/admin/django_sse/streamlog/"

ROWS = """
from datetime import timedelta
from django.contrib.auth.models import User
from django.utils import timezone
from django_sse.models import StreamLog
user = User.objects.create(username="a-rather-long-username-from-sso@example.com")
now = timezone.now()
StreamLog.objects.bulk_create(
    StreamLog(
        view_name=f"notifications.views.LiveNotificationsStream{n}",
        path=f"/api/v2/organisations/acme-international/projects/{n}/notifications/stream/",
        user=user,
        client_address="2001:db8:85a3::8a2e:370:7334",
        started_at=now - timedelta(minutes=n),
        ended_at=now,
        duration=timedelta(hours=26, minutes=n, seconds=7, microseconds=123456),
        events_sent=12_345_678 + n,
        bytes_sent=9_876_543_210 + n,
        outcome="client_disconnected",
        model="gpt-4o-mini-2024-07-18",
        prompt_tokens=12_345,
        completion_tokens=54_321,
        time_to_first_token=timedelta(milliseconds=1234),
    )
    for n in range(100)
)
"""


@pytest.fixture(scope="module")
def admin_server(server: LiveServer) -> LiveServer:
    server.create_user("layout-admin", "layout-password", superuser=True)
    server.manage("shell", "-c", ROWS)
    return server


def serve_admin_static(route: Route) -> None:
    relative = route.request.url.split("/static/admin/", 1)[1].split("?")[0]
    file = ADMIN_STATIC / relative
    if not file.resolve().is_relative_to(ADMIN_STATIC) or not file.is_file():
        route.fulfill(status=404)
        return
    content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    route.fulfill(body=file.read_bytes(), content_type=content_type)


def test_the_changelist_fits_1280_pixels(browser: Browser, admin_server: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        cookies = admin_server.log_in("layout-admin", "layout-password")
        context.add_cookies(
            [{"name": k, "value": v, "url": admin_server.url} for k, v in cookies.items()]
        )
        page = context.new_page()
        page.route("**/static/admin/**", serve_admin_static)
        page.goto(admin_server.url + CHANGELIST)
        assert page.locator("#result_list tbody tr").count() == 100
        # The admin's stylesheet is applied (the filter sidebar is laid out beside the list).
        assert (
            page.evaluate("getComputedStyle(document.querySelector('#changelist-filter')).display")
            != "none"
        )
        widths = page.evaluate(
            """() => {
                const results = document.querySelector('.results');
                const table = document.querySelector('#result_list');
                return {
                    page: document.documentElement.scrollWidth,
                    window: document.documentElement.clientWidth,
                    results: results.scrollWidth,
                    resultsBox: results.clientWidth,
                    tableRight: table.getBoundingClientRect().right,
                };
            }"""
        )
        assert widths["page"] <= widths["window"], widths
        assert widths["results"] <= widths["resultsBox"], widths
        assert widths["tableRight"] <= widths["window"], widths
        # Truncated paths keep their full value where the pointer finds it.
        path = page.locator("#result_list tbody tr").first.locator("td.field-stream span.sse-path")
        assert path.get_attribute("title") == (
            "/api/v2/organisations/acme-international/projects/0/notifications/stream/"
        )
    finally:
        context.close()
