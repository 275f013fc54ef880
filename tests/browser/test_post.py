"""POST streams: a body, Django's CSRF protection, and never a second POST on its own."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.browser.conftest import page_url, record_requests, seen, wait_closed
from tests.servers import LiveServer


def test_json_body_and_form_posts_stream_with_the_csrf_token(
    page: Page, server: LiveServer
) -> None:
    posts = record_requests(page, method="POST")
    page.goto(f"{server.url}/browser/page/post/")
    wait_closed(page, "json-post")
    assert page.text_content("#json-echo") == "json body ✓ 7"
    assert page.get_attribute("#chat", "data-sse-state") == "idle"

    page.click("#send")
    wait_closed(page, "chat")
    assert page.text_content("#echo") == "héllo </script>"
    assert [event["target"] for event in seen(page, "error")] == []
    assert {event["target"]: event["detail"]["reason"] for event in seen(page, "close")} == {
        # Without close_on, the POST stream ends with the response and is not sent again.
        "json-post": "completed",
        "chat": "close-event",
    }
    assert len(posts) == 2


def test_a_post_without_a_csrf_token_gets_403_and_is_not_retried(
    page: Page, server: LiveServer
) -> None:
    posts = record_requests(page, method="POST")
    page.goto(page_url(server, "no_token"))
    wait_closed(page, "bare")
    [error] = seen(page, "error")
    assert error["detail"]["status"] == 403
    assert error["detail"]["willRetry"] is False
    assert seen(page, "close")[0]["detail"] == {"reason": "failed"}
    assert len(posts) == 1
