"""render_event(): templates and partials as events, with the ORM in their context."""

from __future__ import annotations

import logging
from typing import Any

import django
import pytest
from django.test import AsyncClient

from django_sse import render_event
from tests.sse import collect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def users(django_user_model: Any) -> dict[str, Any]:
    # Names of their own: async tests elsewhere may leave an "ada" behind on some Djangos.
    return {
        name: await django_user_model.objects.acreate(username=f"render-{name}")
        for name in ("bob", "ada")
    }


async def test_a_template_with_a_queryset_renders_off_the_loop(users: dict[str, Any]) -> None:
    response = await AsyncClient().get("/rendered/")
    raw, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    (event,) = events
    assert (event.event, event.id) == ("users", "1")
    # Byte for byte what the template renders: the queryset's rows in order, autoescaped,
    # the request's context processors run (request.path), every line break kept across
    # the several data: lines it went out as.
    assert event.data == (
        '<ul id="users">\n'
        f'  <li data-pk="{users["ada"].pk}">render-ada</li>\n'
        f'  <li data-pk="{users["bob"].pk}">render-bob</li>\n'
        "</ul>\n"
        '<p class="who">/rendered/ &lt;b&gt;&amp;&lt;/b&gt;</p>\n'
    )
    assert raw.count(b"data: ") == 6


@pytest.mark.skipif(django.VERSION < (6, 0), reason="template partials are Django 6.0+")
@pytest.mark.usefixtures("users")
async def test_a_template_partial_renders_alone() -> None:
    response = await AsyncClient().get("/rendered/", {"partial": "1"})
    _, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    (event,) = events
    assert event.data.startswith('<tr id="user-')
    assert "<table>" not in event.data


async def test_a_missing_template_ends_the_stream_as_an_error_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="django_sse"):
        response = await AsyncClient().get("/rendered/", {"missing": "1"})
        raw, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert [e.event for e in events] == ["error"]
    assert b"no-such-template" not in raw  # nothing of the failure reaches the client
    assert b"Traceback" not in raw
    assert response.stats.outcome == "error"  # type: ignore[attr-defined]
    assert "render/no-such-template.html" in caplog.text


async def test_render_event_builds_an_event_without_a_request() -> None:
    event = await render_event("render/users.html", {"users": [], "note": "x"}, event="e")
    assert event.event == "e"
    assert event.id is None
    assert '<ul id="users">' in event.data
