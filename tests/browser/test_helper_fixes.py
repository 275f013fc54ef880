"""Regressions of the helper (sse.js) and the tags that an audit found, one test each.

The streams are scripted byte for byte (``SCRIPTS`` in tests/browser/views.py), so they
can send what SSEView never writes: an id-only event, an empty id, an id that no HTTP
header can carry. Each stream logs the requests it gets under the test's own key, and a
test reads that log from the server, which waits for the requests it expects.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest
from django.template import Context, Template, TemplateSyntaxError
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import seen, wait_closed
from tests.servers import LiveServer

# Long enough for any reconnect the helper schedules here (a Retry-After of 1 s at most).
WAIT = 10


@pytest.fixture
def key() -> str:
    """The test's own name for its streams' attempts and request log on the shared server."""
    return uuid.uuid4().hex


def fixes_page(server: LiveServer, name: str, key: str, **query: str) -> str:
    """browser/fixes_<name>.html, whose streams log under ``key``."""
    query = {"key": key, **query}
    return f"{server.url}/browser/page/fixes/{name}/?{urllib.parse.urlencode(query)}"


def stream_path(key: str, script: str) -> str:
    return f"/browser/fixes/{key}/{script}/"


def server_requests(server: LiveServer, key: str, count: int) -> list[dict[str, Any]]:
    """The requests the key's streams got, once there are ``count`` of them (or after
    WAIT seconds: then fewer). Playwright dispatches nothing meanwhile: a test with a
    route handler first waits through Playwright for the requests to have gone out."""
    url = f"{server.url}/browser/fixes/{key}/requests/?count={count}&wait={WAIT}"
    with urllib.request.urlopen(url, timeout=WAIT + 5) as reply:
        requests: list[dict[str, Any]] = json.load(reply)
    return requests


def resumed_from(request: dict[str, Any]) -> str | None:
    """The last event id a request resumes from: its Last-Event-ID header, or the
    ?lastEventId= that stands in for it."""
    header: str | None = request["last_event_id_header"]
    query: str | None = request["last_event_id_query"]
    return header if header is not None else query


def wait_for(page: Page, condition: str) -> None:
    page.wait_for_function(condition, timeout=WAIT * 1000)


# 1. The id a reconnect resumes from.


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        # An event with an id but no data is not dispatched, yet its id counts.
        ("id-only", "2"),
        # "id:" with nothing after it resets the last event id: no id, not the old "1".
        ("empty-id", None),
    ],
)
def test_a_fetch_reconnect_resumes_from_the_last_id_the_stream_set(
    page: Page, server: LiveServer, key: str, script: str, expected: str | None
) -> None:
    page.goto(fixes_page(server, "stream", key, script=script, transport="fetch"))
    first, second = server_requests(server, key, 2)[:2]
    assert resumed_from(first) is None
    assert (resumed_from(second) or None) == expected


def test_the_helpers_own_eventsource_reconnect_does_not_resume_from_a_reset_id(
    page: Page, server: LiveServer, key: str
) -> None:
    """The stream resets its id and ends; the browser's own reconnect fails (the network
    refuses it); the helper's new EventSource must not bring back the old id as
    ?lastEventId=."""
    attempts: list[str] = []

    def refuse_the_browsers_reconnect(route: Route) -> None:
        attempts.append(route.request.url)
        if len(attempts) == 2:
            route.abort("connectionrefused")
        else:
            route.continue_()

    page.route(f"**{stream_path(key, 'empty-id')}**", refuse_the_browsers_reconnect)
    page.goto(fixes_page(server, "stream", key, script="empty-id", retry="50"))
    # Through Playwright, which runs the route's handler meanwhile: the helper's stream opened.
    wait_for(page, "window.seen.filter((e) => e.name === 'open').length === 2")
    first, helpers = server_requests(server, key, 2)
    assert resumed_from(first) is None
    assert len(attempts) == 3
    assert {event["detail"]["transport"] for event in seen(page, "open")} == {"eventsource"}
    assert resumed_from(helpers) in (None, ""), "resumed from the id the stream had reset"


# 2. An id no header can carry.


def test_a_fetch_reconnect_after_a_non_latin1_id_reaches_the_server_with_that_id(
    page: Page, server: LiveServer, key: str
) -> None:
    page.goto(fixes_page(server, "stream", key, script="unicode-id", transport="fetch"))
    requests = server_requests(server, key, 2)
    errors = [event["detail"]["message"] for event in seen(page, "error")]
    assert len(requests) == 2, f"the reconnect never reached the server: {errors[:3]}"
    assert resumed_from(requests[1]) == "café-日"


# 3. A form POST that the server asked to send again.


def test_a_form_post_refused_with_retry_after_is_sent_again_with_its_fields(
    page: Page, server: LiveServer, key: str
) -> None:
    page.goto(fixes_page(server, "form", key, script="refuse-once"))
    page.click("#send")
    wait_closed(page, "form")
    [refusal] = seen(page, "error")
    assert (refusal["detail"]["status"], refusal["detail"]["willRetry"]) == (503, True)
    first, second = server_requests(server, key, 2)
    assert urllib.parse.parse_qs(first["body"])["prompt"] == ["hello world"]
    assert (second["content_type"], second["body"]) == (first["content_type"], first["body"])
    assert seen(page, "close")[-1]["detail"] == {"reason": "close-event"}


# 4. close_on when the closing event's data is not JSON.


def test_a_close_on_event_whose_data_is_not_json_still_closes(
    page: Page, server: LiveServer, key: str
) -> None:
    page.goto(fixes_page(server, "close_on", key, script="done-not-json"))
    # Closed, or still open when the stream's next event arrived.
    wait_for(
        page,
        """window.seen.some((e) => e.name === "close"
            || (e.name === "message" && e.detail.type === "after"))""",
    )
    assert [event["detail"] for event in seen(page, "close")] == [{"reason": "close-event"}]
    assert "after" not in [event["detail"]["type"] for event in seen(page, "message")]


# 5. A nested connection that is also a listener.


def test_a_nested_connection_that_listens_hears_only_its_own_stream(
    page: Page, server: LiveServer, key: str
) -> None:
    page.goto(fixes_page(server, "nested", key))
    # The outer connection swaps its listeners in page order: the outer one, then #inner.
    expect(page.locator("#outer-text")).to_have_text("OUTER")
    assert page.text_content("#inner") == "inner: none"


# 6. A listener added to an open EventSource connection.


def test_a_listener_added_to_an_open_eventsource_connection_gets_its_events(
    page: Page, server: LiveServer, key: str
) -> None:
    page.goto(fixes_page(server, "stream", key, script="late"))
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
    page.evaluate(
        """() => {
            const late = document.createElement("output");
            late.id = "late";
            late.textContent = "none";
            late.setAttribute("data-sse-on", "late");
            document.getElementById("conn").appendChild(late);
        }"""
    )
    with urllib.request.urlopen(f"{server.url}/browser/fixes/{key}/release/", timeout=WAIT):
        pass
    # The stream sends "late", then an unnamed event for #text.
    expect(page.locator("#text")).to_have_text("sentinel")
    assert seen(page, "open")[0]["detail"]["transport"] == "eventsource"
    assert page.text_content("#late") == "LATE"


# 7. The button that submitted a form.


def test_a_form_post_sends_the_name_and_value_of_the_button_that_submitted_it(
    page: Page, server: LiveServer, key: str
) -> None:
    page.goto(fixes_page(server, "form", key, script="done"))
    page.click("#send")
    wait_closed(page, "form")
    [request] = server_requests(server, key, 1)
    assert urllib.parse.parse_qs(request["body"]) == {
        "prompt": ["hello world"],
        "action": ["regenerate"],
    }


# 8. start() after close().


def test_start_after_close_connects_an_element_again(
    page: Page, server: LiveServer, key: str
) -> None:
    page.goto(fixes_page(server, "stream", key, script="idle"))
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
    page.evaluate("DjangoSSE.close(document.getElementById('conn'))")
    wait_closed(page, "conn")
    page.evaluate("DjangoSSE.start(document.getElementById('conn'))")
    assert len(server_requests(server, key, 2)) == 2, "start() sent no new request"
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
    assert [event["detail"] for event in seen(page, "close")] == [{"reason": "stopped"}]


# 9. A bare {% sse_listen %}.


def test_a_bare_sse_listen_swaps_in_the_text_of_unnamed_events(
    page: Page, server: LiveServer, key: str
) -> None:
    page.goto(fixes_page(server, "listen", key))
    # #bare comes first in the page, so it is swapped before #named.
    expect(page.locator("#named")).to_have_text("PLAIN")
    assert page.text_content("#bare") == "PLAIN"


# 10. Format fields are the data's own.


def test_a_format_takes_only_the_datas_own_fields(page: Page, server: LiveServer, key: str) -> None:
    page.goto(fixes_page(server, "format", key))
    wait_for(page, "document.getElementById('format').textContent !== 'none'")
    assert page.text_content("#format") == "||"


# 11. retry=0.


def test_retry_0_makes_the_first_reconnect_immediate(
    page: Page, server: LiveServer, key: str
) -> None:
    page.goto(fixes_page(server, "stream", key, script="fail-once", transport="fetch", retry="0"))
    wait_for(page, "window.seen.some((e) => e.name === 'error')")
    first = seen(page, "error")[0]["detail"]
    assert (first["status"], first["willRetry"]) == (500, True)
    assert first["delay"] == 0
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")


# 12. MIME types are case-insensitive.


def test_a_fetch_stream_accepts_an_upper_case_content_type(
    page: Page, server: LiveServer, key: str
) -> None:
    page.goto(fixes_page(server, "stream", key, script="upper-case-type", transport="fetch"))
    wait_for(
        page,
        """document.getElementById("text").textContent !== "none"
            || document.getElementById("conn").dataset.sseState === "closed" """,
    )
    errors = [event["detail"]["message"] for event in seen(page, "error")]
    assert page.get_attribute("#conn", "data-sse-state") == "open", errors
    assert page.text_content("#text") == "hi"


# The tags: a body or headers that the helper could not send are a template error.


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("body", {"a set", "is not JSON"}),
        ("headers", {"X-Name": "日本"}),
        ("headers", {"X-Name": "a\r\nX-Injected: 1"}),
    ],
    ids=["body-not-json", "header-not-latin1", "header-with-crlf"],
)
def test_sse_connect_refuses_a_body_or_headers_that_cannot_be_sent(
    option: str, value: object
) -> None:
    template = Template("{% load django_sse %}<div{% sse_connect '/s/' " + option + "=value %}>")
    with pytest.raises(TemplateSyntaxError) as raised:
        template.render(Context({"value": value}))
    assert "sse_connect" in str(raised.value)
    assert option in str(raised.value)
