"""The helper (sse.js) at the edges of what servers send: Retry-After in each of its
forms (and forms it does not have), and a server that ends every stream at once with
``retry: 0``. The streams are the scripted ones of tests/browser/test_helper_fixes.py."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import django
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import page_url, seen, wait_closed
from tests.browser.test_helper_fixes import WAIT, fixes_page, server_requests, wait_for
from tests.servers import LiveServer


@pytest.fixture
def key() -> str:
    """The test's own name for its streams' attempts and request log on the shared server."""
    return uuid.uuid4().hex


def ended_requests(server: LiveServer, key: str, count: int) -> list[dict[str, Any]]:
    """The key's requests once there are ``count`` and the server has ended every
    response (the client left), or after WAIT seconds: then some are not ``ended``."""
    url = f"{server.url}/browser/fixes/{key}/requests/?count={count}&ended=1&wait={WAIT}"
    with urllib.request.urlopen(url, timeout=WAIT + 5) as reply:
        requests: list[dict[str, Any]] = json.load(reply)
    return requests


@pytest.fixture
def page_far_from_gmt(browser: Browser) -> Iterator[Page]:
    """A page whose browser keeps New York's time: a date read as local time is off by hours."""
    context = browser.new_context(timezone_id="America/New_York")
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


# 1. Retry-After: delay-seconds (0 is "now"), an HTTP-date in each of its three forms, and
# values that are neither, which count as no Retry-After. A POST is sent again only when
# the server said when.


@pytest.mark.parametrize(
    ("script", "delays"),
    [
        ("retry-after-0", (0, 0)),
        ("retry-after-imf-date", (1, 2000)),
        ("retry-after-rfc850-date", (1, 2000)),
        ("retry-after-asctime-date", (1, 2000)),
    ],
)
def test_a_post_refused_with_a_retry_after_is_sent_again_when_the_server_said(
    page_far_from_gmt: Page, server: LiveServer, key: str, script: str, delays: tuple[int, int]
) -> None:
    page = page_far_from_gmt
    page.goto(fixes_page(server, "form", key, script=script))
    page.click("#send")
    wait_closed(page, "form")
    [refusal] = [event["detail"] for event in seen(page, "error")]
    assert (refusal["status"], refusal["willRetry"]) == (503, True)
    shortest, longest = delays
    assert shortest <= refusal["delay"] <= longest
    first, second = server_requests(server, key, 2)
    assert urllib.parse.parse_qs(second["body"]) == urllib.parse.parse_qs(first["body"])
    assert seen(page, "close")[-1]["detail"] == {"reason": "close-event"}


@pytest.mark.parametrize(
    "script", ["retry-after-fraction", "retry-after-negative", "retry-after-twice"]
)
def test_a_post_refused_with_a_retry_after_that_is_no_delay_nor_date_is_not_sent_again(
    page: Page, server: LiveServer, key: str, script: str
) -> None:
    page.goto(fixes_page(server, "form", key, script=script))
    page.click("#send")
    wait_closed(page, "form")
    [refusal] = [event["detail"] for event in seen(page, "error")]
    assert (refusal["status"], refusal["willRetry"]) == (503, False)
    assert seen(page, "close")[-1]["detail"] == {"reason": "failed"}
    assert len(server_requests(server, key, 2)) == 1


# 2. retry: 0, and every stream ends before its first event.


@pytest.mark.parametrize("transport", ["eventsource", "fetch"])
def test_a_stream_that_ends_at_once_with_retry_0_is_retried_with_backoff(
    page: Page, server: LiveServer, key: str, transport: str
) -> None:
    """Chromium's own EventSource, and a plain fetch() loop, would ask again hundreds of
    times a second: each ended stream is one more failure, with a growing delay."""
    query = {"transport": "fetch"} if transport == "fetch" else {}
    page.goto(fixes_page(server, "stream", key, script="empty-retry-0", retry="0", **query))
    wait_for(page, "window.seen.filter((e) => e.name === 'error').length >= 4")
    delays = [event["detail"].get("delay", 0) for event in seen(page, "error")[:4]]
    # At least 100 ms after an open stream, then doubled per failure with equal jitter.
    assert delays[0] >= 100
    assert delays == sorted(delays)
    assert delays[-1] >= 400
    # One request per ended stream, and the one now scheduled: nothing in between.
    assert len(server_requests(server, key, 0)) <= 5


@pytest.mark.parametrize("transport", ["eventsource", "fetch"])
def test_a_quiet_stream_that_lasted_is_not_a_failure(
    page: Page, server: LiveServer, key: str, transport: str
) -> None:
    """A stream that sends no event but stayed open for a second (a quiet channel that
    max_duration or a proxy ends) worked: each reconnect waits the server's retry, not
    a delay that grows to 30 s."""
    query = {"transport": "fetch"} if transport == "fetch" else {}
    page.goto(fixes_page(server, "stream", key, script="quiet-while", **query))
    # Each stream lasts 1.2 s on the server's side.
    assert len(server_requests(server, key, 4)) == 4
    errors = [event["detail"] for event in seen(page, "error")[:3]]
    if transport == "fetch":
        # The server's retry, raised to the floor after an open stream: never doubled.
        assert [error["delay"] for error in errors] == [100, 100, 100]
    else:
        # Chromium's EventSource reconnects by itself, after the server's retry.
        assert [error["message"] for error in errors] == ["connection lost"] * 3


