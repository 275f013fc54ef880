"""The demo's live pages, built with the template tags, in Chromium under runserver."""

from __future__ import annotations

import importlib.util
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import room_works_across_tabs, wait_closed
from tests.servers import LiveServer, demo_runserver

IDS = "document.getElementById('ids').textContent.trim().split(/ +/)"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo") / "db.sqlite3"


@pytest.fixture(scope="module")
def demo(demo_db: Path) -> Iterator[LiveServer]:
    with demo_runserver(demo_db) as server:
        yield server


def test_example_1_ticks_with_the_tags_alone(page: Page, demo: LiveServer) -> None:
    page.goto(f"{demo.url}/examples/basic/")
    expect(page.locator("#tick")).to_have_text(re.compile(r"^#\d+ at \d{4}-\d\d-\d\dT"))
    assert page.locator(".panel[data-sse-state=open]").count() == 1


def test_example_4_drop_resumes_with_no_gap(page: Page, demo: LiveServer) -> None:
    page.goto(f"{demo.url}/examples/production/")
    page.wait_for_function(f"{IDS}.length >= 2")
    page.click("#drop button")
    expect(page.locator("#drop-result")).to_have_text("dropped by the server")
    expect(page.locator("#reconnects")).to_have_text("1")
    page.wait_for_function(f"{IDS}.indexOf('↻') >= 0 && {IDS}.indexOf('↻') < {IDS}.length - 2")

    received = page.evaluate(IDS)
    numbers = [int(n) for n in received if n != "↻"]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert received.count("↻") == 1
    expect(page.locator("#gaps")).to_have_text("gaps: none")


def test_example_4_failing_stream_shows_its_error_event(page: Page, demo: LiveServer) -> None:
    page.goto(f"{demo.url}/examples/production/")
    assert page.get_attribute("#failing", "data-sse-state") == "idle"
    page.click("#failing button")
    wait_closed(page, "failing")
    lines = page.locator("#failing-log code").all_text_contents()
    assert lines[:3] == [f'message id={n} data={{"n":{n}}}' for n in range(3)]
    assert lines[3].startswith('error id=2 data={"message":"the upstream feed went away"}')
    assert len(lines) == 4


def test_example_5_a_message_posted_in_one_tab_appears_in_every_tab(
    browser: Browser, demo: LiveServer, demo_db: Path
) -> None:
    # The command is another process, which the in-memory layer cannot reach: the
    # server finds its event in history within a poll interval.
    room_works_across_tabs(
        browser,
        f"{demo.url}/examples/room/browsers/",
        "<b>hello</b> & welcome",
        {"DJANGO_SETTINGS_MODULE": "demo.settings", "DEMO_DB": str(demo_db)},
    )


def log_in_in_another_tab(context: BrowserContext, demo: LiveServer) -> None:
    """Log in to the admin, as the index suggests, in a new tab of ``context``. Django
    rotates the CSRF token: the token rendered into a page opened before is then refused."""
    username = f"user-{secrets.token_hex(4)}"
    demo.create_user(username, "demo-pass-2", superuser=True)
    admin = context.new_page()
    admin.goto(f"{demo.url}/admin/login/")
    admin.fill("#id_username", username)
    admin.fill("#id_password", "demo-pass-2")
    admin.click("input[type=submit]")
    admin.wait_for_url(f"{demo.url}/admin/")


def test_the_page_code_posts_after_a_login_in_another_tab(
    browser: Browser, demo: LiveServer
) -> None:
    context = browser.new_context()
    try:
        room, production, chat = (context.new_page() for _ in range(3))
        room.goto(f"{demo.url}/examples/room/rotation/")
        expect(room.locator("#room")).to_have_attribute("data-sse-state", "open")
        production.goto(f"{demo.url}/examples/production/")
        expect(production.locator("#stream")).to_have_attribute("data-sse-state", "open")
        chat.goto(f"{demo.url}/examples/chat/")
        log_in_in_another_tab(context, demo)

        room.fill("#post [name=name]", "Ada")
        room.fill("#post [name=text]", "still here")
        room.click("#post button")
        expect(room.locator("#messages li")).to_have_text(["Ada: still here"])
        production.click("#drop button")
        expect(production.locator("#drop-result")).to_have_text("dropped by the server")
        chat.click("#ask")
        expect(chat.locator("#text")).to_contain_text("not from a language model")
        expect(chat.locator("#failure")).to_have_text("")
    finally:
        context.close()


def test_a_room_post_it_refuses_says_why(page: Page, demo: LiveServer) -> None:
    page.goto(f"{demo.url}/examples/room/refusals/")
    page.fill("#post [name=name]", "Ada")
    page.fill("#post [name=text]", "   ")
    page.click("#post button")
    expect(page.locator("#post-result")).to_have_text("text: This field is required.")
    expect(page.locator("#messages li")).to_have_count(0)


