"""FINISHED in Chromium: a browser's own EventSource and the JavaScript helper (both
transports) read the stream to its end and stop for good on the 204 that answers their
reconnection."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.browser.conftest import page_url, record_requests, seen, wait_closed
from tests.servers import LiveServer


def test_every_browser_client_stops_for_good(page: Page, server: LiveServer) -> None:
    requests = record_requests(page, path="/finishing/")
    page.goto(page_url(server, "finished"))
    wait_closed(page, "native")
    wait_closed(page, "fetch")
    # EventSource.CLOSED: the browser gave up reconnecting after the 204.
    page.wait_for_function("window.raw.state === 2")

    assert page.evaluate("window.raw.data") == ["a", "b", "finished"]
    closes = {event["target"]: event["detail"]["reason"] for event in seen(page, "close")}
    # The helper knows FINISHED: it closes on the event, without reconnecting at all.
    assert closes == {"native": "finished", "fetch": "finished"}
    finished = [
        event["target"]
        for event in seen(page, "message")
        if event["detail"].get("type") == "finished"
    ]
    assert sorted(finished) == ["fetch", "native"]
    by_client = {
        via: sum(f"via={via}" in url for url in requests) for via in ("raw", "native", "fetch")
    }
    # A browser's own EventSource: the stream, then the reconnection answered 204.
    assert by_client == {"raw": 2, "native": 1, "fetch": 1}
