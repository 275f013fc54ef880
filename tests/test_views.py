"""SSEView in-process, through Django's async test client and request factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import django
import pytest
from asgiref.sync import sync_to_async
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required, permission_required, user_passes_test
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.test import AsyncClient, AsyncRequestFactory, Client, override_settings
from django.urls import path
from django.utils.decorators import method_decorator

from django_sse import SSEView
from django_sse.protocol import MAX_LAST_EVENT_ID
from django_sse.response import WSGI_REFUSAL, SSEResponse
from tests.sse import collect
from tests.views import CounterView

pytestmark = pytest.mark.django_db


async def call(view: type[SSEView], request: HttpRequest) -> Any:
    """Run an async class-based view; django-stubs types as_view() as sync."""
    return await view.as_view()(request)  # type: ignore[misc]


async def test_stream_through_the_async_client() -> None:
    response = await AsyncClient().get("/counter/", {"n": "2"})
    assert response.status_code == 200
    _, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert [(e.data, e.id) for e in events] == [("0", "0"), ("1", "1")]


async def test_gzip_middleware_leaves_streams_alone() -> None:
    response = await AsyncClient().get("/counter/", headers={"Accept-Encoding": "gzip"})
    raw, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert response["Content-Encoding"] == "identity"
    assert b"data: 0\n" in raw
    assert len(events) == 3


async def test_retry_option() -> None:
    response = await AsyncClient().get("/retry/")
    raw, _ = await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert raw.startswith(b"retry: 2500\n\n")


async def test_function_view_with_sse_response() -> None:
    response = await AsyncClient().get("/function/")
    raw, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert raw.startswith(b"retry: 1000\n\n")
    assert [e.json() for e in events] == [{"n": 0}, {"n": 1}, {"n": 2}]


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({"Last-Event-ID": "7"}, {}, "7"),
        ({}, {"lastEventId": "8"}, "8"),
        ({"Last-Event-ID": "7"}, {"lastEventId": "8"}, "7"),
        ({}, {}, None),
        ({"Last-Event-ID": "x" * (MAX_LAST_EVENT_ID + 1)}, {}, None),
        ({}, {"lastEventId": "é" * (MAX_LAST_EVENT_ID // 2 + 1)}, None),
        ({"Last-Event-ID": "x" * MAX_LAST_EVENT_ID}, {}, "x" * MAX_LAST_EVENT_ID),
        # EventSource sends UTF-8, which reaches Django as Latin-1 text.
        ({"Last-Event-ID": "café-日".encode().decode("latin-1")}, {}, "café-日"),
        # Latin-1 bytes that are not UTF-8 (what fetch() sends for "été") stay as sent.
        ({"Last-Event-ID": "\xe9t\xe9"}, {}, "\xe9t\xe9"),
        ({}, {"lastEventId": "café-日"}, "café-日"),
        # An id no event can have, which only a hand-made query carries (servers refuse
        # NUL in a header).
        ({}, {"lastEventId": "7\x00; DROP"}, None),
    ],
)
async def test_last_event_id(headers: dict[str, str], query: dict[str, str], expected: Any) -> None:
    response = await AsyncClient().get("/last-event-id/", query, headers=headers)
    _, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert events[0].json() == {"last_event_id": expected}


async def test_post_allowed_when_listed_and_csrf_protected() -> None:
    client = AsyncClient(enforce_csrf_checks=True)
    assert (
        await client.post("/post-echo/", {"a": 1}, content_type="application/json")
    ).status_code == 403
    client = AsyncClient()
    response = await client.post("/post-echo/", {"a": 1}, content_type="application/json")
    _, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert [(e.event, e.json()) for e in events] == [("echo", {"a": 1})]


async def test_get_only_by_default() -> None:
    response = await AsyncClient().post("/counter/")
    assert response.status_code == 405
    assert response["Allow"] == "GET, OPTIONS"


async def test_denied_permission_is_403_before_streaming() -> None:
    response = await AsyncClient().get("/forbidden/")
    assert response.status_code == 403
    assert not response.streaming


async def test_login_required_redirects_anonymous_users() -> None:
    response = await AsyncClient().get("/login-required/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/login-required/"


# Transactional: the async ORM writes from another thread than the test's transaction,
# so a rolled-back test would leave the user behind for later ones.
@pytest.mark.django_db(transaction=True)
async def test_login_required_streams_for_a_logged_in_user(django_user_model: Any) -> None:
    user = await django_user_model.objects.acreate(username="ada")
    client = AsyncClient()
    await sync_to_async(client.force_login)(user)
    response = await client.get("/login-required/")
    assert response.status_code == 200
    _, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert len(events) == 3


async def test_raise_exception_gives_403_instead_of_redirect() -> None:
    class Private(SSEView):
        login_required = True
        raise_exception = True

    request = AsyncRequestFactory().get("/private/")
    request.user = AnonymousUser()
    with pytest.raises(PermissionDenied):
        await call(Private, request)


async def test_stream_must_be_an_async_generator() -> None:
    class Wrong(SSEView):
        def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            return ["not", "async"]

    with pytest.raises(TypeError, match="must be an async generator"):
        await call(Wrong, AsyncRequestFactory().get("/"))


async def test_a_view_without_stream_fails_clearly() -> None:
    response = await call(SSEView, AsyncRequestFactory().get("/"))
    assert isinstance(response, SSEResponse)
    _raw, events = await collect(aiter(response))
    assert events[-1].event == "error"


async def test_options_from_class_attributes_reach_the_response() -> None:
    class Tuned(SSEView):
        keep_alive = 3
        retry = 10
        max_duration = 60

        async def stream(
            self, request: HttpRequest, *args: Any, **kwargs: Any
        ) -> AsyncIterator[Any]:
            yield "x"

    response = await call(Tuned, AsyncRequestFactory().get("/"))
    assert isinstance(response, SSEResponse)
    life = response._life
    assert (life._keep_alive, life._opening, life._max_duration) == (3.0, b"retry: 10\n\n", 60)


def test_the_sync_test_client_is_wsgi_and_gets_the_refusal(caplog: Any) -> None:
    response = Client().get("/counter/")
    assert response.status_code == 500
    assert response.content.decode() == WSGI_REFUSAL
    assert "ASGI server" in caplog.text


async def test_a_sync_has_permission_is_named_not_awaited() -> None:
    class Forgot(CounterView):
        def has_permission(self, request: HttpRequest) -> bool:  # type: ignore[override]
            return False

    with pytest.raises(TypeError, match=r"Forgot\.has_permission\(\) must be async def"):
        await call(Forgot, AsyncRequestFactory().get("/"))


# Django's own access decorators, applied to SSEView the way Django documents for
# class-based views; they have async paths from Django 5.1.
DECORATORS = {
    "login_required": login_required,
    "permission_required": permission_required("auth.view_user", raise_exception=True),
    "user_passes_test": user_passes_test(lambda user: user.is_staff),
    "staff_member_required": staff_member_required,
}


def guarded(decorator: Any) -> Any:
    """CounterView with ``decorator`` on its dispatch(), as Django documents for class-based
    views; a subclass, since method_decorator() decorates the class it is given."""

    class Guarded(CounterView):
        pass

    return method_decorator(decorator, "dispatch")(Guarded).as_view()


# The admin's URLs for staff_member_required's login page.
urlpatterns = [
    path("admin/", admin.site.urls),
    *(path(f"{name}/", guarded(decorator)) for name, decorator in DECORATORS.items()),
    path("login_required_as_view/", login_required(CounterView.as_view())),
]


@pytest.mark.skipif(django.VERSION < (5, 1), reason="Django's decorators are async from 5.1")
@pytest.mark.django_db(transaction=True)
@override_settings(ROOT_URLCONF=__name__)
@pytest.mark.parametrize(
    ("decorator", "who", "status"),
    [
        ("login_required", "anonymous", 302),
        ("login_required", "user", 200),
        ("login_required_as_view", "anonymous", 302),
        ("login_required_as_view", "user", 200),
        ("permission_required", "anonymous", 403),
        ("permission_required", "user", 403),
        ("permission_required", "staff", 200),
        ("user_passes_test", "anonymous", 302),
        ("user_passes_test", "user", 302),
        ("user_passes_test", "staff", 200),
        ("staff_member_required", "anonymous", 302),
        ("staff_member_required", "user", 302),
        ("staff_member_required", "staff", 200),
    ],
)
async def test_djangos_decorators_on_dispatch_guard_a_stream(
    decorator: str, who: str, status: int, django_user_model: Any
) -> None:
    client = AsyncClient()
    if who != "anonymous":
        user = await django_user_model.objects.acreate(
            username=who, is_staff=who == "staff", is_superuser=who == "staff"
        )
        await sync_to_async(client.force_login)(user)
    response = await client.get(f"/{decorator}/")
    assert response.status_code == status
    assert response.streaming is (status == 200)
    if status == 200:
        _, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
        assert len(events) == 3
