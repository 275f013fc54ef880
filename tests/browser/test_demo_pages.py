"""The demo's live pages, built with the template tags, in Chromium under runserver."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import wait_closed
from tests.servers import LiveServer, demo_runserver

IDS = "document.getElementById('ids').textContent.trim().split(/ +/)"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with demo_runserver(tmp_path_factory.mktemp("demo") / "db.sqlite3") as server:
        yield server


def test_example_1_ticks_with_the_tags_alone(page: Page, demo: LiveServer) -> None:
    page.goto(f"{demo.url}/examples/basic/")
    expect(page.locator("#tick")).to_have_text(re.compile(r"^#\d+ at \d{4}-\d\d-\d\dT"))
    assert page.locator(".panel[data-sse-state=open]").count() == 1


def test_example_4_drop_resumes_with_no_gap(page: Page, demo: LiveServer) -> None:
    page.goto(f"{demo.url}/examples/production/")
    page.wait_for_function(f"{IDS}.length >= 2")
    page.click("#drop button")
    expect(page.locator("#drop-result")).to_have_text("dropped by the server")
    expect(page.locator("#reconnects")).to_have_text("1")
    page.wait_for_function(f"{IDS}.indexOf('↻') >= 0 && {IDS}.indexOf('↻') < {IDS}.length - 2")

    received = page.evaluate(IDS)
    numbers = [int(n) for n in received if n != "↻"]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert received.count("↻") == 1
    expect(page.locator("#gaps")).to_have_text("gaps: none")


def test_example_4_failing_stream_shows_its_error_event(page: Page, demo: LiveServer) -> None:
    page.goto(f"{demo.url}/examples/production/")
    assert page.get_attribute("#failing", "data-sse-state") == "idle"
    page.click("#failing button")
    wait_closed(page, "failing")
    lines = page.locator("#failing-log code").all_text_contents()
    assert lines[:3] == [f'message id={n} data={{"n":{n}}}' for n in range(3)]
    assert lines[3].startswith('error id=2 data={"message":"the upstream feed went away"}')
    assert len(lines) == 4
