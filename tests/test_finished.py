"""django_sse.FINISHED: a stream that says it is over, and the 204 that stops every
client's reconnection. In-process here; through real servers and clients in
tests/e2e/test_finished.py and tests/browser/test_finished.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import AsyncClient

from django_sse import FINISHED
from django_sse.protocol import FINISHED_ID
from django_sse.response import SSEResponse
from tests.sse import collect

pytestmark = pytest.mark.django_db


def test_finished_is_an_event_a_browser_dispatches_then_reconnects_from_at_once() -> None:
    assert FINISHED.encode() == (b"event: finished\ndata: \nid: django-sse:finished\nretry: 1\n\n")


@pytest.mark.parametrize("path", ["/finishing/", "/finishing-function/"])
async def test_the_stream_ends_with_it_and_a_reconnection_gets_204(path: str) -> None:
    response = await AsyncClient().get(path)
    raw, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert raw.endswith(FINISHED.encode())
    assert (events[-1].event, events[-1].id) == ("finished", FINISHED_ID)
    finished_ids = [{"Last-Event-ID": FINISHED_ID}, {}]
    queries = [{}, {"lastEventId": FINISHED_ID}]  # the JavaScript helper's fallback
    for headers, query in zip(finished_ids, queries, strict=True):
        again = await AsyncClient().get(path, query, headers=headers)
        assert again.status_code == 204
        assert await body_of(again) == b""


async def body_of(response: Any) -> bytes:
    if isinstance(response, SSEResponse):
        return b"".join([chunk async for chunk in response._engine])
    return bytes(response.content)


async def test_any_other_last_event_id_streams_as_usual() -> None:
    response = await AsyncClient().get("/finishing/", headers={"Last-Event-ID": "2"})
    assert response.status_code == 200
    _, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    assert [e.data for e in events] == ["a", "b", ""]
