"""htmx 2 and htmx 4, as django-htmx ships them, in Chromium against real streams:
fragments byte for byte, <hx-partial> at its target, named events, FINISHED, and a chat
answer that arrives as text and never as markup. django-htmx's middleware runs in front
of every stream, and the project's own helper on the same page."""

from __future__ import annotations

from collections.abc import Iterator

import django
import pytest
from django.template.loader import render_to_string
from playwright.sync_api import ConsoleMessage, Page

from tests.browser.conftest import record_requests, wait_closed
from tests.htmx_views import FRAGMENTS, ROWS
from tests.llm.upstream import Upstream, recorded_text
from tests.servers import LiveServer

pytest.importorskip("django_htmx", reason="django-htmx does not install on this Python/Django")


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """The tests' project with an OpenAI-format upstream for the htmx chat."""
    with (
        Upstream.in_thread() as upstream,
        LiveServer("uvicorn", env={"SSE_TEST_UPSTREAM": upstream.url}) as live,
    ):
        yield live


@pytest.fixture
def console(page: Page) -> list[str]:
    problems: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    page.on("console", record)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


@pytest.mark.parametrize(
    "template",
    [
        "htmx/fragment.html",
        pytest.param(
            "htmx/partials.html#fragment",
            marks=pytest.mark.skipif(django.VERSION < (6, 0), reason="partials are Django 6.0+"),
        ),
    ],
)
def test_htmx_2_swaps_template_fragments_byte_for_byte_and_stops_when_finished(
    page: Page, server: LiveServer, console: list[str], template: str
) -> None:
    requests = record_requests(page, path="/htmx/fragments/")
    page.add_init_script(
        """document.addEventListener("htmx:sseBeforeMessage", (event) => {
            (window.received = window.received || []).push(event.detail.data);
        });"""
    )
    partial = "?partial=1" if "#" in template else ""
    page.goto(f"{server.url}/htmx/page/2/{partial}")
    page.wait_for_function("window.sseClosed === true")
    wait_closed(page, "helper")

    rendered = [
        render_to_string(template, {"n": n, "text": text})
        for n, text in enumerate(FRAGMENTS, start=1)
    ]
    assert page.evaluate("window.received")[: len(rendered)] == rendered
    texts = page.eval_on_selector_all("#fragments article", "els => els.map(e => e.textContent)")
    assert texts == [f"{n} {text}" for n, text in enumerate(FRAGMENTS, start=1)]
    assert page.inner_html("#note") == "<em>noted</em>"
    assert page.evaluate("window.pwned") is None
    # sse-close="finished" closed it on FINISHED: no reconnection at all.
    assert len(requests) == 1
    assert console == []


def test_htmx_4_puts_each_partial_at_its_target_and_stops_when_finished(
    page: Page, server: LiveServer, console: list[str]
) -> None:
    requests = record_requests(page, path="/htmx/partials/")
    page.goto(f"{server.url}/htmx/page/4/")
    page.wait_for_function("(window.closes || []).includes('live:message')")
    cells = page.eval_on_selector_all(
        "tbody tr", "rows => rows.map(r => r.id + ' ' + r.textContent)"
    )
    assert cells == [f"row-{pk} {pk}{name} (live)" for pk, name in ROWS.items()]
    assert len(requests) == 1
    assert console == []


def test_htmx_4_streams_a_chat_answer_as_text_and_never_runs_its_markup(
    page: Page, server: LiveServer, console: list[str]
) -> None:
    page.goto(f"{server.url}/htmx/page/4/")
    page.click("#chat button")
    page.wait_for_function("(window.closes || []).includes('chat:message')")
    assert page.text_content("#answer") == recorded_text("markup")
    assert (
        page.eval_on_selector_all("#answer img, #answer script, #answer div", "e => e.length") == 0
    )
    assert page.evaluate("window.pwned") is None
    assert console == []
