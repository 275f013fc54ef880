"""The client tests' fixtures: the drivers, and the scripted servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.client.drivers import AsyncDriver, Driver, SyncDriver
from tests.client.scripted_server import ScriptedServer, ThreadedScriptedServer


@pytest.fixture(params=[SyncDriver, AsyncDriver], ids=["sync", "async"])
def sse(request: pytest.FixtureRequest) -> Driver:
    driver: Driver = request.param()
    return driver


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    """A scripted server on the test's event loop (the sync client runs in a thread)."""
    async with ScriptedServer() as scripted:
        yield scripted


@pytest.fixture
async def elsewhere() -> AsyncIterator[ScriptedServer]:
    """Another origin: the same host on another port."""
    async with ScriptedServer() as scripted:
        yield scripted


@pytest.fixture
def threaded_server() -> Iterator[ThreadedScriptedServer]:
    """A scripted server in its own thread, for plain sync tests."""
    with ThreadedScriptedServer() as scripted:
        yield scripted
