"""The helper's fetch-side parser against the server-side parser's spec cases, in Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from django_sse.protocol import MessageEvent
from tests.browser.conftest import page_url
from tests.servers import LiveServer
from tests.test_protocol import CHUNKED_STREAMS, SPEC_EXAMPLES

# Feeds the bytes through a streaming TextDecoder cut at `cut`, as fetch() delivers them.
PARSE = """([bytes, cut]) => {
    const events = [];
    let retry = null;
    const onRetry = (ms) => { retry = ms; };
    const parser = new DjangoSSE.EventParser((event) => events.push(event), onRetry);
    const decoder = new TextDecoder();
    const data = new Uint8Array(bytes);
    for (const chunk of [data.slice(0, cut), data.slice(cut)]) {
        parser.feed(decoder.decode(chunk, { stream: true }));
    }
    parser.feed(decoder.decode());
    return { events, lastEventId: parser.lastEventId, retry };
}"""


def as_browser_event(message: MessageEvent) -> dict[str, str]:
    return {"type": message.event or "message", "data": message.data, "lastEventId": message.id}


@pytest.fixture(scope="module")
def parser_page(browser: Any, server: LiveServer) -> Any:
    context = browser.new_context()
    page = context.new_page()
    page.goto(page_url(server, "blank"))
    page.wait_for_function("window.DjangoSSE !== undefined")
    yield page
    context.close()


@pytest.mark.parametrize(("stream", "expected", "last_event_id"), SPEC_EXAMPLES)
def test_spec_examples_at_every_split(
    parser_page: Page, stream: bytes, expected: list[MessageEvent], last_event_id: str
) -> None:
    for cut in range(len(stream) + 1):
        result = parser_page.evaluate(PARSE, [list(stream), cut])
        assert result["events"] == [as_browser_event(m) for m in expected], f"cut at {cut}"
        assert result["lastEventId"] == last_event_id


@pytest.mark.parametrize(("stream", "expected", "final"), CHUNKED_STREAMS)
def test_line_breaks_bom_and_multibyte_at_every_split(
    parser_page: Page,
    stream: bytes,
    expected: list[MessageEvent],
    final: tuple[str, int | None],
) -> None:
    for cut in range(len(stream) + 1):
        result = parser_page.evaluate(PARSE, [list(stream), cut])
        assert result["events"] == [as_browser_event(m) for m in expected], f"cut at {cut}"
        assert (result["lastEventId"], result["retry"]) == final
