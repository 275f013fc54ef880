"""Pages built with the template tags, in Chromium: the DOM follows the stream."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    page_url,
    record_requests,
    seen,
    server_outcome,
    wait_closed,
)
from tests.browser.views import TRICKY
from tests.servers import LiveServer


def test_named_events_and_json_update_their_listeners_and_done_closes(
    page: Page, server: LiveServer
) -> None:
    token = uuid.uuid4().hex
    page.goto(page_url(server, "events", stream=f"/browser/kinds/?probe={token}"))
    wait_closed(page, "conn")

    assert page.text_content("#tick") == "#1 one"
    assert page.text_content("#message") == "n=2"
    assert page.inner_html("#log") == "<li>tick:1</li><li>message:2</li>"
    assert page.text_content("#done") == "total 3"
    messages = [event["detail"] for event in seen(page, "message")]
    assert [(m["type"], m["json"], m["lastEventId"]) for m in messages] == [
        ("tick", {"n": 1, "label": "one"}, "1"),
        ("note", {"text": "a note"}, "2"),
        ("message", {"n": 2}, "3"),
        ("done", {"total": 3}, "4"),
    ]
    assert [event["name"] for event in seen(page)] == ["open"] + ["message"] * 4 + ["close"]
    assert seen(page, "close")[0]["detail"] == {"reason": "close-event"}
    # Closing on "done" really closed the connection: the server saw the client leave.
    assert server_outcome(server, token) == "client_disconnected"


def test_the_helper_script_is_included_once_per_page(page: Page, server: LiveServer) -> None:
    page.goto(page_url(server, "events", stream="/browser/kinds/"))
    assert page.locator("script[src$='django_sse/sse.js']").count() == 1


def test_unicode_multiline_and_markup_arrive_intact_and_never_run(
    page: Page, server: LiveServer
) -> None:
    page.goto(page_url(server, "tricky"))
    for element in ("native", "fetch", "post"):
        wait_closed(page, element)

    # The wire turns CRLF into separate data lines; the client joins them with LF.
    expected = [re.sub(r"\r\n?", "\n", data) for data in TRICKY]
    for transport in ("native", "fetch", "post"):
        assert page.text_content(f"#{transport}-text") == "|".join(expected) + "|"
    for transport in ("native", "fetch"):
        items = page.locator(f"#{transport}-html li")
        assert items.all_text_contents() == expected
        assert page.locator(f"#{transport}-html script, #{transport}-html img").count() == 0
    assert page.evaluate("window.pwned") is None
    assert {event["detail"]["transport"] for event in seen(page, "open")} == {
        "eventsource",
        "fetch",
    }


def test_template_values_cannot_inject_markup_or_script(page: Page, server: LiveServer) -> None:
    hostile = "\"'><script>window.pwned='attr'</script><b id=injected x='"
    page.goto(page_url(server, "hostile", hostile=hostile))
    page.wait_for_selector("#hostile[data-sse-state=closed]", state="attached")

    for name in ("target", "format", "on", "close-on", "events"):
        assert page.get_attribute("#hostile", f"data-sse-{name}") == hostile
    for name in ("target", "format", "on"):
        assert page.get_attribute("#listener", f"data-sse-{name}") == hostile
    assert page.get_attribute("#hostile", "data-sse-url") == f"/counter/?q={hostile}"
    assert page.get_attribute("script[src$='sse.js']", "nonce") == hostile
    assert page.locator("#injected").count() == 0
    assert page.evaluate("window.pwned") is None


def test_a_nonce_lets_the_helper_run_under_a_strict_csp(page: Page, server: LiveServer) -> None:
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    page.goto(f"{server.url}/browser/page/csp/")
    # Playwright's own string evaluation would break this CSP; a locator does not.
    expect(page.locator("#count")).to_have_text("2")
    assert not [text for text in violations if "Content Security Policy" in text]


def test_an_element_that_leaves_the_page_closes_its_stream(page: Page, server: LiveServer) -> None:
    token = uuid.uuid4().hex
    page.goto(page_url(server, "removal", stream=f"/idle/?probe={token}"))
    page.wait_for_function("document.getElementById('idle').textContent === 'hello'")
    page.evaluate(
        """() => {
            const element = document.getElementById("idle");
            element.addEventListener("sse:close", (event) => {
                window.closeReason = event.detail.reason;
            });
            element.remove();
        }"""
    )
    page.wait_for_function("window.closeReason === 'removed'")
    assert server_outcome(server, token) == "client_disconnected"


def test_no_content_ends_the_stream_for_good(page: Page, server: LiveServer) -> None:
    requests = record_requests(page, path="/no-content/")
    page.goto(page_url(server, "no_content"))
    wait_closed(page, "fetch")
    wait_closed(page, "native")
    reasons = {event["target"]: event["detail"]["reason"] for event in seen(page, "close")}
    # EventSource does not tell its page the status: the helper asks again with fetch().
    assert reasons == {"fetch": "no-content", "native": "no-content"}
    assert len(requests) == 3
