"""The helper follows a CSRF token Django rotated while the page stays in the cookie the
project named (CSRF_COOKIE_NAME, which the tag writes into data-sse-csrf-cookie), and
reads no cookie where the tag says none can hold the token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import page_url, seen, wait_closed
from tests.browser.test_helper_requests import log_in_without_reload
from tests.servers import LiveServer

CHANGE_FOREIGN = "document.cookie = 'csrftoken=' + 'g'.repeat(32) + '; path=/'"
READ_COOKIE = """(name) => {
    const pair = document.cookie.split("; ").find((pair) => pair.startsWith(name + "="));
    return pair ? pair.slice(name.length + 1) : null;
}"""


def add_foreign_cookie(page: Page, server: LiveServer) -> None:
    """Another app's cookie on the same host under Django's default name, which changes
    while the page stays (CHANGE_FOREIGN): never Django's token where the project named
    another cookie, or none."""
    page.context.add_cookies([{"name": "csrftoken", "value": "f" * 32, "url": server.url}])


def csrf_server(**env: str) -> Iterator[LiveServer]:
    settings = {"DJANGO_SETTINGS_MODULE": "tests.browser.csrf_settings", **env}
    with LiveServer("uvicorn", env=settings) as server:
        yield server


# A name as Angular's convention has it, and one with characters a RegExp reads as syntax.
@pytest.fixture(scope="module", params=["XSRF-TOKEN", "csrf+token.v2"])
def cookie_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def named_cookie_server(cookie_name: str) -> Iterator[LiveServer]:
    """The project names the cookie, and the header as Angular does (X-XSRF-TOKEN)."""
    yield from csrf_server(
        SSE_TEST_CSRF_COOKIE=cookie_name, SSE_TEST_CSRF_HEADER="HTTP_X_XSRF_TOKEN"
    )


def post_both_again(page: Page) -> None:
    """The element's POST stream started again, and the form's: both are admitted."""
    page.evaluate("DjangoSSE.start(document.getElementById('element'))")
    page.wait_for_function("window.seen.filter((e) => e.name === 'close').length === 2")
    page.click("#send")
    wait_closed(page, "chat")
    assert [event["detail"] for event in seen(page, "error")] == []
    assert page.text_content("#element-echo") == "from the element"
    assert page.text_content("#echo") == "from the form"


def test_post_streams_send_the_token_rotated_in_a_custom_csrf_cookie(
    page: Page, named_cookie_server: LiveServer, cookie_name: str
) -> None:
    """After a login without a reload, the token in the project's own cookie is sent, for
    the header and a form's own field, and a changed csrftoken cookie is ignored."""
    server = named_cookie_server
    add_foreign_cookie(page, server)
    page.goto(page_url(server, "csrf_login"))
    wait_closed(page, "element")
    assert page.get_attribute("#chat", "data-sse-csrf-cookie") == cookie_name
    before = page.evaluate(READ_COOKIE, cookie_name)
    assert before is not None, "the page set no cookie of that name"
    log_in_without_reload(page, server)
    assert page.evaluate(READ_COOKIE, cookie_name) not in (None, before), "no token rotated"
    page.evaluate(CHANGE_FOREIGN)

    post_both_again(page)


def test_without_the_request_the_token_is_read_from_the_named_cookie(
    page: Page, named_cookie_server: LiveServer
) -> None:
    """A page rendered without the request context processor has no token in it: the
    helper reads it from the cookie the tag names, and sends it in the project's header."""
    server = named_cookie_server
    add_foreign_cookie(page, server)
    page.goto(page_url(server, "csrf_no_request"))
    wait_closed(page, "element")
    assert [event["detail"] for event in seen(page, "error")] == []
    assert page.text_content("#element-echo") == "without the request"


@pytest.fixture(scope="module")
def sessions_server() -> Iterator[LiveServer]:
    yield from csrf_server(SSE_TEST_CSRF="sessions")


def test_no_cookie_is_read_when_the_token_lives_in_the_session(
    page: Page, sessions_server: LiveServer
) -> None:
    """With CSRF_USE_SESSIONS the tag names no cookie: a csrftoken cookie that changes
    while the page stays is not Django's, and the rendered token is sent."""
    server = sessions_server
    add_foreign_cookie(page, server)
    page.goto(page_url(server, "csrf_login"))
    wait_closed(page, "element")
    assert page.get_attribute("#chat", "data-sse-csrf-cookie") is None
    page.evaluate(CHANGE_FOREIGN)

    post_both_again(page)
