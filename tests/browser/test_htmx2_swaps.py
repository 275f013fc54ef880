"""The helper's elements under real htmx 2 and 4 swaps (django-htmx's htmx-2.js and
htmx-4.js), checked on the server: an element swapped out (outerHTML on it, innerHTML
around it) ends its stream, one swapped in opens exactly one, and one that hx-preserve
keeps keeps its stream as it was."""

from __future__ import annotations

import urllib.parse
import urllib.request
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import page_url, seen, server_outcome
from tests.browser.test_helper_fixes import server_requests, stream_path
from tests.browser.test_helper_regressions import add_sentinel
from tests.servers import LiveServer

pytest.importorskip("django_htmx", reason="htmx comes from django-htmx's static files")

# Each test runs with htmx 2 and with htmx 4, which moves a preserved element with
# moveBefore() and names its events differently.
pytestmark = pytest.mark.parametrize("htmx", ["2", "4"])


@pytest.fixture
def key() -> str:
    """The test's own name for its streams' request log on the shared server."""
    return uuid.uuid4().hex


@pytest.mark.parametrize("transport", ["eventsource", "fetch"])
@pytest.mark.parametrize("button", ["outer", "inner"])
def test_an_element_htmx_2_swaps_out_ends_its_stream_on_the_server(
    page: Page, server: LiveServer, button: str, transport: str, htmx: str
) -> None:
    token = uuid.uuid4().hex
    query = {"stream": f"/idle/?probe={token}", "htmx": htmx}
    if transport == "fetch":
        query["transport"] = "fetch"
    page.goto(page_url(server, "htmx2_swaps", **query))
    expect(page.locator("#text")).to_have_text("hello")
    page.click(f"#{button}")
    expect(page.locator("#gone")).to_have_text("swapped")
    assert page.locator("#conn").count() == 0
    # The server's generator saw the client leave: nothing is left reading.
    assert server_outcome(server, token) == "client_disconnected"


def test_an_element_htmx_2_swaps_in_opens_exactly_one_stream(
    page: Page, server: LiveServer, key: str, htmx: str
) -> None:
    page.goto(
        page_url(
            server,
            "htmx2_swaps",
            stream=stream_path(key, "idle"),
            next=stream_path(key, "plain"),
            htmx=htmx,
        )
    )
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
    page.click("#next")
    expect(page.locator("#new-text")).to_have_text("PLAIN")
    page.wait_for_function("window.settled === 1")
    # A second element on the same stream, added after the swap settled: once it has its
    # text, any second request of the swapped-in element would be in the log before it.
    add_sentinel(page, stream_path(key, "plain"))
    expect(page.locator("#sentinel")).to_have_text("PLAIN")
    requests = server_requests(server, key, 3)
    assert [request["script"] for request in requests] == ["idle", "plain", "plain"]
    assert [event["target"] for event in seen(page, "open")] == ["conn", "new", "sentinel"]


@pytest.mark.parametrize("transport", ["eventsource", "fetch"])
def test_an_element_htmx_2_preserves_keeps_its_stream(
    page: Page, server: LiveServer, key: str, transport: str, htmx: str
) -> None:
    query = {"stream": stream_path(key, "late"), "htmx": htmx}
    if transport == "fetch":
        query["transport"] = "fetch"
    page.goto(page_url(server, "htmx2_swaps", **query))
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
    page.evaluate("document.getElementById('conn').original = true")
    page.click("#preserve")
    expect(page.locator("#around")).to_have_text("kept")
    page.wait_for_function("window.settled === 1")
    assert page.evaluate("document.getElementById('conn').original") is True
    # The stream goes on where it was: what the server sends now arrives.
    with urllib.request.urlopen(f"{server.url}/browser/fixes/{key}/release/", timeout=10):
        pass
    page.wait_for_function(
        "window.seen.some((e) => e.name === 'message' && e.detail.data === 'sentinel')"
    )
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
    assert len(server_requests(server, key, 1)) == 1
    assert [event["name"] for event in seen(page) if event["name"] != "message"] == ["open"]
