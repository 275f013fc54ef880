"""render_event() with a queryset in its context, through uvicorn and daphne: the ORM
runs in a worker thread, never on the event loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import LiveServer
from tests.sse import RawStream

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["uvicorn", "daphne"])
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    with LiveServer(request.param) as live:
        live.create_user("grace", "not-used-here")
        yield live


async def test_a_queryset_renders_in_a_stream(server: LiveServer) -> None:
    async with RawStream(f"{server.url}/rendered/") as stream:
        events = await stream.read_all()
    assert [event.event for event in events] == ["users"]
    assert ">grace</li>" in events[0].data
    assert "SynchronousOnlyOperation" not in "".join(server.output)
