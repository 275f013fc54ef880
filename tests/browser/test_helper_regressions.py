"""More regressions of the helper (sse.js), on the scripted streams of
tests/browser/test_helper_fixes.py: an element re-rendered in place by an htmx morph,
a server event named like EventSource's own open event, a stream that ended for good
whose element moves, a fetch GET in a hidden tab, an element that was on the page for
no time at all, and the parser fed an empty chunk."""

from __future__ import annotations

import urllib.request
import uuid

import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import page_url, record_requests, seen, wait_closed
from tests.browser.test_helper_fixes import fixes_page, server_requests, stream_path
from tests.servers import LiveServer


@pytest.fixture
def key() -> str:
    """The test's own name for its streams' attempts and request log on the shared server."""
    return uuid.uuid4().hex


IDS = "document.getElementById('ids').textContent.trim().split(/ +/).filter(Boolean)"
SET_HIDDEN = """(hidden) => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def add_sentinel(page: Page, url: str) -> None:
    """An element on the "plain" stream, added after what the test did before: once its
    text is PLAIN, the helper has handled what came first, and sent its requests."""
    page.evaluate(
        """(url) => {
            const sentinel = document.createElement("div");
            sentinel.id = "sentinel";
            sentinel.setAttribute("data-sse-url", url);
            sentinel.setAttribute("data-sse-on", "message");
            document.body.appendChild(sentinel);
        }""",
        url,
    )


def test_an_htmx_morph_that_changes_the_url_moves_the_element_to_the_new_stream(
    page: Page, server: LiveServer, key: str
) -> None:
    """htmx 4's innerMorph keeps the element and changes its data-sse-url: the helper
    must leave the old stream and follow the new one, once."""
    pytest.importorskip("django_htmx", reason="htmx 4 comes from django-htmx's static files")
    page.goto(fixes_page(server, "morph", key, script="idle"))
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
    page.click("#next")
    expect(page.locator("#text")).to_have_text("PLAIN")
    requests = server_requests(server, key, 2)
    assert [request["script"] for request in requests] == ["idle", "plain"]
    assert [event["detail"]["reason"] for event in seen(page, "close")] == ["changed"]
    assert [event["detail"]["url"] for event in seen(page, "open")] == [
        stream_path(key, "idle"),
        stream_path(key, "plain"),
    ]


def test_an_htmx_morph_to_the_same_stream_keeps_it_and_its_state(
    page: Page, server: LiveServer, key: str
) -> None:
    """The morph drops data-sse-state, which the server's HTML does not have: the
    helper puts it back, and keeps its stream."""
    pytest.importorskip("django_htmx", reason="htmx 4 comes from django-htmx's static files")
    page.goto(fixes_page(server, "morph", key, script="idle"))
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
    page.click("#same")
    page.wait_for_function("window.swaps === 1")
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
    assert [event["name"] for event in seen(page)] == ["open"]
    assert len(server_requests(server, key, 1)) == 1


def test_attributes_that_do_not_change_leave_the_stream_alone(
    page: Page, server: LiveServer, key: str
) -> None:
    page.goto(fixes_page(server, "stream", key, script="idle"))
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
    page.evaluate(
        """() => {
            const conn = document.getElementById("conn");
            conn.setAttribute("data-sse-url", conn.getAttribute("data-sse-url"));
            conn.setAttribute("title", "not a stream attribute");
        }"""
    )
    add_sentinel(page, stream_path(key, "plain"))
    expect(page.locator("#sentinel")).to_have_text("PLAIN")
    assert [request["script"] for request in server_requests(server, key, 2)] == ["idle", "plain"]
    assert seen(page, "close") == []


def test_a_listener_whose_event_names_change_hears_the_new_ones(
    page: Page, server: LiveServer, key: str
) -> None:
    """EventSource delivers only the names it was asked for: a morph that makes a
    listener listen for another event must ask for that one too."""
    page.goto(fixes_page(server, "stream", key, script="late"))
    expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
    page.evaluate("document.getElementById('text').setAttribute('data-sse-on', 'late')")
    # Seen by the observer before the stream goes on: a sentinel opens after it.
    add_sentinel(page, stream_path(key, "plain"))
    expect(page.locator("#sentinel")).to_have_text("PLAIN")
    with urllib.request.urlopen(f"{server.url}/browser/fixes/{key}/release/", timeout=10):
        pass
    # The stream sends "late", then an unnamed event.
    page.wait_for_function(
        "window.seen.some((e) => e.name === 'message' && e.detail.data === 'sentinel')"
    )
    assert page.text_content("#text") == "LATE"


def test_an_element_that_gains_a_url_connects(page: Page, server: LiveServer, key: str) -> None:
    page.goto(page_url(server, "blank"))
    page.evaluate(
        """(url) => {
            const placeholder = document.createElement("div");
            placeholder.id = "late";
            placeholder.setAttribute("data-sse-on", "message");
            document.body.appendChild(placeholder);
            // In a later task: the observer has seen the element without a URL.
            setTimeout(() => placeholder.setAttribute("data-sse-url", url), 0);
        }""",
        stream_path(key, "plain"),
    )
    expect(page.locator("#late")).to_have_text("PLAIN")


def test_a_server_event_named_open_is_delivered_once_and_only_as_itself(
    page: Page, server: LiveServer, key: str
) -> None:
    """EventSource fires its own "open" event when it connects: that must not reach the
    page as an event of the stream (with no data, which is not JSON)."""
    page.goto(fixes_page(server, "named_open", key))
    expect(page.locator("#text")).to_have_text("1")
    assert [event["detail"]["message"] for event in seen(page, "error")] == []
    messages = [event["detail"] for event in seen(page, "message")]
    assert [(m["type"], m["data"]) for m in messages] == [("open", '{"n": 1}')]
    assert seen(page, "open")[0]["detail"]["transport"] == "eventsource"


@pytest.mark.parametrize(
    ("page_name", "script", "how"),
    [
        ("close_on", "done", "close_on"),
        ("stream", "idle", "DjangoSSE.close"),
        ("stream", "idle", "DjangoSSE.stop"),
    ],
)
def test_a_stream_closed_for_good_stays_closed_when_its_element_moves(
    page: Page, server: LiveServer, key: str, page_name: str, script: str, how: str
) -> None:
    """Sorting a list, hx-preserve or a morph moves elements (removed and added in one
    task): a stream that close_on, close() or stop() ended must not open again."""
    requests = record_requests(page, path=stream_path(key, script))
    page.goto(fixes_page(server, page_name, key, script=script))
    if how != "close_on":
        expect(page.locator("#conn")).to_have_attribute("data-sse-state", "open")
        page.evaluate(f"{how}(document.getElementById('conn'))")
    wait_closed(page, "conn")
    page.evaluate("document.body.appendChild(document.getElementById('conn'))")
    add_sentinel(page, stream_path(key, "plain"))
    expect(page.locator("#sentinel")).to_have_text("PLAIN")
    assert len(requests) == 1
    assert page.get_attribute("#conn", "data-sse-state") == "closed"


def test_a_get_read_with_fetch_pauses_in_a_hidden_tab_too(page: Page, server: LiveServer) -> None:
    """pause_hidden is for every GET (a GET resumes from its last id), not only for one
    that EventSource reads."""
    resumed_from: list[str | None] = []

    def record(request: Request) -> None:
        if "/numbers/" in request.url:
            resumed_from.append(request.headers.get("last-event-id"))

    page.on("request", record)
    stream = "/browser/numbers/?n=100000"
    page.goto(page_url(server, "resume", stream=stream, pause="1", transport="fetch"))
    page.wait_for_function(f"{IDS}.length >= 10")
    page.evaluate(SET_HIDDEN, True)
    expect(page.locator("#ids")).to_have_attribute("data-sse-state", "paused")
    paused_at = len(page.evaluate(IDS))
    page.evaluate(SET_HIDDEN, False)
    page.wait_for_function(f"{IDS}.length >= {paused_at + 20}")
    ids = [int(n) for n in page.evaluate(IDS)]
    assert ids == list(range(len(ids)))
    assert len(resumed_from) == 2
    assert resumed_from[0] is None
    assert int(resumed_from[1] or "-1") >= 9, "resumed from no id"


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_element_added_and_removed_at_once_sends_no_request(
    page: Page, server: LiveServer, key: str, method: str
) -> None:
    """A POST element connects as soon as it is on the page, sending its body: one that
    left in the same task (never rendered) must not have sent it."""
    page.goto(page_url(server, "blank"))
    requests = record_requests(page, path=f"/browser/fixes/{key}/")
    page.evaluate(
        """([url, method]) => {
            const element = document.createElement("div");
            element.setAttribute("data-sse-url", url);
            element.setAttribute("data-sse-method", method);
            element.setAttribute("data-sse-body", '{"prompt": "costly"}');
            document.body.appendChild(element);
            element.remove();
        }""",
        [stream_path(key, "done"), method],
    )
    add_sentinel(page, stream_path(key, "plain"))
    expect(page.locator("#sentinel")).to_have_text("PLAIN")
    assert requests == [server.url + stream_path(key, "plain")]


def test_an_empty_chunk_between_cr_and_lf_is_one_line_break(page: Page, server: LiveServer) -> None:
    page.goto(page_url(server, "blank"))
    page.wait_for_function("window.DjangoSSE !== undefined")
    events = page.evaluate(
        """() => {
            const events = [];
            const parser = new DjangoSSE.EventParser((event) => events.push(event.data));
            for (const chunk of ["data: a\\r", "", "\\ndata: b\\n\\n"]) parser.feed(chunk);
            return events;
        }"""
    )
    assert events == ["a\nb"]
