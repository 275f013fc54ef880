"""Reconnection in the browser: across a server restart, and around a hidden tab."""

from __future__ import annotations

import signal
import uuid

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


def test_a_fetch_stream_retries_server_errors_with_growing_jittered_delays(
    page: Page, server: LiveServer
) -> None:
    attempts = record_requests(page, path="/flaky/")
    stream = f"/browser/flaky/?key={uuid.uuid4().hex}&failures=3&n=5"
    page.goto(page_url(server, "resume", stream=stream, transport="fetch", retry="100"))
    wait_closed(page, "ids")

    assert received(page) == list(range(5))
    errors = [event["detail"] for event in seen(page, "error")]
    assert [(e["status"], e["willRetry"]) for e in errors] == [(503, True)] * 3
    assert errors[0]["message"] == "HTTP 503: try again later"
    # 100 ms, then doubled per failure with equal jitter: within [100, 200] and [200, 400].
    first, second, third = (e["delay"] for e in errors)
    assert first == 100
    assert 100 <= second <= 200
    assert 200 <= third <= 400
    assert len(attempts) == 4


@pytest.mark.parametrize("transport", ["eventsource", "fetch"])
def test_too_many_streams_is_retried_when_the_server_says(
    page: Page, server: LiveServer, transport: str
) -> None:
    attempts = record_requests(page, path="/flaky/")
    stream = f"/browser/flaky/?key={uuid.uuid4().hex}&failures=2&status=429&retry_after=1&n=3"
    query = {"transport": "fetch"} if transport == "fetch" else {}
    page.goto(page_url(server, "resume", stream=stream, retry="100", **query))
    wait_closed(page, "ids")

    assert received(page) == list(range(3))
    errors = [event["detail"] for event in seen(page, "error")]
    # EventSource keeps a refusal's status to itself: the helper asks again with
    # fetch(), which reads the status and the Retry-After.
    assert [(e["status"], e["willRetry"], e["delay"]) for e in errors] == [(429, True, 1000)] * (
        1 if transport == "eventsource" else 2
    )
    assert errors[0]["message"] == "HTTP 429: try again later"
    assert len(attempts) == 3


def test_a_get_answered_with_a_client_error_is_not_retried(page: Page, server: LiveServer) -> None:
    attempts = record_requests(page, path="/no-such-stream/")
    page.goto(page_url(server, "resume", stream="/no-such-stream/", transport="fetch"))
    wait_closed(page, "ids")
    [error] = seen(page, "error")
    assert (error["detail"]["status"], error["detail"]["willRetry"]) == (404, False)
    assert seen(page, "close")[0]["detail"] == {"reason": "failed"}
    assert len(attempts) == 1


@pytest.mark.parametrize("transport", ["eventsource", "fetch"])
def test_a_get_form_streams_with_its_fields_and_each_submit_starts_afresh(
    page: Page, server: LiveServer, transport: str
) -> None:
    query = {"transport": "fetch"} if transport == "fetch" else {}
    page.goto(page_url(server, "search", **query))
    assert page.get_attribute("#search", "data-sse-state") == "idle"
    page.click("#search button")
    wait_closed(page, "search")
    page.fill("#search input", "2")
    page.click("#search button")
    page.wait_for_function(f"{IDS}.length === 5")
    wait_closed(page, "search")
    assert received(page) == [0, 1, 2, 0, 1]
