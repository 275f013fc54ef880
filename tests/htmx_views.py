"""Streams and pages for the htmx tests (tests/browser/test_htmx.py): htmx 2 and 4 as
django-htmx ships them, beside the project's own helper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from django_sse import FINISHED, Event, SSEView, render_event
from django_sse.htmx import render_partial
from tests.llm.views import ScenarioChatView

app_name = "htmx"

# Fragments that must arrive byte for byte: lines, quotes, non-ASCII, and text that
# would end a script if it were ever put in one.
FRAGMENTS = [
    "héllo wörld ✓ 日本語",
    "first line\nsecond line",
    "say \"hi\" & 'bye'",
    "</script><script>window.pwned = 'fragment'</script>",
]
ROWS = {1: "one", 2: "two", 3: "three"}
FRAGMENT = "htmx/fragment.html"


class FragmentsView(SSEView):
    """htmx 2: rendered fragments as named events, a note, then FINISHED. With
    ?partial=1 (Django 6.0+), each fragment is a template partial instead."""

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        template = "htmx/partials.html#fragment" if "partial" in request.GET else FRAGMENT
        for n, text in enumerate(FRAGMENTS, start=1):
            yield await render_event(template, {"n": n, "text": text}, event="fragment", id=str(n))
        yield Event(data="<em>noted</em>", event="note")
        yield FINISHED


class PartialsView(SSEView):
    """htmx 4: each row replaced where its <hx-partial> says, then FINISHED."""

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        for pk, name in ROWS.items():
            yield await render_partial(
                "htmx/row.html", {"pk": pk, "name": f"{name} (live)"}, target=f"#row-{pk}"
            )
        yield FINISHED


@ensure_csrf_cookie
def page(request: HttpRequest, version: int) -> HttpResponse:
    fragments = reverse("htmx:fragments") + ("?partial=1" if "partial" in request.GET else "")
    context = {
        "rows": [{"pk": pk, "name": name} for pk, name in ROWS.items()],
        "fragments_url": fragments,
    }
    return render(request, f"htmx/htmx{version}.html", context)


urlpatterns = [
    path("fragments/", FragmentsView.as_view(), name="fragments"),
    path("partials/", PartialsView.as_view(), name="partials"),
    path("chat/<str:scenario>/", ScenarioChatView.as_view(output_format="html"), name="chat"),
    path("page/<int:version>/", page, name="page"),
]