def answer_posts_with_a_proxy_error(page: Page) -> None:
    """A proxy in front of the demo answers the pages' POSTs with its own HTML page."""
    page.route(
        re.compile(r".*/(post|drop)/$"),
        lambda route: (
            route.fulfill(status=502, content_type="text/html", body="<h1>502 Bad Gateway</h1>")
            if route.request.method == "POST"
            else route.fallback()
        ),
    )


def test_a_refusal_that_is_not_the_demos_json_shows_its_status(
    page: Page, demo: LiveServer
) -> None:
    answer_posts_with_a_proxy_error(page)
    page.goto(f"{demo.url}/examples/room/proxied/")
    page.fill("#post [name=name]", "Ada")
    page.fill("#post [name=text]", "hello")
    page.click("#post button")
    expect(page.locator("#post-result")).to_have_text("failed (502)")
    page.goto(f"{demo.url}/examples/production/")
    page.click("#drop button")
    expect(page.locator("#drop-result")).to_have_text("failed (502)")


# Page code run before the task starts: after each progress event, what the page's own
# handler left in the bar (document listeners run after the form's), and the event's ETA.
RECORD_PROGRESS = """() => {
  window.progressSeen = [];
  document.addEventListener("sse:message", (event) => {
    if (event.detail.type !== "progress") return;
    const value = document.getElementById("bar").value;
    window.progressSeen.push({ value, eta: event.detail.json.eta });
  });
}"""


def test_exercise_progress_fills_the_bar_and_closes_on_done(page: Page, demo: LiveServer) -> None:
    page.goto(f"{demo.url}/examples/progress/")
    expect(page.locator("#job")).to_have_attribute("data-sse-state", "idle")
    page.evaluate(RECORD_PROGRESS)
    page.click("#job button")
    # The simulated task takes about 8 s.
    expect(page.locator("#job")).to_have_attribute("data-sse-state", "closed", timeout=30_000)
    expect(page.locator("#status")).to_have_text(re.compile(r"^Done: \d+ steps in [\d.]+ s\.$"))
    expect(page.locator("#percent")).to_have_text("100%")

    seen = page.evaluate("window.progressSeen")
    values = [entry["value"] for entry in seen]
    assert values[0] == 0
    assert values[-1] == 100
    assert values == sorted(values)
    assert len(set(values)) > 10  # step by step, not a jump to the end
    assert page.eval_on_selector("#bar", "bar => bar.value") == 100
    assert seen[0]["eta"] == "estimating"
    assert all(re.fullmatch(r"about \d+ s left", entry["eta"]) for entry in seen[1:])


def test_exercise_multi_source_shows_every_source(page: Page, demo: LiveServer) -> None:
    page.goto(f"{demo.url}/examples/multisource/")
    expect(page.locator("#clock")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    expect(page.locator("#build li").first).to_have_text("$ make build")
    expect(page.locator("#ticker li").first).to_have_text(
        re.compile(r"^ACME \d+\.\d\d [+-]\d+\.\d\d$")
    )
    expect(page.locator("#dashboard")).to_have_attribute("data-sse-state", "open")


NEEDS_HTMX = pytest.mark.skipif(
    importlib.util.find_spec("django_htmx") is None,
    reason="django-htmx is not installed (it needs Django 5.2+)",
)


@NEEDS_HTMX
def test_example_6_htmx_table_rows_come_from_the_server_until_finished(
    page: Page, demo: LiveServer
) -> None:
    page.add_init_script(
        """document.addEventListener("htmx:sse:close", (event) => {
            (window.closes = window.closes || []).push(event.target.id + ":" + event.detail.reason);
        }, true);"""
    )
    page.goto(f"{demo.url}/examples/htmx/")
    page.wait_for_function("(window.closes || []).includes('live:message')", timeout=60_000)
    cells = page.locator("#builds tr td:last-child").all_text_contents()
    assert cells == ["100 %"] * 4
    assert page.locator("#builds progress[value='100']").count() == 4


@NEEDS_HTMX
def test_example_6_htmx_chat_streams_the_answer_as_text(page: Page, demo: LiveServer) -> None:
    page.add_init_script(
        """document.addEventListener("htmx:sse:close", (event) => {
            (window.closes = window.closes || []).push(event.target.id + ":" + event.detail.reason);
        }, true);"""
    )
    page.goto(f"{demo.url}/examples/htmx/")
    page.click("#ask button")
    # hx-sse:close="done": the answer's done event closes the stream.
    page.wait_for_function("(window.closes || []).includes('ask:message')")
    answer = page.text_content("#answer") or ""
    assert "local text source" in answer
    assert 'beginning "What is htmx?"' in answer


@NEEDS_HTMX
def test_example_6_htmx_chat_posts_after_a_login_in_another_tab(
    browser: Browser, demo: LiveServer
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{demo.url}/examples/htmx/")
        log_in_in_another_tab(context, demo)
        page.click("#ask button")
        expect(page.locator("#answer")).to_contain_text("not from a language model")
        expect(page.locator("#answer")).not_to_contain_text("Forbidden")
    finally:
        context.close()
