"""Reconnection in the browser: across a server restart, and around a hidden tab."""

from __future__ import annotations

import signal

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import page_url, record_requests, seen, wait_closed
from tests.servers import LiveServer

IDS = "document.getElementById('ids').textContent.trim().split(/ +/).filter(Boolean)"


def received(page: Page) -> list[int]:
    return [int(n) for n in page.evaluate(IDS)]


@pytest.mark.parametrize("transport", ["eventsource", "fetch"])
def test_the_page_resumes_after_a_server_restart_with_no_gap(page: Page, transport: str) -> None:
    first = LiveServer("uvicorn").start()
    query = {"transport": "fetch"} if transport == "fetch" else {}
    try:
        page.goto(page_url(first, "resume", stream="/browser/numbers/?n=400", **query))
        page.wait_for_function(f"{IDS}.length >= 50")
        first.send_signal(signal.SIGTERM)
    finally:
        first.stop()
    with LiveServer("uvicorn", port=first.port):
        wait_closed(page, "ids")
        assert received(page) == list(range(400))
    assert seen(page, "close")[-1]["detail"] == {"reason": "close-event"}
    assert len(seen(page, "open")) >= 2
    assert {event["detail"]["transport"] for event in seen(page, "open")} == {transport}


def test_a_hidden_tab_pauses_and_resumes_with_one_request(page: Page, server: LiveServer) -> None:
    streams = record_requests(page, path="/numbers/")
    page.goto(page_url(server, "resume", stream="/browser/numbers/?n=100000", pause="1"))
    page.wait_for_function(f"{IDS}.length >= 10")

    set_hidden = """(hidden) => {
        Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    page.evaluate(set_hidden, True)
    assert page.get_attribute("#ids", "data-sse-state") == "paused"
    paused_at = len(received(page))
    # Shown twice in a row, as browsers do around focus changes: still one new request.
    page.evaluate(set_hidden, False)
    page.evaluate(set_hidden, False)
    page.wait_for_function(f"{IDS}.length >= {paused_at + 20}")

    ids = received(page)
    assert ids == list(range(len(ids)))
    assert len(streams) == 2
    assert "lastEventId=" in streams[1]
