"""Stream limits across two server processes that share a Redis cache: one client
address's streams are counted together wherever they land."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.broadcast.redis_server import redis_url, unique_prefix
from tests.servers import LiveServer
from tests.sse import RawStream

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[LiveServer, LiveServer]]:
    env = {
        "SSE_TEST_REDIS_URL": redis_url(),
        "SSE_TEST_REDIS_PREFIX": unique_prefix(),
        "SSE_TEST_SETTINGS": json.dumps({"STREAM_LIMIT_PER_ADDRESS": 2}),
    }
    with LiveServer("uvicorn", env=env) as one, LiveServer("daphne", env=env) as two:
        yield one, two


async def opened(server: LiveServer) -> RawStream:
    stream = RawStream(f"{server.url}/gate/?probe={uuid.uuid4().hex}")
    await stream.__aenter__()
    return stream


async def test_the_limit_counts_streams_in_every_process(
    servers: tuple[LiveServer, LiveServer],
) -> None:
    one, two = servers
    first = await opened(one)
    second = await opened(two)
    assert (first.status, second.status) == (200, 200)
    assert [e.data for e in await first.next_events()] == ["first"]
    for server in servers:
        async with httpx.AsyncClient(base_url=server.url) as client:
            refused = await client.get("/gate/", params={"probe": uuid.uuid4().hex})
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "5"
        assert "your address has 2 open" in refused.text
    # A stream that ends in one process gives its slot to a stream in the other.
    token = first.url.query.split("=")[1]
    first.close()
    async with httpx.AsyncClient(base_url=one.url) as client:
        status = await client.get(f"/status/{token}/", params={"wait": "10"})
    assert status.json()["outcome"] == "client_disconnected"
    third = await opened(two)
    assert third.status == 200
    for stream in (second, third):
        stream.close()
