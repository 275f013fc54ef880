"""FINISHED through real servers: the Python client reads the stream to its end, is
answered 204 on its immediate reconnection, and stops for good."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from django_sse.client import ClientStatus, aconnect, connect
from django_sse.protocol import FINISHED_ID
from tests.servers import LiveServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["uvicorn", "daphne"])
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    with LiveServer(request.param) as live:
        yield live


@pytest.mark.parametrize("path", ["/finishing/", "/finishing-function/"])
def test_the_sync_client_stops_for_good(server: LiveServer, path: str) -> None:
    statuses: list[ClientStatus] = []
    with connect(f"{server.url}{path}", on_status=statuses.append) as source:
        events = [(event.event, event.data) for event in source]
    assert events[-1] == ("finished", "")
    assert [status.state for status in statuses] == ["connected", "reconnecting", "closed"]
    assert statuses[1].delay == 0.001  # FINISHED's retry: at once


async def test_the_async_client_stops_for_good(server: LiveServer) -> None:
    async with aconnect(f"{server.url}/finishing/") as source:
        data = [event.data async for event in source]
    assert data == ["a", "b", ""]
    assert source.last_event_id == FINISHED_ID


@pytest.mark.parametrize("path", ["/finishing/", "/finishing-function/"])
def test_the_server_answers_an_empty_204(server: LiveServer, path: str) -> None:
    response = httpx.get(f"{server.url}{path}", headers={"Last-Event-ID": FINISHED_ID})
    assert response.status_code == 204
    assert response.content == b""