# 3. What a demanding page does.

RAW_EVENTS = [
    ("message", "after a BOM"),
    ("message", "caf\ufffd and \ufffd\ufffd in no UTF-8"),
    ("message", "日"),
    ("message", "a\nb\nc"),
    ("message", ""),
    ("message", "\x00nul"),
    ("done", "x"),
]


@pytest.mark.parametrize("transport", ["eventsource", "fetch"])
def test_bytes_that_are_not_utf_8_and_every_line_end_read_alike_with_both_transports(
    page: Page, server: LiveServer, key: str, transport: str
) -> None:
    """The stream of RAW["bytes"] in tests/browser/views.py: the fetch parser must give
    what Chromium's own EventSource gives."""
    query = {"transport": "fetch"} if transport == "fetch" else {}
    page.goto(fixes_page(server, "raw", key, script="bytes", **query))
    wait_closed(page, "conn")
    messages = [
        (event["detail"]["type"], event["detail"]["data"]) for event in seen(page, "message")
    ]
    assert messages == RAW_EVENTS
    assert [event["detail"] for event in seen(page, "close")] == [{"reason": "close-event"}]


@pytest.mark.parametrize("transport", ["eventsource", "fetch"])
def test_a_reconnect_answered_with_204_ends_the_stream_for_good(
    page: Page, server: LiveServer, key: str, transport: str
) -> None:
    query = {"transport": "fetch"} if transport == "fetch" else {}
    page.goto(fixes_page(server, "stream", key, script="then-no-content", **query))
    wait_closed(page, "conn")
    assert page.text_content("#text") == "one"
    assert [event["detail"] for event in seen(page, "close")] == [{"reason": "no-content"}]
    assert [request["attempt"] for request in server_requests(server, key, 2)][:2] == [1, 2]


ADD_ELEMENTS = """([url, method, transport, count]) => {
    for (let n = 0; n < count; n++) {
        const element = document.createElement("div");
        element.className = "shared";
        element.setAttribute("data-sse-url", url);
        element.setAttribute("data-sse-method", method);
        element.setAttribute("data-sse-transport", transport);
        element.setAttribute("data-sse-on", "message");
        document.body.appendChild(element);
    }
}"""


@pytest.mark.parametrize(
    ("method", "transport"), [("get", "eventsource"), ("get", "fetch"), ("post", "fetch")]
)
def test_elements_sharing_a_url_stream_on_their_own_and_leave_nothing_open(
    page: Page, server: LiveServer, key: str, method: str, transport: str
) -> None:
    """Three elements on one URL: each has its stream; removing two leaves the third
    open, and once it is removed too, the server has no response left to write."""
    page.goto(page_url(server, "blank"))
    page.wait_for_function("window.DjangoSSE !== undefined")
    page.evaluate(ADD_ELEMENTS, [f"/browser/fixes/{key}/plain/", method, transport, 3])
    shared = page.locator(".shared")
    for n in range(3):
        expect(shared.nth(n)).to_have_text("PLAIN")
    page.evaluate(
        """() => {
            window.removed = [...document.querySelectorAll(".shared")].slice(1);
            window.removed.forEach((element) => element.remove());
        }"""
    )
    # A removed element's sse:close bubbles no further than the element: not to document.
    page.wait_for_function("window.removed.every((e) => e.dataset.sseState === 'closed')")
    expect(shared.first).to_have_attribute("data-sse-state", "open")
    page.evaluate("document.querySelector('.shared').remove()")
    requests = ended_requests(server, key, 3)
    assert [(request["script"], request["method"]) for request in requests] == [
        ("plain", method.upper())
    ] * 3
    if django.VERSION >= (5, 0):  # Django 4.2 does not see a client leave a response
        assert all(request["ended"] for request in requests), "a removed element's stream is open"


@pytest.mark.parametrize("transport", ["eventsource", "fetch"])
def test_an_element_put_back_after_it_left_opens_one_new_stream(
    page: Page, server: LiveServer, key: str, transport: str
) -> None:
    query = {"transport": "fetch"} if transport == "fetch" else {}
    page.goto(fixes_page(server, "stream", key, script="plain", **query))
    expect(page.locator("#text")).to_have_text("PLAIN")
    page.evaluate("window.removed = document.getElementById('conn'); window.removed.remove()")
    page.wait_for_function("window.removed.dataset.sseState === 'closed'")
    [first] = ended_requests(server, key, 1)
    if django.VERSION >= (5, 0):  # Django 4.2 does not see a client leave a response
        assert first["ended"], "the removed element's stream is still open"
    page.evaluate("document.body.prepend(window.removed)")
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
    assert len(server_requests(server, key, 2)) == 2
