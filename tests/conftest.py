from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections

from django_sse import _log_writes
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


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """StreamLog inserts that wait in their worker, once begun (``entered``), until
    ``release``: for what happens to rows while they are going in."""
    entered, release = threading.Event(), threading.Event()
    insert_rows = _log_writes._insert_rows

    def waiting(rows: list[Any]) -> list[int | None]:
        entered.set()
        release.wait(10)
        return insert_rows(rows)

    monkeypatch.setattr(_log_writes, "_insert_rows", waiting)
    return entered, release
