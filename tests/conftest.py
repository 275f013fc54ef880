from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import LiveServer


@pytest.fixture(scope="module", params=["uvicorn", "daphne"])
def live_server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A real ASGI server serving tests.urls, shared by a module's tests."""
    with LiveServer(request.param) as server:
        yield server.url
