"""Who sees the dashboard, and what its stream sends: tried as an attacker would.

The page and its stream answer only active staff who may view stream logs. Everyone else
gets the admin's login redirect or a 403, and never a number: each refused response is
checked for the data itself, not only for its status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.models import Session
from django.test import AsyncClient, Client
from django.utils import timezone

from django_sse._dashboard.views import DashboardStream
from django_sse.models import StreamLog
from django_sse.protocol import EventParser, MessageEvent

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/admin/django_sse/streamlog/dashboard/"
STREAM = "/admin/django_sse/streamlog/dashboard/stream/"
# A view name no page shows unless it reads the open streams.
SECRET_VIEW = "secret-view-7f3a"


@pytest.fixture(autouse=True)
def open_row() -> None:
    StreamLog.objects.create(
        view_name=SECRET_VIEW, path="/s/", started_at=timezone.now(), outcome="open"
    )


def user(kind: str) -> User | None:
    """anonymous, inactive, non-staff (with the view permission), staff without it,
    staff with it, superuser."""
    if kind == "anonymous":
        return None
    made: User = User.objects.create_user(
        kind,
        password="x",
        is_staff=kind not in {"non-staff"},
        is_superuser=kind in {"superuser", "inactive"},
        is_active=kind != "inactive",
    )
    if kind in {"non-staff", "staff-with-view"}:
        made.user_permissions.add(Permission.objects.get(codename="view_streamlog"))
    return made


def client_for(kind: str) -> Client:
    client = Client()
    made = user(kind)
    if made is not None:
        client.force_login(made)
    return client


REFUSED = ["anonymous", "inactive", "non-staff", "staff-without-view"]
ALLOWED = ["staff-with-view", "superuser"]


@pytest.mark.parametrize("kind", REFUSED)
@pytest.mark.parametrize("method", ["get", "post"])
def test_the_page_refuses_all_but_staff_who_may_view_logs(kind: str, method: str) -> None:
    response = getattr(client_for(kind), method)(PAGE)
    if kind == "staff-without-view":
        assert response.status_code == 403
    else:  # the admin's own answer to who is not staff: its login form
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")
    assert SECRET_VIEW.encode() not in response.content


@pytest.mark.parametrize("kind", ALLOWED)
def test_the_page_shows_open_streams_and_charts(kind: str) -> None:
    response = client_for(kind).get(PAGE)
    assert response.status_code == 200
    page = response.content.decode()
    assert SECRET_VIEW in page
    assert "1 stream open right now" in page
    assert page.count('class="sse-chart"') == 3
    assert f'data-sse-url="{STREAM}"' in page
    assert "django_sse/sse.js" in page
    assert "django_sse/dashboard.css" in page
    assert 'href="/admin/django_sse/streamlog/"' in page  # breadcrumbs back to the list


def test_the_changelist_links_to_the_dashboard(admin_client: Client) -> None:
    assert f'href="{PAGE}"'.encode() in admin_client.get("/admin/django_sse/streamlog/").content


async def first_event(response: Any) -> MessageEvent:
    parser = EventParser()
    content = response.streaming_content
    try:
        async for chunk in content:
            events = parser.feed(chunk)
            if events:
                return events[0]
    finally:
        await content.aclose()
    raise AssertionError("the stream ended without an event")


async def async_client_for(kind: str) -> AsyncClient:
    client = AsyncClient()
    made = await sync_to_async(user)(kind)
    if made is not None:
        await sync_to_async(client.force_login)(made)
    return client


@pytest.mark.parametrize("kind", REFUSED)
@pytest.mark.parametrize(
    ("headers", "query"),
    [({}, {}), ({"Last-Event-ID": "1"}, {}), ({}, {"lastEventId": "999"})],
)
async def test_the_stream_refuses_before_any_byte(
    kind: str, headers: dict[str, str], query: dict[str, str]
) -> None:
    client = await async_client_for(kind)
    response = await client.get(STREAM, query, headers=headers)
    assert response.status_code == 403
    assert not response.streaming
    assert SECRET_VIEW.encode() not in response.content


@pytest.mark.parametrize("kind", [*REFUSED, *ALLOWED])
async def test_the_stream_is_get_only(kind: str) -> None:
    client = await async_client_for(kind)
    response = await client.post(STREAM, {"outcome": "open"})
    assert response.status_code in {403, 405}
    assert SECRET_VIEW.encode() not in response.content


@pytest.mark.parametrize("kind", ALLOWED)
async def test_the_stream_starts_with_the_open_streams(kind: str) -> None:
    client = await async_client_for(kind)
    response = await client.get(STREAM)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    event = await first_event(response)
    assert event.event == "open"
    assert SECRET_VIEW in event.data
    assert "1 stream open right now" in event.data


@pytest.fixture
def fast_polls() -> Iterator[None]:
    DashboardStream.poll_interval, saved = 0.01, DashboardStream.poll_interval
    yield
    DashboardStream.poll_interval = saved


async def events_of(response: Any) -> AsyncIterator[MessageEvent]:
    parser = EventParser()
    async for chunk in response.streaming_content:
        for event in parser.feed(chunk):
            yield event


@pytest.mark.usefixtures("fast_polls")
async def test_the_stream_sends_a_snapshot_when_streams_open_and_close() -> None:
    client = await async_client_for("superuser")
    response = await client.get(STREAM)
    events = events_of(response)
    try:
        first = await asyncio.wait_for(anext(events), 10)
        assert "1 stream open right now" in first.data
        row = await StreamLog.objects.acreate(
            view_name="another", path="/a/", started_at=timezone.now(), outcome="open"
        )
        opened = await asyncio.wait_for(anext(events), 10)
        assert "2 streams open right now" in opened.data
        assert "another" in opened.data
        await StreamLog.objects.filter(pk=row.pk).aupdate(
            outcome="completed", duration=timedelta(seconds=3)
        )
        closed = await asyncio.wait_for(anext(events), 10)
        assert "1 stream open right now" in closed.data
        assert "another" not in closed.data
        assert [first.event, opened.event, closed.event] == ["open"] * 3
    finally:
        await response.streaming_content.aclose()  # type: ignore[attr-defined]


@pytest.mark.usefixtures("fast_polls")
async def test_the_stream_refreshes_the_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DashboardStream, "chart_interval", 0.0)
    await StreamLog.objects.acreate(
        view_name="v", path="/", started_at=timezone.now(), outcome="error", model="gpt-z"
    )
    client = await async_client_for("superuser")
    response = await client.get(STREAM)
    events = events_of(response)
    try:
        seen = [await asyncio.wait_for(anext(events), 10) for _ in range(2)]
        assert [event.event for event in seen] == ["open", "charts"]
        assert seen[1].data.count('class="sse-chart"') == 3
        assert "gpt-z" in seen[1].data
    finally:
        await response.streaming_content.aclose()  # type: ignore[attr-defined]


def revoke(made: User, how: str) -> None:
    """Take the dashboard away from ``made`` as an administrator (or the user) would."""
    if how == "logged out":
        Session.objects.all().delete()
    elif how == "deactivated":
        User.objects.filter(pk=made.pk).update(is_active=False)
    elif how == "no longer staff":
        User.objects.filter(pk=made.pk).update(is_staff=False)
    elif how == "permission removed":
        made.user_permissions.clear()
    else:  # "password changed": the session's hash no longer matches
        made.set_password("changed")
        made.save()


@pytest.mark.usefixtures("fast_polls")
@pytest.mark.parametrize(
    "how",
    ["logged out", "deactivated", "no longer staff", "permission removed", "password changed"],
)
async def test_the_stream_ends_when_its_user_loses_access(how: str) -> None:
    made = await sync_to_async(user)("staff-with-view")
    assert made is not None
    client = AsyncClient()
    await sync_to_async(client.login)(username=made.username, password="x")
    response = await client.get(STREAM)
    events = events_of(response)
    try:
        first = await asyncio.wait_for(anext(events), 10)
        assert SECRET_VIEW in first.data
        await sync_to_async(revoke)(made, how)
        # A new open stream changes the panel: a user still allowed would be sent it.
        await StreamLog.objects.acreate(
            view_name="opened-after", path="/a/", started_at=timezone.now(), outcome="open"
        )
        rest = await asyncio.wait_for(collect(events), 10)
        assert all("opened-after" not in event.data for event in rest)
    finally:
        await response.streaming_content.aclose()  # type: ignore[attr-defined]
    again = await client.get(STREAM)
    assert again.status_code == 403


async def collect(events: AsyncIterator[MessageEvent]) -> list[MessageEvent]:
    return [event async for event in events]
