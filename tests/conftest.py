from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections

from tests.servers import LiveServer


@pytest.fixture(scope="module", params=["uvicorn", "daphne"])
def live_server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A real ASGI server serving tests.urls, shared by a module's tests."""
    with LiveServer(request.param) as server:
        yield server.url


@pytest.fixture(autouse=True)
def _close_connections_of_async_orm_calls(request: pytest.FixtureRequest) -> Iterator[None]:
    """Close the connections that a test's async ORM calls, made outside any request,
    opened on asgiref's shared sync thread: still open when pytest-django drops the test
    database, PostgreSQL would refuse to drop it."""
    yield
    if request.node.get_closest_marker("django_db") is not None:
        SyncToAsync.single_thread_executor.submit(connections.close_all).result()
