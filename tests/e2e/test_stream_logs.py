"""StreamLog rows written by a real server process, one per way a stream can end."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.servers import LiveServer
from tests.sse import RawStream

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer("uvicorn") as live:
        yield live


async def logged(server: LiveServer, path: str, *, drop: bool = False) -> dict[str, Any]:
    """Stream ``path`` (dropping the connection after the first event if asked) and
    return its StreamLog row, once the server says the stream has closed."""
    token = uuid.uuid4().hex
    async with RawStream(f"{server.url}{path}?probe={token}") as stream:
        if drop:
            await stream.next_events()
        else:
            await stream.read_all()
    async with httpx.AsyncClient(base_url=server.url) as client:
        await client.get(f"/status/{token}/")
    with sqlite3.connect(server.database) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT * FROM django_sse_streamlog WHERE query_string = ?", (f"probe={token}",)
        ).fetchall()
    assert len(rows) == 1
    return dict(rows[0])


@pytest.mark.parametrize(
    ("path", "drop", "outcome", "events"),
    [
        ("/counter/", False, "completed", 3),
        ("/idle/", True, "client_disconnected", 1),
        ("/error/", False, "error", 1),  # the engine's error event is not counted
        ("/timeout/", False, "timeout", 1),
    ],
)
async def test_each_outcome_is_logged(
    server: LiveServer, path: str, drop: bool, outcome: str, events: int
) -> None:
    row = await logged(server, path, drop=drop)
    assert row["outcome"] == outcome
    assert row["events_sent"] == events
    assert row["bytes_sent"] > 0
    assert row["ended_at"] is not None
    assert row["duration"] is not None
    assert row["client_address"] == "127.0.0.1"
    assert row["path"] == path
    assert (row["error"] != "") == (outcome == "error")


async def test_last_event_id_is_logged(server: LiveServer) -> None:
    row = await logged(server, "/counter/")
    assert row["last_event_id"] == "2"
