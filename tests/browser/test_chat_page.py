"""The LLM chat pages in Chromium, offline and against an OpenAI-format server: the
chat endpoint exercise, and Example 2 with its resumable answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import wait_closed
from tests.llm.upstream import Upstream
from tests.servers import LiveServer, demo_runserver


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream.in_thread() as server:
        yield server


@pytest.fixture(scope="module")
def offline_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with demo_runserver(tmp_path_factory.mktemp("offline") / "db.sqlite3") as server:
        yield server


@pytest.fixture(scope="module")
def slow_model_demo(
    tmp_path_factory: pytest.TempPathFactory, upstream: Upstream
) -> Iterator[LiveServer]:
    database: Path = tmp_path_factory.mktemp("slow") / "db.sqlite3"
    with demo_runserver(database, {"OPENAI_BASE_URL": upstream.base_url("slow-20")}) as server:
        yield server


def ask(page: Page, question: str) -> None:
    page.fill("#prompt", question)
    page.click("#ask")


def test_offline_the_local_text_source_answers_and_says_so(
    page: Page, offline_demo: LiveServer
) -> None:
    page.goto(f"{offline_demo.url}/examples/chat-endpoint/")
    expect(page.locator("#provider")).to_have_text("the local text source (not a language model)")
    ask(page, "What is SSE?")
    expect(page.locator("#answer")).to_contain_text("not from a language model")
    wait_closed(page, "chat")
    expect(page.locator("#done")).to_have_text(
        re.compile(r"^Finished \(stop\): \d+ tokens from local-text\.$")
    )
    assert page.locator("#answer").inner_text().rstrip().endswith("admin's stream logs.")


def test_stop_cancels_the_request_to_the_model(
    page: Page, slow_model_demo: LiveServer, upstream: Upstream
) -> None:
    first = len(upstream.requests)
    page.goto(f"{slow_model_demo.url}/examples/chat-endpoint/")
    expect(page.locator("#provider")).to_have_text(re.compile(r"^gpt-4o-mini at 127\.0\.0\.1:"))
    ask(page, "Count slowly")
    expect(page.locator("#answer")).to_contain_text("t3 ")
    page.click("#stop")
    request = upstream.wait_request_sync(first)
    request.wait_closed_sync(timeout=1.0)
    assert request.client_closed
    assert request.tokens_written < upstream.slow_max_tokens
    assert request.body["messages"][0]["role"] == "system"
    assert request.body["messages"][1] == {"role": "user", "content": "Count slowly"}
    expect(page.locator("#chat")).to_have_attribute("data-sse-state", "closed")
    expect(page.locator("#done")).to_have_text("")

    # The form still works after a stop: a new question starts a new answer.
    ask(page, "Again")
    expect(page.locator("#answer")).to_contain_text("t1 ")
    page.click("#stop")
    upstream.wait_request_sync(first + 1).wait_closed_sync(timeout=1.0)


def ask_example_2(page: Page, demo: LiveServer, question: str) -> None:
    page.goto(f"{demo.url}/examples/chat/")
    ask(page, question)


def test_example_2_offline(page: Page, offline_demo: LiveServer) -> None:
    ask_example_2(page, offline_demo, "What is SSE?")
    expect(page.locator("#provider")).to_have_text("the local text source (not a language model)")
    expect(page.locator("#text")).to_contain_text("not from a language model")
    wait_closed(page, "answer")
    expect(page.locator("#done")).to_have_text(
        re.compile(r"^Finished \(stop\) after \d+ tokens from local-text\.$")
    )


def test_example_2_resumes_a_dropped_answer_without_asking_again(
    page: Page, slow_model_demo: LiveServer, upstream: Upstream
) -> None:
    first = len(upstream.requests)
    ask_example_2(page, slow_model_demo, "Count")
    expect(page.locator("#text")).to_contain_text("t3 ")
    page.click("#drop")
    expect(page.locator("#reconnects")).to_have_text("1")
    expect(page.locator("#text")).to_contain_text("t12 ")
    page.click("#stop")
    wait_closed(page, "answer")
    expect(page.locator("#done")).to_have_text(re.compile(r"^Finished \(stopped\)"))
    upstream.wait_request_sync(first).wait_closed_sync(timeout=1.0)
    assert len(upstream.requests) == first + 1
    tokens = page.locator("#text").inner_text().split()
    assert tokens == [f"t{n}" for n in range(len(tokens))]


def test_example_2_is_not_started_until_asked(page: Page, offline_demo: LiveServer) -> None:
    page.goto(f"{offline_demo.url}/examples/chat/")
    state = page.eval_on_selector(
        "#answer .sse-state", "e => getComputedStyle(e, '::before').content"
    )
    assert state == '"not started"'


def test_example_2_shows_the_status_of_a_refusal_that_is_not_json(
    page: Page, offline_demo: LiveServer
) -> None:
    page.route(
        "**/examples/chat/answer/",
        lambda route: route.fulfill(status=502, content_type="text/html", body="<h1>502</h1>"),
    )
    page.goto(f"{offline_demo.url}/examples/chat/")
    ask(page, "What is SSE?")
    expect(page.locator("#failure")).to_have_text("failed (502)")


def test_example_2_asks_once_for_a_double_click(
    page: Page, slow_model_demo: LiveServer, upstream: Upstream
) -> None:
    """A second Ask while the first is being sent would find no answer to stop yet."""
    asked: list[str] = []
    page.on(
        "request",
        lambda request: asked.append(request.url) if request.method == "POST" else None,
    )
    page.goto(f"{slow_model_demo.url}/examples/chat/")
    ask(page, "Question 0")
    expect(page.locator("#text")).to_contain_text("t1 ")
    page.fill("#prompt", "Question 1")
    page.dblclick("#ask")
    expect(page.locator("#text")).to_contain_text("t1 ")
    page.click("#stop")
    wait_closed(page, "answer")
    expect(page.locator("#done")).to_have_text(re.compile(r"^Finished \(stopped\)"))
    starts = [url for url in asked if url.endswith("/examples/chat/answer/")]
    assert len(starts) == 2


def test_example_2_asking_again_stops_the_answer_still_being_written(
    page: Page, slow_model_demo: LiveServer, upstream: Upstream
) -> None:
    # One more than the answers a visitor may have running at once (three): each question
    # asked while the last answer runs must stop that answer, or the last gets a 429.
    first = len(upstream.requests)
    page.goto(f"{slow_model_demo.url}/examples/chat/")
    for question in range(4):
        ask(page, f"Question {question}")
        expect(page.locator("#text")).to_contain_text("t1 ")
        expect(page.locator("#failure")).to_have_text("")
    for earlier in range(3):
        request = upstream.wait_request_sync(first + earlier)
        request.wait_closed_sync(timeout=5.0)
        assert request.client_closed
        assert request.tokens_written < upstream.slow_max_tokens
    page.click("#stop")
    wait_closed(page, "answer")
    expect(page.locator("#done")).to_have_text(re.compile(r"^Finished \(stopped\)"))
