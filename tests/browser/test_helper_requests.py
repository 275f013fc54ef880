"""What the helper (sse.js) sends and reads for a fetch stream: the CSRF token after
Django rotated it (a login without a page reload), header names that differ only in
case, and only the start of an error response's body."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator

import django
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import page_url, seen, wait_closed
from tests.browser.test_helper_fixes import WAIT, fixes_page, server_requests
from tests.servers import LiveServer


@pytest.fixture
def key() -> str:
    """The test's own name for its streams' request log on the shared server."""
    return uuid.uuid4().hex


# 1. The CSRF token after Django rotated it.

LOG_IN = """async ([username, password]) => {
    const form = document.getElementById("login");
    form.username.value = username;
    form.password.value = password;
    const response = await fetch(form.action, { method: "POST", body: new FormData(form) });
    return response.url;
}"""
CSRF_COOKIE = "document.cookie.match(/(?:^|; )csrftoken=([^;]*)/)?.[1] ?? null"


def log_in_without_reload(page: Page, server: LiveServer) -> None:
    """Logs a new staff user in through the admin's login form, with fetch()."""
    username = f"user-{uuid.uuid4().hex[:12]}"
    server.create_user(username, "a password")
    landed = page.evaluate(LOG_IN, [username, "a password"])
    assert landed.endswith("/admin/"), f"the login failed: {landed}"


def test_post_streams_send_the_token_django_rotated_at_a_login_without_reload(
    page: Page, server: LiveServer
) -> None:
    """The token rendered into the page is stale after the login: the csrftoken cookie,
    which changed, is the current one, for the header and for a form's own field (which
    Django reads first)."""
    page.goto(page_url(server, "csrf_login"))
    wait_closed(page, "element")
    assert page.text_content("#element-echo") == "from the element"
    before = page.evaluate(CSRF_COOKIE)
    log_in_without_reload(page, server)
    assert page.evaluate(CSRF_COOKIE) not in (None, before), "the login rotated no token"

    page.evaluate("DjangoSSE.start(document.getElementById('element'))")
    page.wait_for_function("window.seen.filter((e) => e.name === 'close').length === 2")
    page.click("#send")
    wait_closed(page, "chat")
    assert [event["detail"] for event in seen(page, "error")] == []
    assert page.text_content("#echo") == "from the form"
    assert [event["detail"]["reason"] for event in seen(page, "close")] == [
        "close-event",
        "close-event",
        "close-event",
    ]


@pytest.fixture(scope="module", params=["httponly", "sessions"])
def unreadable_token_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """A server whose CSRF token page scripts cannot read: an HttpOnly cookie, or the
    session's."""
    env = {"DJANGO_SETTINGS_MODULE": "tests.browser.csrf_settings", "SSE_TEST_CSRF": request.param}
    with LiveServer("uvicorn", env=env) as server:
        yield server


def test_post_streams_send_the_rendered_token_when_no_cookie_can_be_read(
    page: Page, unreadable_token_server: LiveServer
) -> None:
    """With CSRF_COOKIE_HTTPONLY or CSRF_USE_SESSIONS, the rendered token is the only one:
    it is sent, also when a readable csrftoken cookie was left from before the project
    changed the setting (Django never updates that one)."""
    server = unreadable_token_server
    page.context.add_cookies([{"name": "csrftoken", "value": "x" * 32, "url": server.url}])
    page.goto(page_url(server, "csrf_login"))
    wait_closed(page, "element")
    page.click("#send")
    wait_closed(page, "chat")
    assert [event["detail"] for event in seen(page, "error")] == []
    assert page.text_content("#element-echo") == "from the element"
    assert page.text_content("#echo") == "from the form"


SWAP_IN_FRAGMENT = """async (url) => {
    document.getElementById("slot").innerHTML = await (await fetch(url)).text();
}"""


def test_post_streams_read_the_token_field_of_their_form_or_the_newest_one(
    page: Page, unreadable_token_server: LiveServer
) -> None:
    """No cookie and no data-sse-csrf-token: the token comes from a csrfmiddlewaretoken
    field. After a login the page's first field (the login form's) is stale; a form
    swapped in since sends its own, and an element the newest field on the page."""
    server = unreadable_token_server
    page.goto(page_url(server, "csrf_fields"))
    wait_closed(page, "element")
    assert page.text_content("#element-echo") == "from the element"
    log_in_without_reload(page, server)
    page.evaluate(SWAP_IN_FRAGMENT, f"{server.url}/browser/page/csrf_fields_fragment/")
    expect(page.locator("#chat")).to_have_attribute("data-sse-state", "idle")

    page.click("#send")
    wait_closed(page, "chat")
    page.evaluate("DjangoSSE.start(document.getElementById('element'))")
    page.wait_for_function("window.seen.filter((e) => e.name === 'close').length === 3")
    assert [event["detail"] for event in seen(page, "error")] == []
    assert page.text_content("#echo") == "from the form"
    assert [event["detail"]["reason"] for event in seen(page, "close")] == ["close-event"] * 3


# 2. Header names that differ only in case.


def test_a_header_given_in_another_case_replaces_the_helpers_default(
    page: Page, server: LiveServer, key: str
) -> None:
    """data-sse-headers' content-type and accept replace the helper's Content-Type and
    Accept rather than joining them into one comma-separated value."""
    page.goto(fixes_page(server, "headers", key))
    wait_closed(page, "post")
    [request] = [entry for entry in server_requests(server, key, 1) if entry["method"] == "POST"]
    assert request["content_type"] == "application/json; charset=utf-8"
    assert request["accept"] == "text/event-stream, */*;q=0.1"
    assert request["body"] == '{"n": 1}'


def test_the_id_the_stream_set_replaces_a_last_event_id_header_in_any_case(
    page: Page, server: LiveServer, key: str
) -> None:
    """A last-event-id in data-sse-headers starts the stream; once the stream has set an
    id, a reconnect sends that one alone."""
    page.goto(fixes_page(server, "headers", key))
    requests = [entry for entry in server_requests(server, key, 3) if entry["method"] == "GET"]
    assert [request["last_event_id_header"] for request in requests] == ["7", "2"]


def test_the_csrf_token_replaces_a_csrf_header_in_any_case(
    page: Page, server: LiveServer, key: str
) -> None:
    page.goto(fixes_page(server, "headers", key))
    wait_closed(page, "csrf")
    assert [event["detail"] for event in seen(page, "error") if event["target"] == "csrf"] == []
    assert page.text_content("#echo") == "through"


# 3. An error response's body.


def test_only_the_start_of_an_error_body_is_read(page: Page, server: LiveServer, key: str) -> None:
    """The error page never ends: the helper reports its first 200 characters, decoded,
    and cancels the rest, which ends the response on the server."""
    page.goto(fixes_page(server, "error", key, script="endless-error"))
    wait_closed(page, "conn")
    [error] = seen(page, "error")
    assert error["detail"] == {
        "message": "HTTP 500: é" + "x" * 199,
        "status": 500,
        "willRetry": False,
    }
    assert seen(page, "close")[-1]["detail"] == {"reason": "failed"}
    if django.VERSION >= (5, 0):  # Django 4.2 does not see a client leave a response
        url = f"{server.url}/browser/fixes/{key}/requests/?count=1&ended=1&wait={WAIT}"
        with urllib.request.urlopen(url, timeout=WAIT + 5) as reply:
            [request] = json.load(reply)
        assert request["ended"] is True
