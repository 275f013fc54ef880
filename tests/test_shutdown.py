"""Ending open streams when the process stops, in-process (tests/e2e has real servers)."""

from __future__ import annotations

import asyncio

import pytest

from django_sse import Outcome, shutdown
from django_sse._engine import Engine
from django_sse.protocol import KEEP_ALIVE, EventParser
from django_sse.stats import StreamStats
from tests.test_closing import Journal, Served, sse
from tests.test_response import forever, within


@pytest.fixture
def shutting_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutdown, "_shutting_down", True)


@pytest.mark.usefixtures("shutting_down")
async def test_a_stream_that_opens_during_shutdown_ends_at_once() -> None:
    """A client reconnecting while earlier streams clean up is not kept: it gets the
    opening line, and its EventSource reconnects, later or to another process."""
    journal = Journal()
    served = Served(sse(journal, forever()))
    await within(served.task)
    assert served.raw == b":\n"
    assert EventParser().feed(served.raw) == []
    journal.assert_closed_once(Outcome.SHUTDOWN)


async def test_a_stop_that_comes_after_the_deadline_is_a_timeout() -> None:
    """The engine's task had not woken up to the deadline yet: it still came first."""
    loop = asyncio.get_running_loop()
    stats = StreamStats()
    engine = Engine(forever(), stats, None, 0, deadline=loop.time() - 1, opening=KEEP_ALIVE)
    engine.stop(Outcome.SHUTDOWN)
    assert stats.outcome is Outcome.TIMEOUT
    await within(engine.close(1.0))


async def test_a_stop_before_the_deadline_keeps_its_outcome() -> None:
    loop = asyncio.get_running_loop()
    stats = StreamStats()
    engine = Engine(forever(), stats, None, 0, deadline=loop.time() + 3600, opening=KEEP_ALIVE)
    engine.stop(Outcome.SHUTDOWN)
    engine.stop(Outcome.CLIENT_DISCONNECTED)
    assert stats.outcome is Outcome.SHUTDOWN
    await within(engine.close(1.0))
