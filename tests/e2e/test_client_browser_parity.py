"""The client against the test project under uvicorn: Django's own redirects, and a
restart mid-stream that resumes without a gap or a duplicate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_sse.client import aconnect, connect
from tests.servers import LiveServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer("uvicorn") as live:
        yield live


def test_django_appending_a_slash_is_followed(server: LiveServer) -> None:
    # CommonMiddleware answers /counter with a 301 to /counter/ (APPEND_SLASH).
    with connect(f"{server.url}/counter?n=2", reconnect=False) as source:
        assert [event.data for event in source] == ["0", "1"]


async def test_a_restart_mid_stream_resumes_without_a_gap_or_a_duplicate(
    server: LiveServer,
) -> None:
    ids: list[int] = []
    async with aconnect(f"{server.url}/resumable/?n=40", reconnect=False) as source:
        async for event in source:
            ids.append(int(event.id))
            if len(ids) in (5, 17):
                await source.restart()
    assert ids == list(range(40))
